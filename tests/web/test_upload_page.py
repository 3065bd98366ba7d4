"""Uploading from the storage browser in a real Chromium: a folder with its structure, files
in pieces, a drop, and the folder kept when the submit page refuses a submission."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.projects.upload_helpers import make_oss_project

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def writable(project: Any) -> Any:
    project.mappings.update(writable=True)
    return project


def _scene_folder(base: Path) -> dict[str, bytes]:
    files = {
        "robot.blend": b"BLENDER-v304" + os.urandom(300_000),  # several pieces
        "textures/metal.png": b"\x89PNG" + os.urandom(100),
        "seq 01/ünïcödé shot.blend": b"BLENDER-v304",
        "empty.txt": b"",
    }
    for path, data in files.items():
        target = base / "robot" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return files


def test_upload_a_scene_folder_from_the_submit_page_and_pick_its_scene(
    open_page: Any,
    bob: Any,
    writable: Any,
    blender_software: Any,
    storage_root: Path,
    tmp_path: Path,
    settings: Any,
) -> None:
    settings.UPLOAD_CHUNK_BYTES = 64 * 1024
    files = _scene_folder(tmp_path)
    page = open_page(bob)
    page.goto(f"/submit/?project={writable.pk}&software={blender_software.pk}")
    page.click("#browser a:has-text('scenes/')")
    page.wait_for_selector("#browser .upload")
    page.set_input_files("#browser input[webkitdirectory]", str(tmp_path / "robot"))
    page.wait_for_selector("#browser .upload-list .summary:has-text('4 of 4 files uploaded.')")
    for path, data in files.items():
        assert (storage_root / "scenes" / "robot" / path).read_bytes() == data
    assert not list((storage_root / "scenes").rglob(".renderhub-tmp-*"))
    screenshot(page, "upload")

    # The pane was reloaded in place: the new folder is there; its scene can be ticked.
    page.click("#browser a:has-text('robot/')")
    page.locator("#browser").get_by_label("robot.blend", exact=True).check()
    assert page.locator("#selected-scenes input:checked").count() == 1
    # empty.txt is listed as what it is, in words (not "1 other file … are not blender scenes").
    assert "1 other file here is not a Blender scene." in page.inner_text("#browser")
    page.click("#browser a:has-text('textures/')")
    page.wait_for_selector("#browser [aria-current=location]:has-text('textures')")
    assert "1 other file here is not a Blender scene." in page.inner_text("#browser")


def test_files_dropped_on_the_pane_are_uploaded(
    open_page: Any, bob: Any, writable: Any, storage_root: Path
) -> None:
    page = open_page(bob)
    source = writable.mappings.get().source
    page.goto(f"/projects/{writable.pk}/browse/?path={source}")
    page.wait_for_selector("#browser .upload")
    page.evaluate(
        """() => {
        const dt = new DataTransfer();
        dt.items.add(new File(["one"], "dropped one.blend"));
        dt.items.add(new File(["two"], "dropped-two.blend"));
        const target = document.querySelector('#browser .entries');
        target.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true}));
        target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
        }"""
    )
    page.wait_for_selector("#browser .upload-list .summary:has-text('2 of 2 files uploaded.')")
    assert (storage_root / "scenes" / "dropped one.blend").read_bytes() == b"one"
    assert (storage_root / "scenes" / "dropped-two.blend").read_bytes() == b"two"
    page.wait_for_selector("#browser .entry:has-text('dropped one.blend')")


def test_a_refused_upload_says_why(
    open_page: Any, bob: Any, project: Any, storage_root: Path, tmp_path: Path, settings: Any
) -> None:
    """A read-only mapping shows no upload controls; a refused file shows the reason."""
    page = open_page(bob)
    source = project.mappings.get().source
    page.goto(f"/projects/{project.pk}/browse/?path={source}")
    assert page.locator("#browser .upload").count() == 0
    assert "mapped read-only" in page.inner_text("#browser")

    project.mappings.update(writable=True)
    page.reload()
    big = tmp_path / "big.blend"
    big.write_bytes(b"x" * 2048)
    settings.UPLOAD_MAX_BYTES = 1024
    page.set_input_files("#browser input[type=file]:not([webkitdirectory])", str(big))
    page.wait_for_selector("#browser .upload-list .failed:has-text('UPLOAD_MAX_BYTES')")
    assert not (storage_root / "scenes" / "big.blend").exists()


def test_the_browser_keeps_its_folder_when_the_submit_is_refused(
    open_page: Any, bob: Any, project: Any, blender_software: Any, storage_tree: Path
) -> None:
    page = open_page(bob)
    page.goto(f"/submit/?project={project.pk}")
    page.click("#browser a:has-text('scenes/')")
    page.click("#browser a:has-text('seq/')")
    page.wait_for_selector("#browser [aria-current=location]:has-text('seq')")
    page.click("button:has-text('Submit render')")  # nothing chosen: refused
    page.wait_for_selector(".errorlist")
    assert page.inner_text("#browser [aria-current=location]") == "seq"
    page.reload()
    assert page.inner_text("#browser [aria-current=location]") == "seq"


def test_upload_to_oss_goes_from_the_page_straight_to_the_bucket(
    open_page: Any,
    live: Any,
    bob: Any,
    image: Any,
    cloud_oss: Any,
    bucket: str,
    settings: Any,
    tmp_path: Path,
) -> None:
    """The page's XHR POSTs the signed form cross-origin (a CORS preflight first, which the
    bucket's rules must allow); RenderHub never sees the bytes."""
    project = make_oss_project(image, bob, cloud_oss, bucket, settings)
    files = _scene_folder(tmp_path)
    page = open_page(bob)
    source = project.mappings.get().source
    page.goto(f"/projects/{project.pk}/browse/?path={source}")
    cloud_oss.cors_origins = [live.url.replace("localhost", "127.0.0.1"), live.url]
    before = cloud_oss.count("POST", bucket=bucket)
    try:
        page.set_input_files("#browser input[webkitdirectory]", str(tmp_path / "robot"))
        page.wait_for_selector("#browser .upload-list .summary:has-text('4 of 4 files uploaded.')")
    finally:
        cloud_oss.cors_origins = []
    for path, data in files.items():
        assert cloud_oss.get(bucket, f"scenes/robot/{path}").data == data
    assert cloud_oss.count("POST", bucket=bucket) - before == 4
    assert cloud_oss.count("OPTIONS", bucket=bucket) >= 1  # the browser asked first
    page.wait_for_selector("#browser a:has-text('robot/')")


def test_without_cors_rules_the_page_says_so(
    open_page: Any,
    bob: Any,
    image: Any,
    cloud_oss: Any,
    bucket: str,
    settings: Any,
    tmp_path: Path,
) -> None:
    project = make_oss_project(image, bob, cloud_oss, bucket, settings)
    (tmp_path / "a.blend").write_bytes(b"x")
    page = open_page(bob)
    page.goto(f"/projects/{project.pk}/browse/?path={project.mappings.get().source}")
    page.set_input_files(
        "#browser input[type=file]:not([webkitdirectory])", str(tmp_path / "a.blend")
    )
    page.wait_for_selector("#browser .upload-list .failed:has-text('CORS')")
    assert cloud_oss.keys(bucket) == []
