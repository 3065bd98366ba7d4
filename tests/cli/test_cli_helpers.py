"""renderhub/cli.py: formatting, the progress bar, --as-user."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management.base import CommandError

from renderhub import cli


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0, "0:00"), (12.7, "0:12"), (754, "12:34"), (3723, "1:02:03"),
     (2 * 86400 + 3723, "2d 1:02:03"), (-5, "0:00")],
)  # fmt: skip
def test_it_formats_durations(seconds: float | None, text: str) -> None:
    assert cli.format_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (5 * 1024**3, "5.0 GB")],
)
def test_it_formats_sizes(size: int | None, text: str) -> None:
    assert cli.format_size(size) == text


def test_it_prints_aligned_tables() -> None:
    out = StringIO()
    cli.print_table(out, ["id", "name"], [[7, "a"], [12, "longer name"]], right=(0,))
    assert out.getvalue() == "ID  NAME\n 7  a\n12  longer name\n"


def test_it_redraws_the_bar_in_place_on_a_terminal() -> None:
    out, clock = Terminal(), Clock()
    bar = cli.ProgressBar(out, 48, unit="frames", width=10, clock=clock)

    bar.update(0)
    clock.now += 12
    bar.update(24, note="1 failed")
    clock.now += 0.01
    bar.update(30)  # too soon after the last redraw: skipped
    bar.close()

    assert out.getvalue() == (
        "\r[----------] 0/48 frames  0:00 elapsed"
        "\r[#####-----] 24/48 frames  1 failed  0:12 elapsed"
        "\r[######----] 30/48 frames  1 failed  0:12 elapsed\n"
    )


def test_it_prints_plain_periodic_lines_elsewhere() -> None:
    out, clock = StringIO(), Clock()
    bar = cli.ProgressBar(out, 100, fmt=cli.format_size, width=4, interval=5, clock=clock)

    for done in range(0, 101, 10):
        bar.update(done)
        clock.now += 1
    bar.close()

    assert out.getvalue().splitlines() == [
        "[----] 0 B/100 B  0:00 elapsed",
        "[##--] 50 B/100 B  0:05 elapsed",
        "[####] 100 B/100 B  0:10 elapsed",
    ]


def test_it_prints_the_final_state_when_closed() -> None:
    out, clock = StringIO(), Clock()
    with cli.ProgressBar(out, 10, interval=60, clock=clock) as bar:
        bar.update(0)
        clock.now += 3
        bar.update(7)
    assert out.getvalue().splitlines()[-1].endswith("] 7/10  0:03 elapsed")


@pytest.mark.django_db
def test_it_resolves_as_user(django_user_model: Any) -> None:
    erin = django_user_model.objects.create_user("erin")
    django_user_model.objects.create_user("gone", is_active=False)

    assert cli.resolve_user(None) is None
    assert cli.resolve_user("erin") == erin
    with pytest.raises(CommandError, match="There is no user named 'eve'"):
        cli.resolve_user("eve")
    with pytest.raises(CommandError, match="User 'gone' is inactive"):
        cli.resolve_user("gone")
