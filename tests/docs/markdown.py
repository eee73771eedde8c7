"""Read the documentation the way the docs checks need it: fenced blocks, links, headings, code symbols.

The conventions the checks enforce (see docs/README.md):
- a relative link must point at an existing file, and its `#anchor`, if any, at a heading of that file;
- a link to a `.py` file never carries an anchor (line numbers rot; name the function instead);
- a link whose text is a dotted name in backticks and whose target is a `.py` file, e.g.
  [`WeatherApiClient.current_weather`](../services/crm-mcp/src/crm_mcp/api_key_weather.py),
  names a symbol that must exist in that file (found with `ast`, from the module's top level down);
- every arrow of a Mermaid sequenceDiagram names the function doing that hop as `name()` or
  `Class.method()`, and that function must exist in one of the `.py` files the page links to.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LINK = re.compile(r"(?<!!)\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]\((?P<target>[^()\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_CODE_SYMBOL = re.compile(r"^`(?P<symbol>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(\))?`$")
_CALLED_NAME = re.compile(r"(?P<name>[A-Za-z_][\w.]*)\(\)")
_SEQUENCE_ARROW = re.compile(r"^\s*[^:%]+?(?:-->>|->>|-->|->|--x|-x|--\)|-\))[+-]?[^:]+:(?P<message>.*)$")


def documentation_files() -> list[Path]:
    """The pages the checks cover: the top-level README and everything under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def relative(path: Path) -> str:
    """`path` relative to the repository root, for messages (as given, if it lies elsewhere)."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language (first word of the info string), text and first line number."""

    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{relative(self.path)}:{self.line}"


@dataclass(frozen=True)
class Link:
    """A Markdown link outside code blocks."""

    path: Path
    line: int
    text: str
    target: str

    @property
    def where(self) -> str:
        return f"{relative(self.path)}:{self.line}"

    @property
    def is_external(self) -> bool:
        return re.match(r"^[a-z][a-z0-9+.-]*:", self.target) is not None

    def split(self) -> tuple[Path, str | None]:
        """The file the link points at (this page for a bare #anchor) and its anchor, if any."""
        file_part, _, anchor = self.target.partition("#")
        target = (self.path if not file_part else self.path.parent / file_part).resolve()
        return target, anchor or None

    @property
    def code_symbol(self) -> str | None:
        """The dotted name this link promises exists in its .py target, if it is a code reference."""
        match = _CODE_SYMBOL.match(self.text.strip())
        if match is None or not self.target.endswith(".py") or match["symbol"].endswith(".py"):
            return None
        return match["symbol"]


def split_blocks(text: str, path: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a page, and its lines with every fenced line blanked (for prose parsing)."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            prose.append(lines[index])
            index += 1
            continue
        fence = opening["fence"]
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence (or the end of the file)
        language = (opening["info"].strip().split() or [""])[0].lower()
        blocks.append(Block(path, start + 1, language, "\n".join(body)))
        prose.extend([""] * (index - start))
    return blocks, prose[: len(lines)]


@cache
def _page(path: Path) -> tuple[list[Block], list[str]]:
    return split_blocks(path.read_text(encoding="utf-8"), path)


def blocks(path: Path) -> list[Block]:
    return _page(path)[0]


def links(path: Path) -> list[Link]:
    found: list[Link] = []
    for number, line in enumerate(_page(path)[1], start=1):
        for match in _LINK.finditer(line):
            found.append(Link(path, number, match["text"], match["target"]))
    return found


def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading: rendered text, lower-cased, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link renders as its text
    text = text.replace("`", "").replace("*", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown page, with GitHub's -1, -2 suffixes for repeated titles."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in _page(path)[1]:
        match = _HEADING.match(line)
        if match is None:
            continue
        slug = github_slug(match["title"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(result)


def _defined_in(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a block of statements defines: functions, classes and assigned names (through if/try/with)."""
    names: dict[str, ast.AST] = {}
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[statement.name] = statement
        elif isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = statement
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names[statement.target.id] = statement
        elif isinstance(statement, ast.If | ast.With | ast.AsyncWith):
            names.update(_defined_in(statement.body))
            names.update(_defined_in(getattr(statement, "orelse", [])))
        elif isinstance(statement, ast.Try):
            for part in (statement.body, statement.orelse, statement.finalbody, *(h.body for h in statement.handlers)):
                names.update(_defined_in(part))
    return names


@cache
def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def defines(path: Path, dotted: str) -> bool:
    """True if `dotted` (e.g. `Class.method`, `create_app.route`) is defined in `path`, from the top down."""
    body: list[ast.stmt] = _module(path).body
    for part in dotted.split("."):
        node = _defined_in(body).get(part)
        if node is None:
            return False
        body = node.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else []
    return True


@cache
def qualified_names(path: Path) -> frozenset[str]:
    """The dotted name of every function and class in `path`, at any depth (`outer.inner`, `Class.method`)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for name, node in _defined_in(body).items():
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(prefix + name)
                visit(node.body, f"{prefix}{name}.")

    visit(_module(path).body, "")
    return frozenset(names)


def named_anywhere(paths: list[Path], name: str) -> bool:
    """True if some function or class in `paths` is `name` or ends with `.name` (for diagram labels)."""
    return any(
        qualified == name or qualified.endswith("." + name) for path in paths for qualified in qualified_names(path)
    )


def sequence_arrows(diagram: str) -> list[str]:
    """The message text of every arrow of a Mermaid sequenceDiagram."""
    return [match["message"] for line in diagram.splitlines() if (match := _SEQUENCE_ARROW.match(line))]


def called_names(message: str) -> list[str]:
    """The `name()` / `Class.method()` mentions in a diagram message."""
    return [match["name"] for match in _CALLED_NAME.finditer(message)]
