"""A test run leaves the tracked README screenshots alone unless asked to update them
(`make screenshots`); by default they go into the ignored test-artifacts/."""

import os
from pathlib import Path

from tests.e2e.conftest import ARTIFACT_SCREENSHOTS, DOCS_SCREENSHOTS, ROOT, screenshot_dir


def test_it_writes_screenshots_into_the_ignored_folder_by_default():
    without_flag = {k: v for k, v in os.environ.items() if k != "UPDATE_SCREENSHOTS"}
    assert screenshot_dir(without_flag) == ARTIFACT_SCREENSHOTS
    assert screenshot_dir({"UPDATE_SCREENSHOTS": "0"}) == ARTIFACT_SCREENSHOTS
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    top = ARTIFACT_SCREENSHOTS.relative_to(ROOT).parts[0]
    assert f"/{top}/" in ignored, f"{top}/ is not ignored: make test would dirty git status"


def test_it_updates_the_readme_screenshots_only_when_asked():
    assert screenshot_dir({"UPDATE_SCREENSHOTS": "1"}) == DOCS_SCREENSHOTS
    makefile = (ROOT / "Makefile").read_text()
    screenshots_recipe = makefile.split("\nscreenshots:", 1)[1].split("\n\n", 1)[0]
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "UPDATE_SCREENSHOTS=1" in screenshots_recipe
    assert "UPDATE_SCREENSHOTS" not in test_recipe


def test_it_saves_every_screenshot_through_the_one_helper():
    """No browser test names docs/screenshots itself: they all save under SCREENSHOTS."""
    here = Path(__file__).resolve().parent
    for path in here.glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        source = path.read_text()
        assert "docs/screenshots" not in source and '"docs"' not in source, path.name
        assert "DOCS_SCREENSHOTS" not in source, path.name
