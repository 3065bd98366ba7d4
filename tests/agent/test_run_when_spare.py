"""Background work that waits for a spare core (renderhub.agent.idle.run_when_spare): the
compiled-Python build is stopped, children and all, while the machine's other work leaves
no core idle, and goes on once it does; its time limit counts only its running time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from renderhub.agent import idle

# Counts to 40 in about four seconds, a line each tenth, a child of a shell (as a
# renderer is bwrap's): what stops must be the whole tree.
COUNTER = "import sys, time\nfor i in range(40):\n    print(i, flush=True)\n    time.sleep(0.1)\n"
BURN = "while True: pass"


def counter(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / "counted"
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    shell = f"exec 1>{out}; {sys.executable} {script}; echo done"
    return subprocess.Popen(["/bin/sh", "-c", shell]), out


@pytest.fixture
def busy_machine() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every core spinning, until the test stops them."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 1)]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def states(pid: int) -> set[str]:
    found = set()
    for each in idle._tree(pid):
        with contextlib.suppress(OSError, IndexError):
            found.add(Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()[0])
    return found


def stopped(pid: int, timeout: float = 15) -> bool:
    """Every process of the tree stopped (T), or in an uninterruptible wait (D) with the stop
    pending: a shell that vforked a child stopped before its exec waits in D for as long as
    the child stays stopped, and a process reading its files takes the stop as the read ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = states(pid)
        if "T" in found and found <= {"T", "D"}:
            return True
        time.sleep(0.1)
    return False


def test_it_waits_while_the_machine_is_busy_and_ends_once_a_core_is_spare(
    tmp_path: Path, busy_machine: list[subprocess.Popen[bytes]]
) -> None:
    proc, out = counter(tmp_path)
    ended: list[bool] = []
    marks: list[float] = []  # the build's "still building" stamp: it is not a dead one

    def mark() -> None:
        marks.append(time.monotonic())

    def wait() -> None:
        ended.append(idle.run_when_spare(proc, 60, still_here=mark, mark_every=1.0))

    waiter = threading.Thread(target=wait)
    waiter.start()

    time.sleep(3.2)
    assert stopped(proc.pid), f"the shell and its child are stopped: {states(proc.pid)}"
    counted = out.read_text().split() if out.exists() else []
    assert len(counted) < 10, f"it went on while the machine was busy: {counted}"
    time.sleep(1.0)
    assert (out.read_text().split() if out.exists() else []) == counted, "no progress while stopped"
    assert len(marks) >= 2, "marked alive while stopped"

    for burner in busy_machine:
        burner.kill()
    waiter.join(180)  # other tests of the suite may keep the machine busy a while
    assert ended == [True]
    assert out.read_text().split() == [*map(str, range(40)), "done"]
    assert proc.returncode == 0


def test_its_limit_counts_only_its_running_time_and_then_the_whole_tree_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Others keep every core busy for its first 2 s, then none: it waits those 2 s
    stopped, runs 1 s (its limit), and is killed with what it started."""
    began = time.monotonic()
    cores = os.cpu_count() or 1

    def machine() -> int:  # clock ticks of others' work: every core busy, then idle
        seconds = min(time.monotonic() - began, 2.0)
        return int(seconds * cores * idle.TICKS)

    monkeypatch.setattr(idle, "_machine_ticks", machine)
    pid_file = tmp_path / "sleeper"
    proc = subprocess.Popen(["/bin/sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"])

    assert idle.run_when_spare(proc, 1.0, every=0.2) is False

    took = time.monotonic() - began
    assert 3.0 <= took < 30, f"{took:.1f} s: the 2 s stopped must not count"
    assert proc.returncode == -signal.SIGKILL
    sleeper = int(pid_file.read_text())
    gone = wait_gone(sleeper)
    assert gone, "the shell's child was killed with it"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def every_core_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Others' work, faked: every core busy from now on, for good."""
    began, cores = time.monotonic(), os.cpu_count() or 1
    ticks = lambda: int((time.monotonic() - began) * cores * idle.TICKS)  # noqa: E731
    monkeypatch.setattr(idle, "_machine_ticks", ticks)


def test_on_a_machine_never_idle_it_runs_anyway_once_its_owner_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It waits stopped until ``go_anyway`` says so (after 2 s here), then runs to its end
    instead of waiting for ever."""
    every_core_busy(monkeypatch)
    began = time.monotonic()
    proc, out = counter(tmp_path)
    ended: list[bool] = []

    def wait() -> None:
        told = lambda: time.monotonic() - began > 2.0  # noqa: E731
        ended.append(idle.run_when_spare(proc, 60, every=0.2, go_anyway=told))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    seen = out.read_text().split() if out.exists() else []
    waiter.join(120)
    waited_for_ever = waiter.is_alive()
    if waited_for_ever:
        idle._signal_tree(proc.pid, signal.SIGKILL)
        waiter.join()

    assert not waited_for_ever and ended == [True]
    # A child forked between the first stop and the next reading may print a line or two.
    assert len(seen) <= 2, f"it went on while the machine was busy: {seen}"
    took = time.monotonic() - began
    assert took >= 6.0, f"{took:.1f} s: stopped its first 2 s, then 4 s of counting"
    assert out.read_text().split() == [*map(str, range(40)), "done"]


def test_told_to_go_on_its_limit_counts_its_cpu_time_within_a_bound_on_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At idle priority beside renders on every core a process may barely run: its 1 s
    limit then counts its CPU time (a spinner is killed after about 1 s), and one that
    gets none (a sleeper) is killed at ``FORCED_BOUND`` times the limit."""
    every_core_busy(monkeypatch)
    for argv, fewest, most in (
        ([sys.executable, "-c", BURN], 1.0, idle.FORCED_BOUND * 1.0),
        (["sleep", "60"], idle.FORCED_BOUND * 1.0, idle.FORCED_BOUND + 20.0),
    ):
        began = time.monotonic()
        proc = subprocess.Popen(argv)
        assert idle.run_when_spare(proc, 1.0, every=0.2, go_anyway=lambda: True) is False
        took = time.monotonic() - began
        assert fewest <= took < most, f"{argv[-1]}: killed after {took:.1f} s"
        assert proc.returncode == -signal.SIGKILL
