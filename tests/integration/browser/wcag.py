"""WCAG 2.2 contrast: relative luminance of sRGB colours as the browser computes them, and their ratio.

https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio; a focus indicator needs at least 3:1 against the
colours next to it (success criteria 1.4.11 and 2.4.13).
"""

from __future__ import annotations

import re

FOCUS_INDICATOR_MINIMUM = 3.0

_RGB = re.compile(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)")


def parse_rgb(css: str) -> tuple[int, int, int]:
    """An opaque colour as getComputedStyle reports it (`rgb(180, 83, 9)`); a see-through one is an error."""
    match = _RGB.fullmatch(css)
    assert match is not None, f"not an rgb() colour: {css}"
    assert match.group(4) in (None, "1"), f"a translucent colour has no single contrast: {css}"
    red, green, blue = (int(match.group(index)) for index in (1, 2, 3))
    return red, green, blue


def relative_luminance(css: str) -> float:
    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(channel) for channel in parse_rgb(css))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
