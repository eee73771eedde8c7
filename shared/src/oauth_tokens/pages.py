"""One look for every page a user's browser sees: the authorization servers' sign-in and consent pages and
crm-mcp's calendar connect pages share this stylesheet and document shell.

Each page carries its provider's brand: a name in a header bar, an accent colour and a footer, so a user
who is sent from one authorization server to another (crm-mcp's, then the calendar provider's) can tell
whose page they are typing a password into. The brand is the site's own configuration, never input.
No scripts: the pages' Content-Security-Policy allows inline styles only (PAGE_CSP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

__all__ = ["PAGE_CSP", "PAGE_STYLESHEET", "PageBrand", "html_document"]

# No scripts, no framing (clickjacking), nothing else loaded; inline styles only.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"

PAGE_STYLESHEET = """
body { font-family: system-ui, sans-serif; line-height: 1.5; margin: 0; background: #f4f5f7; color: #1b1f24; }
header { background: var(--accent); color: #fff; padding: .75rem 1.25rem; font-weight: 600; }
header .provider { font-size: 1.05rem; }
main { max-width: 28rem; margin: 2.5rem auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 1px 3px rgba(0,0,0,.15); border-top: 4px solid var(--accent); }
h1 { font-size: 1.5rem; margin-top: 0; }
label { display: block; font-weight: 600; margin-top: 1rem; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .6rem; font-size: 1rem;
       border: 1px solid #6b7280; border-radius: 4px; }
button { margin-top: 1.25rem; margin-right: .5rem; padding: .6rem 1.2rem; font-size: 1rem; border-radius: 4px;
       border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button:focus-visible, input:focus-visible { outline: 3px solid #b45309; outline-offset: 2px; }
.error { color: #991b1b; background: #fef2f2; border: 1px solid #fecaca; padding: .5rem .75rem; border-radius: 4px; }
.success { color: #14532d; background: #f0fdf4; border: 1px solid #bbf7d0; padding: .5rem .75rem; border-radius: 4px; }
.note { font-size: .875rem; color: #4b5563; }
footer { max-width: 28rem; margin: 0 auto 2rem; padding: 0 2rem; font-size: .875rem; color: #4b5563; }
/* A code span (a scope, a client ID, a URL) is one box: it moves to the next line whole, never split at a
   hyphen or a colon; only one longer than a whole line (a long URL) wraps inside its box, anywhere. */
code { display: inline-block; max-width: 100%; overflow-wrap: anywhere; vertical-align: bottom; }
.scope-code { color: #4b5563; white-space: nowrap; }
"""

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class PageBrand:
    """Whose pages these are: the name in the header bar, the accent colour (#rrggbb) and the footer."""

    name: str
    accent: str = "#1d4ed8"
    footer: str = ""

    def __post_init__(self) -> None:
        if not _COLOUR.fullmatch(self.accent):
            raise ValueError("a page accent colour is written #rrggbb")


def html_document(title: str, body: str, brand: PageBrand) -> str:
    """A whole page: `body` (already-escaped HTML) in the shared shell, titled and branded for `brand`."""
    footer = f"<footer>{escape(brand.footer)}</footer>\n" if brand.footer else ""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} - {escape(brand.name)}</title>\n"
        f"<style>:root {{ --accent: {brand.accent}; }}{PAGE_STYLESHEET}</style>\n</head>\n"
        f'<body>\n<header><span class="provider">{escape(brand.name)}</span></header>\n'
        f"<main>\n{body}\n</main>\n{footer}</body>\n</html>\n"
    )
