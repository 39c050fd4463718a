"""WCAG AA contrast of every pill, badge and result chip in our stylesheets.

Each rule that styles a chip is read with tinycss2; its text and background
colours (``var(--x)`` resolved from ``:root``, and a chip that sets no colour
inherits the base ``.pill``/``.state`` rule, then the page's ``--fg``) must
reach 4.5:1, the AA level for normal-size text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tinycss2
import tinycss2.color4

CSS = Path(__file__).resolve().parents[1] / "static" / "css"
# The chips: small text on a coloured background.
CHIP_CLASSES = (".pill", ".state", ".result", ".timer")
AA_NORMAL_TEXT = 4.5


def _declarations(rule) -> dict[str, str]:
    decls = tinycss2.parse_blocks_contents(rule.content, skip_whitespace=True, skip_comments=True)
    return {d.lower_name: tinycss2.serialize(d.value).strip() for d in decls if d.type == "declaration"}


def _rules(path: Path) -> list[tuple[str, dict[str, str]]]:
    sheet = tinycss2.parse_stylesheet(path.read_text(), skip_whitespace=True, skip_comments=True)
    found = []
    for rule in sheet:
        if rule.type != "qualified-rule":
            continue  # @media blocks here only change layout
        selector = tinycss2.serialize(rule.prelude).strip()
        found += [(part.strip(), _declarations(rule)) for part in selector.split(",")]
    return found


def _variables() -> dict[str, str]:
    variables = {}
    for selector, decls in _rules(CSS / "app.css"):
        if selector == ":root":
            variables |= {k: v for k, v in decls.items() if k.startswith("--")}
    return variables


def _hex(value: str, variables: dict[str, str]) -> str:
    value = value.strip()
    if value.startswith("var("):
        name = value[4:-1].split(",")[0].strip()
        return _hex(variables[name], variables)
    color = tinycss2.color4.parse_color(value)
    assert color is not None and color.alpha == 1, f"cannot check contrast of {value!r}"
    r, g, b = (round(c * 255) for c in color.to("srgb").coordinates)
    return f"#{r:02x}{g:02x}{b:02x}"


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """The WCAG 2 contrast ratio of two #rrggbb colours."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _chips() -> list[tuple[str, str, str]]:
    """(selector, text colour, background colour) for every chip rule."""
    variables = _variables()
    chips = []
    for sheet in sorted(CSS.glob("*.css")):
        rules = _rules(sheet)
        bases = {s: d for s, d in rules if s in CHIP_CLASSES}
        for selector, decls in rules:
            base = next((b for b in CHIP_CLASSES if selector.startswith(b)), None)
            if base is None or not ({"background", "background-color", "color"} & decls.keys()):
                continue
            inherited = {**bases.get(base, {}), **decls}
            background = inherited.get("background-color") or inherited.get("background")
            if background is None:
                continue
            text = inherited.get("color", "var(--fg)")
            chips.append(
                (f"{sheet.name} {selector}", _hex(text, variables), _hex(background.split()[0], variables))
            )
    return chips


def test_it_finds_the_chips_it_checks():
    selectors = {selector for selector, _, _ in _chips()}
    assert {"app.css .pill.sev-medium", "app.css .pill.sev-high", "app.css .pill"} <= selectors


def test_it_computes_wcag_ratios():
    assert contrast("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast("#ffffff", "#e08a00") == pytest.approx(2.70, abs=0.01)  # the old "medium" pill


@pytest.mark.parametrize(("selector", "text", "background"), _chips())
def test_it_gives_every_chip_aa_contrast(selector, text, background):
    ratio = contrast(text, background)
    assert ratio >= AA_NORMAL_TEXT, f"{selector}: {text} on {background} is {ratio:.2f}:1"
