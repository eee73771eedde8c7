"""The focus ring of every control on the login and consent pages, measured in Chromium from the pages' own CSS.

Each control is focused by keyboard (so `:focus-visible` applies as it does for a keyboard user), then its
computed outline is compared with what surrounds it: the background behind the outline, and the control's
own background too when the outline touches the control (no outline-offset). WCAG asks 3:1 at least.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from devkit.topology import Topology
from playwright.sync_api import Locator, Page, expect

from tests.integration.browser.flow import BrowserClient, authorization
from tests.integration.browser.user import expect_consent
from tests.integration.browser.wcag import FOCUS_INDICATOR_MINIMUM, contrast_ratio

# The outline as computed, and the nearest opaque background behind the element.
FOCUS_STYLE = """(element) => {
    const style = getComputedStyle(element);
    const transparent = (color) => color === "transparent" || color === "rgba(0, 0, 0, 0)";
    let behind = "rgb(255, 255, 255)";  // the canvas, if nothing paints a background
    for (let node = element.parentElement; node; node = node.parentElement) {
        const color = getComputedStyle(node).backgroundColor;
        if (!transparent(color)) { behind = color; break; }
    }
    return {
        focused: element === document.activeElement && element.matches(":focus-visible"),
        style: style.outlineStyle,
        width: parseFloat(style.outlineWidth),
        offset: parseFloat(style.outlineOffset),
        color: style.outlineColor,
        behind: behind,
        own: transparent(style.backgroundColor) ? behind : style.backgroundColor,
    };
}"""


@dataclass(frozen=True)
class FocusRing:
    control: str
    focused: bool
    style: str
    width: float
    offset: float
    color: str
    behind: str
    own: str

    def adjacent_colors(self) -> list[str]:
        return [self.behind] if self.offset >= 1 else [self.behind, self.own]


def ring_of(control: str, locator: Locator) -> FocusRing:
    expect(locator).to_be_focused()
    return FocusRing(control=control, **locator.evaluate(FOCUS_STYLE))


def test_the_contrast_helper_agrees_with_wcag() -> None:
    """Black on white is 21:1; the old amber ring (#f59e0b) on white was 2.15:1, below the minimum."""
    assert contrast_ratio("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21.0)
    assert contrast_ratio("rgb(245, 158, 11)", "rgb(255, 255, 255)") == pytest.approx(2.15, abs=0.01)
    assert contrast_ratio("rgb(255, 255, 255)", "rgb(255, 255, 255)") == pytest.approx(1.0)


def test_every_focus_ring_has_at_least_3_to_1_contrast(page: Page, topology: Topology, client: BrowserClient) -> None:
    page.goto(authorization(topology, client, "crm:read").url)
    keyboard = page.keyboard
    rings = [ring_of("username", page.get_by_label("Username"))]
    keyboard.type("alice")
    keyboard.press("Tab")
    rings.append(ring_of("password", page.get_by_label("Password")))
    keyboard.type(topology.password("alice"))
    keyboard.press("Tab")
    rings.append(ring_of("Sign in", page.get_by_role("button", name="Sign in")))
    keyboard.press("Enter")
    expect_consent(page)
    keyboard.press("Tab")
    rings.append(ring_of("Allow", page.get_by_role("button", name="Allow")))
    keyboard.press("Tab")
    rings.append(ring_of("Deny", page.get_by_role("button", name="Deny")))

    for ring in rings:
        assert ring.focused, ring
        assert ring.style != "none", ring
        assert ring.width >= 2, ring
        for adjacent in ring.adjacent_colors():
            assert contrast_ratio(ring.color, adjacent) >= FOCUS_INDICATOR_MINIMUM, ring
