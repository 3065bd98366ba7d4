"""The sandbox itself, run for real: what a confined program can see, write and reach."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from renderhub.agent import sandbox
from renderhub.agent.sandbox import Limits, Sandbox, SandboxError

needs_bwrap = pytest.mark.skipif(sandbox.problem("bwrap") is not None, reason="no usable bwrap")


def run(argv: list[str], box: Sandbox, cwd: str = "/tmp") -> subprocess.CompletedProcess[str]:
    proc = sandbox.popen(argv, box, cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out.decode(), "")


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "scene.txt").write_text("scene")
    (tmp_path / "out").mkdir()
    return Sandbox(
        read_only=(str(tmp_path / "in"),),
        writable=(str(tmp_path / "out"),),
        scratch=str(tmp_path / "scratch"),
        env={"RENDER_VAR": "declared"},
    )


@needs_bwrap
def test_inputs_read_only_outputs_writable_the_rest_absent(box: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    script = (
        f"cat {tmp_path}/in/scene.txt; echo;"
        f"(echo x > {tmp_path}/in/new) 2>/dev/null || echo in-is-read-only;"
        f"echo frame > {tmp_path}/out/f.png && echo out-is-writable;"
        f"cat {tmp_path}/secret 2>/dev/null || echo secret-is-absent;"
        "ls /root /work /var 2>/dev/null || echo host-folders-absent;"
        "echo tmp > /tmp/t && echo tmp-is-scratch; id -u"
    )
    result = run(["/bin/sh", "-c", script], box)
    assert result.returncode == 0, result.stdout
    assert result.stdout.split() == [
        "scene",
        "in-is-read-only",
        "out-is-writable",
        "secret-is-absent",
        "host-folders-absent",
        "tmp-is-scratch",
        str(sandbox.SANDBOX_UID),
    ]
    assert (tmp_path / "out" / "f.png").read_text() == "frame\n"
    assert (tmp_path / "scratch" / "t").read_text() == "tmp\n"


@needs_bwrap
def test_the_environment_is_cleared(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://secret")
    result = run(["/usr/bin/env"], box)
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert names <= {"PATH", "HOME", "TMPDIR", "LANG", "USER", "LOGNAME", "TZ", "PWD", "RENDER_VAR"}
    assert "RENDER_VAR=declared" in result.stdout and "secret" not in result.stdout


@needs_bwrap
def test_no_network_unless_allowed(box: Sandbox) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected || echo no-network"
        assert run(["/bin/bash", "-c", probe], box).stdout.strip().endswith("no-network")
        allowed = Sandbox(**{**box.__dict__, "network": True})
        assert run(["/bin/bash", "-c", probe], allowed).stdout.strip() == "connected"


@needs_bwrap
def test_no_user_namespace_or_capability_to_escape_with(box: Sandbox) -> None:
    result = run(
        ["/bin/sh", "-c", "unshare -U true || echo refused; grep CapEff /proc/self/status"], box
    )
    assert "refused" in result.stdout
    assert "CapEff:\t0000000000000000" in result.stdout


@needs_bwrap
def test_file_size_limit(box: Sandbox, tmp_path: Path) -> None:
    limited = Sandbox(**{**box.__dict__, "limits": Limits(file_size=4096)})
    script = f"head -c 100000 /dev/zero > {tmp_path}/out/big; echo exit=$?"
    result = run(["/bin/sh", "-c", script], limited)
    assert "exit=0" not in result.stdout
    assert (tmp_path / "out" / "big").stat().st_size <= 4096


def test_a_missing_program_is_named(box: Sandbox) -> None:
    with pytest.raises(SandboxError, match="blender-9 is not an executable program on PATH"):
        sandbox.popen(["blender-9"], box, "/tmp")


@needs_bwrap
def test_a_missing_folder_to_bind_is_an_error(box: Sandbox, tmp_path: Path) -> None:
    broken = Sandbox(**{**box.__dict__, "read_only": (str(tmp_path / "gone"),)})
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.popen(["/bin/true"], broken, "/tmp")


def test_unknown_kinds_are_refused() -> None:
    assert sandbox.problem("docker") == "unknown sandbox 'docker'; use one of bwrap, none"


@needs_bwrap
def test_the_program_is_never_host_root(box: Sandbox, tmp_path: Path) -> None:
    """Started by root, a sandbox uid mapped to root would still be host root to the
    kernel (sysctls, setuid files, no process limit): the program runs as host 65534."""
    current = Path("/proc/sys/kernel/core_pattern").read_text()
    script = (
        "cat /proc/self/uid_map;"
        # The same value back: harmless even if it got through.
        f"(printf '%s' '{current.strip()}' > /proc/sys/kernel/core_pattern) 2>/dev/null"
        " && echo SYSCTL-WRITTEN || echo sysctl-refused;"
        f"cp /bin/true {tmp_path}/out/t && chmod 4755 {tmp_path}/out/t;"
        "(touch /planted) 2>/dev/null || echo root-read-only"
    )
    result = run(["/bin/sh", "-c", script], box)
    mapped = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [inside for inside, outside, _n in mapped if outside == "0"] in ([], ["0"])
    assert "SYSCTL-WRITTEN" not in result.stdout and "sysctl-refused" in result.stdout
    assert "root-read-only" in result.stdout
    planted = (tmp_path / "out" / "t").stat()
    assert planted.st_uid != 0  # a setuid file, if any, is the sandbox user's, not root's


@needs_bwrap
def test_process_limit_holds(box: Sandbox) -> None:
    """A fork bomb stops at the limit (counted for the host's uid 65534, never root)."""
    limited = Sandbox(**{**box.__dict__, "limits": Limits(processes=8)})
    result = run(["/bin/sh", "-c", "for i in $(seq 30); do sleep 2 & done"], limited)
    assert "fork" in result.stdout.lower() or "unavailable" in result.stdout.lower()


@needs_bwrap
def test_shared_memory_is_bounded(box: Sandbox) -> None:
    small = Sandbox(**{**box.__dict__, "limits": Limits(shm=1 << 20)})
    result = run(
        ["/bin/sh", "-c", "head -c 4000000 /dev/zero > /dev/shm/x; wc -c < /dev/shm/x"], small
    )
    assert int(result.stdout.strip().splitlines()[-1]) <= 1 << 20
