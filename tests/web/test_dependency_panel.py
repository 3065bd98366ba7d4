"""Browser test: the submit page lists the ticked scenes' files and their states (htmx)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, build_tree

from .conftest import screenshot

pytestmark = pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")


def test_ticking_scenes_lists_their_files_and_what_is_missing(
    open_page: Any, bob: Any, project: Any, blender_software: Any, storage_root: Path
) -> None:
    project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    build_tree(storage_root / "scenes")
    page = open_page(bob)
    page.goto(f"/submit/?project={project.pk}")
    panel = page.locator("#scene-files-list")
    assert "Tick a scene" in panel.inner_text()

    page.click("#browser a:has-text('scenes/')")
    page.click("#browser a:has-text('shots/')")
    page.locator("#browser").get_by_label("all.blend", exact=True).check()
    page.wait_for_selector("#scene-files-list td:has-text('//../assets/tex/checker.png')")
    text = panel.inner_text()
    assert "absolute path translated by a mapping" in text and "image sequence" in text
    assert "missing" not in text

    page.locator("#browser").get_by_label("gone.blend", exact=True).check()
    page.wait_for_selector("#scene-files-list .alert:has-text('missing or unreachable')")
    assert (
        page.locator("#scene-files-list tr.has-error td.mono").first.inner_text()
        == "//tex/gone.png"
    )
    screenshot(page, "submit-files", full_page=True)

    # Unticked in the Selected list: its files leave the panel.
    page.locator("#selected-scenes").get_by_label("gone.blend").click()  # the item goes
    page.wait_for_selector("#scene-files-list .alert", state="detached")
    assert "//tex/gone.png" not in panel.inner_text()
