"""The /software/ staff pages and the admin's "Add software" from a template.

Who may use the pages is decided by the model permissions images.add_software and
images.change_software, not by the staff flag: a project lead without staff rights may
hold them; a member without them gets 403.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from images.catalogue import CATALOGUE
from images.models import ComputeImage, Software
from renderhub.agent.template import TEMPLATE_VARIABLES

from .test_editors import BLENDER, rows_post

pytestmark = pytest.mark.django_db

LIST, NEW = "/software/", "/software/new/"


def user_with(django_user_model: Any, name: str, *codenames: str, staff: bool = False) -> Any:
    user = django_user_model.objects.create_user(name, password=f"pw-{name}-1", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def lead(client: Any, django_user_model: Any) -> Any:
    """A project lead: not staff, may add and change software."""
    client.force_login(user_with(django_user_model, "lead", "add_software", "change_software"))
    return client


@pytest.fixture
def member(client: Any, django_user_model: Any) -> Any:
    """A member without the software permissions (staff flag or not makes no difference)."""
    client.force_login(user_with(django_user_model, "member", "view_software", staff=True))
    return client


def multi(data: Any) -> dict[str, list[str]]:
    """A QueryDict as the test client posts it: every value of a repeated name (rows)."""
    return dict(data.lists())


def edit_url(software: Software) -> str:
    return f"/software/{software.pk}/"


def test_anonymous_visitors_are_sent_to_log_in(client: Any, blender_software: Software) -> None:
    for url in (LIST, NEW, f"{NEW}?template=blender", edit_url(blender_software)):
        response = client.get(url)
        assert response.status_code == 302, url
        assert "login" in response["Location"] and "next=" in response["Location"]
    response = client.post(NEW, multi(rows_post(blender_software.image, BLENDER.command, [])))
    assert response.status_code == 302
    assert Software.objects.count() == 2  # the built-in blender and ffmpeg only


def test_a_member_without_the_permissions_gets_403(member: Any, blender_software: Software) -> None:
    for url in (LIST, NEW, edit_url(blender_software)):
        assert member.get(url).status_code == 403, url
    data = rows_post(blender_software.image, ["rm", "-rf", "/"], [], name="blender")
    assert member.post(edit_url(blender_software), multi(data)).status_code == 403
    assert member.post(NEW, multi(rows_post(blender_software.image, ["x"], []))).status_code == 403
    blender_software.refresh_from_db()
    assert blender_software.command_template[0] == "blender"
    assert Software.objects.count() == 2  # the built-in blender and ffmpeg only


def test_the_list_offers_only_what_the_user_may_do(
    client: Any, django_user_model: Any, blender_software: Software
) -> None:
    client.force_login(user_with(django_user_model, "adder", "add_software"))
    page = client.get(LIST).content.decode()
    assert "blender" in page and "local-linux" in page
    for entry in CATALOGUE:
        assert f'href="/software/new/?template={entry.key}"' in page
    assert edit_url(blender_software) not in page  # no change permission: no edit link
    assert client.get(edit_url(blender_software)).status_code == 403

    client.force_login(user_with(django_user_model, "changer", "change_software"))
    page = client.get(LIST).content.decode()
    assert edit_url(blender_software) in page
    assert "/software/new/" not in page
    assert client.get(NEW).status_code == 403


def test_a_lead_creates_software_from_the_blender_template(lead: Any, image: ComputeImage) -> None:
    page = lead.get(f"{NEW}?template=blender").content.decode()
    assert "New software from “Blender”" in page
    assert 'name="name" value="blender-2"' in page  # local-linux has a "blender" already
    assert 'name="command_template" value="--cycles-device"' in page
    assert 'name="parameters__name" value="device"' in page
    for name in TEMPLATE_VARIABLES:
        assert f"<code>{{{name}}}</code>" in page
    assert "<code>{engine}</code>" in page  # the software's own parameters, as variables
    assert "js/software-editor.js" in page

    response = lead.post(NEW, multi(rows_post(image, BLENDER.command, BLENDER.parameters)))
    assert response.status_code == 302 and response["Location"] == LIST
    software = Software.objects.get(name="blender-x")
    assert software.command_template == BLENDER.command
    assert str(software) == "blender-x 3.4 LTS (local-linux)"
    assert "Added blender-x 3.4 LTS (local-linux)." in lead.get(LIST).content.decode()


def test_the_form_shows_its_errors_and_keeps_the_rows(lead: Any, image: ComputeImage) -> None:
    params = [{"name": "engine", "type": "choice", "default": "X"}]
    response = lead.post(NEW, multi(rows_post(image, ["blender", "{engine}", "{scene!r}"], params)))
    assert response.status_code == 200
    page = response.content.decode()
    assert "a choice parameter needs a non-empty list of text choices" in page
    assert "argument 3 (&#x27;{scene!r}&#x27;): conversion !r" in page
    assert "unknown variable {engine}" not in page
    assert 'name="command_template" value="{scene!r}"' in page
    assert not Software.objects.filter(name="blender-x").exists()


def test_a_name_taken_on_the_image_says_what_to_do(lead: Any, image: ComputeImage) -> None:
    response = lead.post(NEW, multi(rows_post(image, BLENDER.command, [], name="blender")))
    assert response.status_code == 200
    assert (
        "The image local-linux already has a software named &#x27;blender&#x27;: give this one "
        "another name, or edit that one." in response.content.decode()
    )


def test_a_lead_edits_software(lead: Any, blender_software: Software) -> None:
    page = lead.get(edit_url(blender_software)).content.decode()
    assert "Edit blender 3.4 (local-linux)" in page
    command = [*blender_software.command_template, "--", "--cycles-print-stats"]
    data = rows_post(
        blender_software.image, command, blender_software.parameters, name="blender", version="3.4"
    )
    assert lead.post(edit_url(blender_software), multi(data)).status_code == 302
    blender_software.refresh_from_db()
    assert blender_software.command_template[-1] == "--cycles-print-stats"


def test_an_unknown_template_or_software_is_plain(lead: Any) -> None:
    page = lead.get(f"{NEW}?template=../../etc").content.decode()
    assert "<h1>New software</h1>" in page
    assert lead.get("/software/999999/").status_code == 404


def test_two_blenders_on_two_images_are_told_apart(blender_software: Software) -> None:
    other = ComputeImage.objects.create(name="gpu-nodes", image_id="m-gpu1")
    twin = Software.objects.create(
        image=other, name="blender", version="3.4", command_template=["blender"]
    )
    assert {str(blender_software), str(twin)} == {
        "blender 3.4 (local-linux)",
        "blender 3.4 (gpu-nodes)",
    }
    assert str(Software(name="blender", version="")) == "blender"  # no image yet


# --- the admin ---------------------------------------------------------------------------


@pytest.fixture
def admin(client: Any, alice: Any) -> Any:
    client.force_login(alice)
    return client


def test_the_admin_add_page_offers_the_templates_and_prefills(
    admin: Any, image: ComputeImage
) -> None:
    page = admin.get("/admin/images/software/add/").content.decode()
    for entry in CATALOGUE:
        assert f'href="?template={entry.key}"' in page
    page = admin.get("/admin/images/software/add/?template=ffmpeg-frames").content.decode()
    assert "Prefilled from <strong>ffmpeg: video to image sequence</strong>" in page
    assert 'name="name" value="ffmpeg-2"' in page  # the built-in ffmpeg has the name
    assert 'name="command_template" value="{output_dir}/{scene_name}_%04d.{image_format}"' in page
    assert 'name="parameters__name" value="image_format"' in page
    assert 'name="scene_suffixes" value=".mp4,.mov,.mkv,.avi,.webm,.mxf"' in page
    assert '<option value="none" selected>' in page  # the progress parser

    data = rows_post(
        image,
        next(e for e in CATALOGUE if e.key == "ffmpeg-frames").command,
        [{"name": "image_format", "type": "choice", "choices": ["png", "jpg"], "default": "png"}],
        name="ffmpeg-2",
        progress_parser="none",
        scene_suffixes=".mp4",
    )
    response = admin.post("/admin/images/software/add/", multi(data))
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Software.objects.get(name="ffmpeg-2").parameters[0]["choices"] == ["png", "jpg"]


def test_the_image_inline_has_the_editors_and_the_variables(
    admin: Any, blender_software: Software
) -> None:
    page = admin.get(f"/admin/images/computeimage/{blender_software.image_id}/change/")
    html = page.content.decode()
    assert 'name="software-0-command_template" value="{frame_list}"' in html
    assert 'name="software-0-parameters__name" value="engine"' in html
    assert "<code>{output_pattern}</code>" in html and "<code>{engine}</code>" in html
    assert "js/software-editor.js" in html


def test_the_image_inline_saves_rows(admin: Any, blender_software: Software) -> None:
    image = blender_software.image
    data = rows_post(
        image,
        [*blender_software.command_template, "-y"],
        blender_software.parameters,
        prefix="software-0",
        name="blender",
        version="3.4",
    )
    data.update(
        {
            "name": image.name,
            "image_id": image.image_id,
            "platform": image.platform,
            "description": image.description,
            "software-TOTAL_FORMS": "1",
            "software-INITIAL_FORMS": "1",
            "software-MIN_NUM_FORMS": "0",
            "software-MAX_NUM_FORMS": "1000",
            "software-0-id": str(blender_software.pk),
            "software-0-image": str(image.pk),
        }
    )
    response = admin.post(f"/admin/images/computeimage/{image.pk}/change/", multi(data))
    assert response.status_code == 302, response.content.decode()[-3000:]
    blender_software.refresh_from_db()
    assert blender_software.command_template[-1] == "-y"
