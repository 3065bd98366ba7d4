"""The storage browser: mapped prefixes only, breadcrumbs, suffix filter, paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from projects import browser

pytestmark = pytest.mark.django_db


def browse(client: Any, project: Any, path: str = "", **params: Any) -> Any:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in {"path": path, **params}.items())
    return client.get(f"/projects/{project.pk}/browse/?{query}", HTTP_HX_REQUEST="true")


def test_it_starts_at_the_mapped_prefixes(as_bob: Any, project: Any, storage_tree: Any) -> None:
    folder = browse(as_bob, project).context["folder"]
    assert folder.folders == [(project.mappings.get().source, project.mappings.get().source)]
    assert folder.files == []


def test_folders_files_breadcrumbs_and_the_suffix_filter(
    as_bob: Any, project: Any, storage_tree: Any, blender_software: Any
) -> None:
    source = project.mappings.get().source
    folder = browse(as_bob, project, source + "seq/", software=blender_software.pk).context[
        "folder"
    ]
    assert [name for name, _ in folder.folders] == ["deep"]
    assert [f.name for f in folder.files] == ["shot_b.blend", "shot_c.BLEND"]  # any case
    assert [f.label for f in folder.files] == ["seq/shot_b.blend", "seq/shot_c.BLEND"]
    assert folder.hidden == 1  # notes.txt
    assert [label for label, _ in folder.crumbs] == ["Mapped folders", source, "seq"]
    unfiltered = browse(as_bob, project, source + "seq/").context["folder"]
    assert len(unfiltered.files) == 3


@pytest.mark.parametrize(
    "path",
    [
        "SOURCE../secret/",
        "SOURCE../",
        "SOURCEseq/../../secret/",
        "ROOTsecret/",
        "file:///etc/",
        "oss://other-bucket/",
        "not a url",
        "SOURCE%00/",
    ],
)
def test_it_never_lists_outside_the_mappings(
    as_bob: Any, project: Any, storage_tree: Any, storage_url: str, path: str
) -> None:
    source = project.mappings.get().source
    path = path.replace("SOURCE", source).replace("ROOT", storage_url).replace("%00", "\x00")
    response = browse(as_bob, project, path)
    assert response.status_code == 400
    assert b"other.blend" not in response.content


def test_a_marker_from_elsewhere_is_ignored(as_bob: Any, project: Any, storage_tree: Any) -> None:
    source = project.mappings.get().source
    folder = browse(as_bob, project, source, marker="../secret/").context["folder"]
    assert [f.name for f in folder.files] == ["shot_a.blend"]


def test_big_folders_are_paged_with_the_storage_marker(
    as_bob: Any, project: Any, storage_root: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(browser, "PAGE_SIZE", 10)
    big = storage_root / "scenes" / "big"
    big.mkdir(parents=True)
    for i in range(25):
        (big / f"s{i:02d}.blend").write_bytes(b"x")
    path = project.mappings.get().source + "big/"
    seen: list[str] = []
    marker = ""
    for _ in range(3):
        folder = browse(as_bob, project, path, marker=marker).context["folder"]
        seen += [f.name for f in folder.files]
        marker = folder.next_marker or ""
    assert seen == [f"s{i:02d}.blend" for i in range(25)] and marker == ""
    first_page = browse(as_bob, project, path).content.decode()
    assert "Next page" in first_page and "marker=" in first_page


def test_outsiders_get_404(as_charlie: Any, project: Any, storage_tree: Any) -> None:
    assert as_charlie.get(f"/projects/{project.pk}/browse/").status_code == 404
    assert as_charlie.get("/projects/999/browse/").status_code == 404


def test_without_htmx_it_is_a_whole_page(client: Any, bob: Any, project: Any) -> None:
    client.force_login(bob)
    text = client.get(f"/projects/{project.pk}/browse/").content.decode()
    assert "<html" in text and 'id="browser"' in text


def test_the_submit_page_falls_back_to_the_mappings_for_a_bad_path(
    as_bob: Any, project: Any, storage_tree: Any
) -> None:
    response = as_bob.get(f"/submit/?project={project.pk}&path=file:///etc/")
    assert response.status_code == 200 and response.context["folder"].url == ""
