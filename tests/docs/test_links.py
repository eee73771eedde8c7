"""Links and code references in README.md and docs/*.md resolve: files, heading anchors, Python symbols."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import (
    ROOT,
    Link,
    anchors,
    blocks,
    called_names,
    defines,
    documentation_files,
    links,
    named_anywhere,
    relative,
    sequence_arrows,
    split_blocks,
)

PAGES = documentation_files()
PAGE_IDS = [relative(page) for page in PAGES]


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of `page` that points nowhere (or out of `root`), with the reason."""
    problems: list[str] = []
    for link in links(page):
        if link.is_external:
            continue
        target, anchor = link.split()
        if not target.exists():
            problems.append(f"{link.where}: {link.target} does not exist")
        elif root.resolve() not in target.parents:
            problems.append(f"{link.where}: {link.target} is outside the repository")
        elif anchor is not None and target.suffix == ".py":
            problems.append(f"{link.where}: {link.target}: no anchors into code (they rot); name the function")
        elif anchor is not None and target.suffix == ".md" and anchor not in anchors(target):
            problems.append(f"{link.where}: {link.target}: no heading #{anchor} in {relative(target)}")
    return problems


def unresolved_symbols(page: Path) -> list[str]:
    """Every [`Dotted.name`](file.py) link of `page` whose symbol is not defined in that file."""
    problems: list[str] = []
    for link in links(page):
        symbol = link.code_symbol
        if symbol is None or link.is_external:
            continue
        target, _ = link.split()
        if target.is_file() and not defines(target, symbol):
            problems.append(f"{link.where}: `{symbol}` is not defined in {relative(target)}")
    return problems


def unnamed_diagram_hops(page: Path) -> list[str]:
    """Sequence-diagram arrows of `page` that name no function, or a function no linked .py file defines."""
    linked_code = sorted(
        {
            target
            for link in links(page)
            if not link.is_external
            for target, _ in [link.split()]
            if target.suffix == ".py"
        }
    )
    problems: list[str] = []
    for block in blocks(page):
        if block.language != "mermaid" or not block.text.lstrip().startswith("sequenceDiagram"):
            continue
        for message in sequence_arrows(block.text):
            names = called_names(message)
            if not names:
                problems.append(f"{block.where}: arrow names no function: {message.strip()!r}")
            problems.extend(
                f"{block.where}: {name}() is not defined in any .py file this page links to"
                for name in names
                if not named_anywhere(linked_code, name)
            )
    return problems


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_code_references_name_symbols_that_exist(page: Path) -> None:
    assert unresolved_symbols(page) == []


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_sequence_diagram_arrow_names_an_existing_function(page: Path) -> None:
    assert unnamed_diagram_hops(page) == []


def test_each_pattern_page_points_at_its_implementation() -> None:
    """The code references the README promises, so a reader finds each pattern's code from its page."""
    expected = {
        "docs/api-key.md": {"WeatherApiClient.current_weather"},
        "docs/client-credentials.md": {"tickets_credential", "TicketsMcpClient.call_tool", "ClientCredentialsAuth"},
        "docs/token-cascade.md": {"caller_authorization", "CrmApiClient"},
    }
    for page, symbols in expected.items():
        referenced = {link.code_symbol for link in links(ROOT / page)}
        assert symbols <= referenced, f"{page} lacks code references to {symbols - referenced}"


# The checks above must be able to fail: feed them pages that are wrong on purpose.


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return page


def test_checker_reports_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Real heading\n", encoding="utf-8")
    page = _page(tmp_path, "[a](missing.md) [b](other.md#real-heading) [c](other.md#no-such) [d](#nowhere)\n")
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 3
    assert "missing.md does not exist" in problems[0]
    assert "no heading #no-such" in problems[1]
    assert "no heading #nowhere" in problems[2]


def test_checker_refuses_line_anchors_into_code(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("def f() -> None: ...\n", encoding="utf-8")
    assert "no anchors into code" in broken_links(_page(tmp_path, "[f](code.py#L1)\n"), root=tmp_path)[0]


def test_checker_reports_a_renamed_symbol(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text(
        "class Client:\n    async def fetch(self) -> None: ...\n\ndef factory():\n    def inner(): ...\n",
        encoding="utf-8",
    )
    page = _page(
        tmp_path,
        "[`Client.fetch`](code.py) [`factory.inner`](code.py) [`Client.fetch_all`](code.py) [`code.py`](code.py)\n",
    )
    problems = unresolved_symbols(page)
    assert len(problems) == 1
    assert "`Client.fetch_all` is not defined" in problems[0]


def test_checker_reports_a_diagram_arrow_without_a_real_function(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("def send() -> None: ...\n", encoding="utf-8")
    diagram = "```mermaid\nsequenceDiagram\n  A->>B: send() a request\n  B-->>A: an answer\n  A->>B: resend()\n```\n"
    problems = unnamed_diagram_hops(_page(tmp_path, f"[code](code.py)\n\n{diagram}"))
    assert len(problems) == 2
    assert "names no function" in problems[0]
    assert "resend() is not defined" in problems[1]


def test_fenced_blocks_are_not_read_as_prose() -> None:
    found, prose = split_blocks("text [a](x.md)\n```bash\n[b](y.md)\n```\nmore\n", Path("p.md"))
    assert [(block.language, block.text) for block in found] == [("bash", "[b](y.md)")]
    assert prose == ["text [a](x.md)", "", "", "", "more"]
    assert Link(Path("p.md"), 1, "`A.b`", "x.py").code_symbol == "A.b"
