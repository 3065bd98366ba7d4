"""``python -m renderhub.agent SPEC.json`` (or ``-`` to read the spec from stdin)."""

from __future__ import annotations

import signal
import sys
from typing import IO

from . import bytecode
from .events import EXIT_BAD_SPEC, CancelFlag, Emitter
from .runner import run
from .session import serve
from .spec import SpecError, load_spec

USAGE = (
    "usage: python -m renderhub.agent SPEC.json   (- reads the spec from stdin)\n"
    "       python -m renderhub.agent --session   (one spec path per line on stdin)\n"
    "       python -m renderhub.agent --bytecode FOLDER PROGRAM SANDBOX   (compile its Python)"
)


def bad_spec(problems: list[str], out: IO[str]) -> int:
    """Report an unusable spec: a log event per problem, then finished(bad_spec)."""
    emitter = Emitter(out)
    for problem in problems:
        emitter.emit("log", level="error", message=f"bad spec: {problem}")
        print(f"renderhub.agent: bad spec: {problem}", file=sys.stderr)
    emitter.emit(
        "finished",
        status="bad_spec",
        exit_code=EXIT_BAD_SPEC,
        reason="; ".join(problems),
        renderer_exit_code=None,
    )
    return EXIT_BAD_SPEC


def install_signal_handlers(cancel: CancelFlag) -> None:
    """SIGTERM/SIGINT ask the run loop to stop the renderer and report ``cancelled``."""

    def handler(signum: int, _frame: object) -> None:
        cancel.request(f"cancelled by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def die_with_parent() -> None:
    """On Linux, get SIGTERM when the process that started us dies (e.g. a SIGKILLed worker).

    We run in our own session so a cancel can kill the renderer with us; without this an
    orphaned agent would keep a renderer busy on a chunk that was already requeued.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return


def main(argv: list[str] | None = None, stdin: IO[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(args) == 4 and args[0] == "--bytecode":
        return bytecode.main(args[1:])
    if args == ["--session"]:
        die_with_parent()
        return serve(stdin or sys.stdin, sys.stdout, CancelFlag())
    if len(args) != 1:
        return bad_spec([f"expected exactly one argument, the spec path; {USAGE}"], sys.stdout)
    cancel = CancelFlag()
    install_signal_handlers(cancel)
    die_with_parent()
    try:
        spec = load_spec(args[0], stdin)
    except SpecError as exc:
        return bad_spec(exc.problems, sys.stdout)
    return run(spec, sys.stdout, cancel, idle_after_start=True)


if __name__ == "__main__":
    sys.exit(main())
