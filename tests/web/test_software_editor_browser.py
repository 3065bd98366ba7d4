"""The editors' JavaScript in a real headless Chromium: rows are added, moved and removed,
the variables list follows the parameters as they are typed, the JSON box and the rows
turn into each other, and what is saved is what the rows showed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from images.models import Software

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE_ROWS = "[data-rows] > [data-row]:not([data-prototype])"


def values(page: Any, editor: str = "[data-editor=command]") -> list[str]:
    return page.eval_on_selector_all(
        f"{editor} {LIVE_ROWS} input.sw-arg", "els => els.map(e => e.value)"
    )


def user_with(django_user_model: Any, name: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(name, password=f"pw-{name}-1")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_rows_are_added_moved_and_removed_and_saved_as_shown(
    open_page: Any, django_user_model: Any, image: Any
) -> None:
    page = open_page(user_with(django_user_model, "lead", "add_software"))
    page.goto("/software/new/?template=generic")
    page.fill("#id_name", "my-renderer")
    page.select_option("#id_image", str(image.pk))
    command = page.locator("[data-editor=command]")
    rows = command.locator(LIVE_ROWS)
    assert values(page)[:3] == ["my-renderer", "--scene", "{scene}"]

    rows.nth(1).locator("[data-row-remove]").click()  # no "--scene": the scene comes first
    rows.nth(2).locator("[data-row-up]").click()  # "--frames" above "{scene}"
    rows.nth(0).locator("[data-row-down]").click()  # the program can be moved too…
    rows.nth(1).locator("[data-row-up]").click()  # …and back
    command.locator("[data-row-add]").click()
    page.keyboard.type("--quality={quality}")
    assert values(page)[:3] == ["my-renderer", "--frames", "{scene}"]
    assert values(page)[-1] == "--quality={quality}"
    assert len(values(page)) == 9  # right after the last argument: no blank rows between

    own = command.locator("[data-own-variables]")
    assert "None yet" in own.inner_text()
    params = page.locator("[data-editor=parameters]")
    params.locator("[data-row-add]").click()
    new = params.locator(LIVE_ROWS).last
    new.locator("[data-param-name]").fill("quality")
    new.locator("[data-param-help]").fill("Render quality, 1 to 5")
    new.locator("select[name=parameters__type]").select_option("int")
    new.locator("input[name=parameters__default]").fill("3")
    assert own.inner_text().strip() == "{quality} Render quality, 1 to 5"  # live, as typed
    screenshot(page, "software-new", full_page=True)

    page.click("button:has-text('Save')")
    page.wait_for_url("**/software/")
    software = Software.objects.get(name="my-renderer")
    assert software.command_template == [
        "my-renderer",
        "--frames",
        "{scene}",
        "{frames}",
        "--output",
        "{output_pattern}",
        "--threads",
        "{cpus}",
        "--quality={quality}",
    ]
    assert software.parameters == [
        {
            "name": "quality",
            "type": "int",
            "help": "Render quality, 1 to 5",
            "required": False,
            "default": 3,
        }
    ]


def test_the_json_box_and_the_rows_turn_into_each_other(
    open_page: Any, django_user_model: Any, blender_software: Software
) -> None:
    page = open_page(user_with(django_user_model, "lead", "change_software"))
    page.goto(f"/software/{blender_software.pk}/")
    command = page.locator("[data-editor=command]")
    command.locator("summary").click()
    command.locator("[data-use-json]").check()
    text = command.locator("[data-json]").input_value()
    assert json.loads(text) == blender_software.command_template
    assert "\n  " in text  # indented, one argument a line
    command.locator("[data-json]").fill(
        '[\n    "blender",\n    "-b",\n    "{scene}",\n    "-E",\n    "{engine}"\n]'
    )
    command.locator("[data-use-json]").uncheck()
    assert values(page) == ["blender", "-b", "{scene}", "-E", "{engine}", ""]  # + a new row

    params = page.locator("[data-editor=parameters]")
    params.locator("summary").click()
    params.locator("[data-use-json]").check()
    assert [p["name"] for p in json.loads(params.locator("[data-json]").input_value())] == [
        "engine",
        "format",
    ]
    page.on("dialog", lambda dialog: dialog.accept())
    params.locator("[data-json]").fill("[{broken")
    params.locator("[data-use-json]").click()  # try to go back to rows
    assert params.locator("[data-use-json]").is_checked()  # bad JSON stays JSON
    params.locator("[data-json]").fill(
        '[{"name": "engine", "type": "choice", "choices": ["CYCLES"]}]'
    )
    params.locator("[data-use-json]").uncheck()
    names = page.eval_on_selector_all(
        f"[data-editor=parameters] {LIVE_ROWS} [data-param-name]", "els => els.map(e => e.value)"
    )
    assert names == ["engine", ""]

    page.click("button:has-text('Save')")
    page.wait_for_url("**/software/")
    blender_software.refresh_from_db()
    assert blender_software.command_template == ["blender", "-b", "{scene}", "-E", "{engine}"]
    assert blender_software.parameters[0]["choices"] == ["CYCLES"]


def test_the_admin_inline_added_in_the_page_gets_working_editors(
    open_page: Any, alice: Any, blender_software: Software
) -> None:
    page = open_page(alice)
    page.goto(f"/admin/images/computeimage/{blender_software.image_id}/change/")
    # The image's software as migrated (Blender and ffmpeg), or as re-made after a
    # transactional test flushed the database (Blender): the new inline comes after them.
    new = int(page.input_value("#id_software-TOTAL_FORMS"))
    page.click("text=Add another Software")
    inline = page.locator(f"#software-{new}")
    inline.locator("[data-editor=command] [data-row-add]").click()
    page.keyboard.type("my-renderer")
    field = inline.locator(f"[data-editor=command] {LIVE_ROWS} input").last
    assert field.get_attribute("name") == f"software-{new}-command_template"
    inline.locator("[data-editor=command] [data-row-add]").click()
    page.keyboard.type("{scene}")
    inline.locator(f"#id_software-{new}-name").fill("other")
    inline.locator(f"#id_software-{new}-scene_suffixes").fill(".scn")
    inline.locator(f"#id_software-{new}-progress_parser").select_option("none")
    page.click("input[name=_save]")
    page.wait_for_url("**/computeimage/")
    other = Software.objects.get(name="other")
    assert other.command_template == ["my-renderer", "{scene}"]
