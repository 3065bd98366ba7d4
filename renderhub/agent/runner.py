"""The run loop: stage inputs, run the renderer, follow its output, report events.

Every event is one JSON object per line on ``out`` (flushed at once) and a readable line
in ``work_dir/agent.log`` (:mod:`.events`); inputs are copied by :mod:`.staging`; the
renderer's own stdout and stderr are read by :mod:`.pipes` and copied as they come to
``work_dir/stdout.log`` and ``stderr.log``. Once ``started`` was sent, every frame of the
chunk gets exactly one ``frame_done`` or ``frame_failed`` before ``finished``.
"""

from __future__ import annotations

import dataclasses
import secrets
import signal
import subprocess
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from . import bytecode, idle, sandbox, warm
from .events import (
    EXIT_BAD_SPEC,
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_INPUT_MISSING,
    EXIT_OK,
    EXIT_RENDERER_FAILED,
    EXIT_TIMEOUT,
    STATUSES,
    CancelFlag,
    Cancelled,
    Emitter,
    clip,
    describe_exit,
)
from .outputs import OutputFolder
from .pipes import LineSplitter, OutputPump, copy_to_log
from .progress import Parser, Update, make_parser
from .sandbox import Sandbox
from .spec import Spec, inside
from .staging import stage
from .template import TemplateError, expand, output_file_name, standard_values

__all__ = ["Run", "run"]

POLL = 0.1  # seconds between checks of the clock, the cancel flag and the renderer
PIPE_DRAIN = 3.0  # after the renderer exits, wait this long for its pipes to close
TAIL_LINES = 30


class Run:
    """One chunk, start to finish; :meth:`execute` returns the exit code."""

    def __init__(
        self,
        spec: Spec,
        emitter: Emitter,
        cancel: CancelFlag,
        *,
        idle_after_start: bool = False,
        slot: warm.WarmSlot | None = None,
    ) -> None:
        self.spec = spec
        self.slot = slot  # a session's renderer kept between chunks (.warm), if any
        self.driven = False  # this chunk's frames go to a driven renderer
        self.markers: set[str] = set()  # streams the driven renderer ended the chunk on
        self.marked_at = 0.0  # when the first of them came
        self.token = ""  # sent with the chunk's frames, said back with the marker
        self.idle_after_start = idle_after_start  # the agent program, not a caller's thread
        self.emitter = emitter
        self.cancel = cancel
        self.work_dir = Path(spec.work_dir)
        self.state: dict[int, str] = dict.fromkeys(spec.frames, "pending")
        self.parser: Parser = make_parser(
            spec.progress_parser, spec.frames, spec.output_dir, spec.output_name
        )
        self.tails = {
            "stdout": deque[str](maxlen=TAIL_LINES),
            "stderr": deque[str](maxlen=TAIL_LINES),
        }
        self.stop: tuple[int, str] | None = None  # (exit code, reason) once we kill the renderer
        self.missing = False  # the renderer said what it was asked for is not in the scene
        self.failures: dict[int, str] = {}
        self.refused: dict[int, list[str]] = {}  # frame -> files found but not accepted
        self.outputs: OutputFolder | None = None

    @property
    def batch_done(self) -> bool:
        """The driven renderer went through the chunk's frames: its marker came on both
        streams, so whatever it printed before it is this chunk's."""
        return self.markers == {"stdout", "stderr"}

    def emit(self, event: str, **fields: Any) -> None:
        self.emitter.emit(event, **fields)

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def finish(
        self, exit_code: int, reason: str = "", renderer_exit_code: int | None = None
    ) -> int:
        self.emit(
            "finished",
            status=STATUSES[exit_code],
            exit_code=exit_code,
            reason=clip(reason),
            renderer_exit_code=renderer_exit_code,
        )
        return exit_code

    # -- before the renderer

    def execute(self) -> int:
        spec = self.spec
        try:
            for directory in (spec.work_dir, spec.output_dir, spec.publish_dir):
                if directory:
                    # Private: other users of the machine have no business in a chunk.
                    Path(directory).mkdir(mode=0o700, parents=True, exist_ok=True)
            self.emitter.open_log(self.work_dir / "agent.log")
            verified = spec.publish_dir or str(self.work_dir / "frames")
            self.outputs = OutputFolder(spec.output_dir, spec.output_name, verified)
        except OSError as exc:
            return self.finish(EXIT_ERROR, f"cannot create the agent's directories: {exc}")
        if missing := self.missing_inputs():
            return self.finish(EXIT_INPUT_MISSING, "; ".join(missing))
        try:
            stats = stage(spec.inputs, self.cancel)
        except Cancelled:
            return self.finish(EXIT_CANCELLED, f"{self.cancel.reason} while staging inputs")
        except OSError as exc:
            return self.finish(EXIT_ERROR, f"staging inputs failed: {exc}")
        for path in stats.broken:
            self.log(f"skipped {path}: a symbolic link to nothing", "warning")
        self.emit("staged", files=stats.files, bytes=stats.bytes, skipped=stats.skipped)
        if not Path(spec.scene).is_file():
            return self.finish(EXIT_INPUT_MISSING, f"scene {spec.scene} does not exist")
        if self.cancel.requested:
            return self.finish(EXIT_CANCELLED, f"{self.cancel.reason} before rendering")
        try:
            argv = self.argv()
        except TemplateError as exc:  # parse_spec checks templates; values could still fail
            return self.finish(EXIT_BAD_SPEC, f"command: {exc}")
        return self.render(argv)

    def missing_inputs(self) -> list[str]:
        missing = [f"input {i.src} does not exist" for i in self.spec.inputs if not _exists(i.src)]
        # A scene inside a staged folder only exists after staging: checked again then.
        staged = any(inside(self.spec.scene, i.dst) for i in self.spec.inputs)
        if not staged and not Path(self.spec.scene).is_file():
            missing.insert(0, f"scene {self.spec.scene} does not exist")
        return missing

    def argv(self) -> list[str]:
        spec = self.spec
        values: dict[str, object] = {
            **spec.variables,
            **standard_values(
                scene=spec.scene,
                frames=spec.frames,
                cpus=spec.cpus,
                output_dir=spec.output_dir,
                output_name=spec.output_name,
            ),
        }
        return expand(spec.command, values)

    # -- the renderer

    def sandbox(self) -> sandbox.Sandbox:
        """Read-only: the scene's folder, the staged inputs and what the spec adds; writable:
        the output folder; a scratch folder of its own for /tmp and $HOME."""
        spec = self.spec
        read_only = [*spec.sandbox.read_only, *(i.dst.rstrip("/") for i in spec.inputs)]
        if not any(inside(spec.scene, p) for p in read_only):
            read_only.append(str(Path(spec.scene).parent))
        return sandbox.Sandbox(
            kind=spec.sandbox.kind,
            network=spec.sandbox.network,
            read_only=tuple(p for p in read_only if not inside(p, spec.output_dir)),
            writable=(spec.output_dir,),
            scratch=str(Path(spec.session_dir or self.work_dir) / "scratch"),
            env=spec.env,
            limits=spec.sandbox.limits,
        )

    def with_bytecode(self, box: Sandbox) -> Sandbox:
        """Blender's Python compiled ahead, when this machine has it (:mod:`.bytecode`)."""
        box, note = bytecode.for_render(self.spec, box)
        if note:
            self.log(note)
        return box

    def render(self, argv: list[str]) -> int:
        if self.slot is not None and (driven := warm.driven_argv(self.spec, argv)) is not None:
            return self.render_driven(driven, self.slot)
        if self.spec.session_dir:  # a session's output folder outlives its chunks
            warm.clear_outputs(self.spec.output_dir)
        box = self.with_bytecode(self.sandbox())
        try:
            proc = sandbox.popen(
                argv,
                box,
                "/tmp" if box.kind == "bwrap" else box.scratch,  # noqa: S108
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except (OSError, sandbox.SandboxError) as exc:
            self.fail_remaining(f"the renderer could not start: {exc}")
            return self.finish(EXIT_RENDERER_FAILED, f"cannot start {argv[0]!r}: {exc}")
        self.emit("started", pid=proc.pid, argv=argv, sandbox=box.kind)
        # From here the agent checks and moves frames while the renderer runs: at idle
        # priority (the renderer, started already, keeps its own), it takes no core from it.
        if self.idle_after_start and (lowered := idle.lower_this_thread(sched_idle=False)):
            self.log(f"checking frames at {', '.join(lowered)}")
        try:
            with (
                open(self.work_dir / "stdout.log", "ab") as out_log,
                open(self.work_dir / "stderr.log", "ab") as err_log,
            ):
                self.follow(proc, {"stdout": out_log, "stderr": err_log})
        finally:
            if proc.poll() is None:  # the agent itself failed: never leave the renderer
                proc.kill()
            proc.wait()
        return self.conclude(proc.returncode)

    def render_driven(self, argv: list[str], slot: warm.WarmSlot) -> int:
        """The chunk's frames through the session's running renderer (started first if
        there is none for this command and sandbox); it is kept when the chunk ends
        cleanly, dropped otherwise."""
        box = self.sandbox()
        # The same renderer serves a chunk that may read the same folders, in any order.
        key = (tuple(argv), dataclasses.replace(box, read_only=tuple(sorted(set(box.read_only)))))
        cwd = "/tmp" if box.kind == "bwrap" else box.scratch  # noqa: S108
        pipes = subprocess.PIPE

        def start() -> subprocess.Popen[bytes]:  # bytecode: not in the key, asked per start
            started = self.with_bytecode(box)
            return sandbox.popen(argv, started, cwd, stdin=pipes, stdout=pipes, stderr=pipes)

        warm.clear_outputs(self.spec.output_dir)
        try:
            renderer, running = slot.get(key, start)
        except (OSError, sandbox.SandboxError) as exc:
            self.fail_remaining(f"the renderer could not start: {exc}")
            return self.finish(EXIT_RENDERER_FAILED, f"cannot start {argv[0]!r}: {exc}")
        self.driven = True
        pid = renderer.proc.pid
        self.emit("started", pid=pid, argv=argv, sandbox=box.kind, warm=running)
        if running:
            self.log(f"renderer pid {pid} kept from this job's last chunk: no start-up")
        if self.idle_after_start and (lowered := idle.lower_this_thread(sched_idle=False)):
            self.log(f"checking frames at {', '.join(lowered)}")
        self.token = secrets.token_hex(8)
        renderer.send(self.token, self.spec.frames)  # one that stopped reading ends its output
        with (
            open(self.work_dir / "stdout.log", "ab") as out_log,
            open(self.work_dir / "stderr.log", "ab") as err_log,
        ):
            logs: dict[str, IO[bytes]] = {"stdout": out_log, "stderr": err_log}
            self.follow(renderer.proc, logs, renderer.pump, renderer.splitters)
        if self.markers and self.stop is None:
            if not self.batch_done:
                slot.drop()
            return self.conclude(0)
        slot.drop()
        code = renderer.proc.returncode
        return self.conclude(code if code is not None else -signal.SIGKILL)

    def follow(
        self,
        proc: subprocess.Popen[bytes],
        logs: dict[str, IO[bytes]],
        pump: OutputPump | None = None,
        splitters: dict[str, LineSplitter] | None = None,
    ) -> None:
        """Copy and parse output until the renderer exited and its pipes closed (or, for
        a driven renderer, until it says it went through the chunk's frames)."""
        pump = pump or OutputPump(proc)
        splitters = splitters or {"stdout": LineSplitter(), "stderr": LineSplitter()}
        started = last_output = time.monotonic()
        kill_at: float | None = None
        exited_at: float | None = None
        signalled = False
        while pump.open_streams and not self.batch_done:
            item = pump.get(POLL)
            now = time.monotonic()
            if item is not None:
                stream, chunk = item
                if chunk is None:
                    pump.open_streams.discard(stream)
                    self.lines(stream, splitters[stream].flush())
                else:
                    last_output = now
                    copy_to_log(logs[stream], chunk)
                    self.lines(stream, splitters[stream].feed(chunk))
            self.handle(self.parser.tick())
            if self.stop is None:
                self.check_limits(now - started, now - last_output)
            if self.stop is not None and not signalled:  # a limit, or a line (handle)
                signalled = True
                kill_at = now + self.spec.kill_grace
                self.terminate(proc)
            if kill_at is not None and now >= kill_at and proc.poll() is None:
                self.log(
                    f"renderer still running {self.spec.kill_grace:g} s after SIGTERM: SIGKILL"
                )
                proc.kill()
                kill_at = None
            if self.markers and not self.batch_done and now - self.marked_at > PIPE_DRAIN:
                self.log("the renderer ended the chunk on one output only: not kept", "warning")
                break  # its frames are looked up all the same; the renderer is dropped
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > PIPE_DRAIN:  # a child of the renderer holds the pipes
                    self.log("renderer exited but its output pipes stayed open", "warning")
                    break

    def check_limits(self, running: float, silent: float) -> None:
        spec = self.spec
        if self.cancel.requested:
            self.stop = (EXIT_CANCELLED, self.cancel.reason)
        elif spec.timeout is not None and running > spec.timeout:
            self.stop = (EXIT_TIMEOUT, f"renderer exceeded the timeout of {spec.timeout:g} s")
        elif spec.stall_timeout is not None and silent > spec.stall_timeout:
            self.stop = (
                EXIT_TIMEOUT,
                f"renderer stalled: no output for {spec.stall_timeout:g} s",
            )

    def terminate(self, proc: subprocess.Popen[bytes]) -> None:
        assert self.stop is not None
        self.log(f"stopping renderer pid {proc.pid}: {self.stop[1]}", "warning")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def lines(self, stream: str, lines: list[str]) -> None:
        for line in lines:
            # Ends the line: another thread's unfinished line may precede it (the token is
            # secret, so the scene cannot print it).
            if self.driven and line.rstrip().endswith(f"{warm.DONE} {self.token}"):
                self.markers.add(stream)  # its frames are still each looked up and checked
                self.marked_at = self.marked_at or time.monotonic()
            elif line.strip():
                self.tails[stream].append(line)
                self.handle(self.parser.feed(line, stream))

    # -- frames

    def handle(self, updates: list[Update]) -> None:
        for update in updates:
            frame = update.frame
            if update.event == "missing":
                self.renderer_missing(update.message)
            elif self.missing:
                continue  # whatever it renders now is not what was asked for
            elif update.event == "log" or frame is None:
                self.log(update.message, "warning")
            elif frame not in self.state:
                continue  # Blender reports frames outside the chunk while loading
            elif update.event == "frame_started" and self.state[frame] == "pending":
                self.state[frame] = "started"
                self.emit("frame_started", frame=frame)
            elif update.event == "progress" and self.state[frame] == "started":
                self.emit("progress", frame=frame, message=update.message)
            elif update.event == "frame_done" and self.state[frame] in ("pending", "started"):
                self.frame_done(frame, update.outputs, update.seconds)

    def renderer_missing(self, line: str) -> None:
        """Blender cannot find the scene or camera it was asked for, yet carries on (the
        default scene, or nothing, exit status 0): stop it; its own line is the reason.
        Like a missing input it fails the same way on every node, so it is not retried."""
        self.log(f"the renderer says: {line}", "error")
        if self.stop is None:
            self.missing = True
            self.stop = (EXIT_INPUT_MISSING, line)

    def frame_done(self, frame: int, claimed: list[str], seconds: float | None) -> bool:
        """The renderer says ``frame`` is saved: done if its files are in the output folder.

        What it printed (``claimed``) is never opened: the files are looked up by name in
        the output folder. A claim without files leaves the frame pending, to be looked up
        again when the renderer exits.
        """
        assert self.outputs is not None
        try:
            found = self.outputs.collect(frame)
        except OSError as exc:
            self.log(f"frame {frame}: the output folder cannot be read: {exc}", "error")
            return False
        for problem in found.problems:
            if problem not in self.refused.setdefault(frame, []):
                self.refused[frame].append(problem)
                self.log(f"frame {frame}: refused {problem}", "warning")
        if not found.paths:
            if claimed:
                self.log(f"frame {frame}: the renderer reported a file, but none is there yet")
            return False
        self.state[frame] = "done"
        self.emit("frame_done", frame=frame, outputs=[str(p) for p in found.paths], seconds=seconds)
        return True

    def frame_failed(self, frame: int, reason: str) -> None:
        self.state[frame] = "failed"
        self.failures[frame] = reason
        self.emit("frame_failed", frame=frame, reason=clip(reason))

    def fail_remaining(self, reason: Callable[[int], str] | str) -> list[int]:
        left = [f for f, state in self.state.items() if state in ("pending", "started")]
        for frame in left:
            self.frame_failed(frame, reason(frame) if callable(reason) else reason)
        return left

    # -- the outcome

    def conclude(self, code: int) -> int:
        self.handle(self.parser.finish(code))
        for frame, state in self.state.items():  # every file saved before the end counts
            if state in ("pending", "started") and not self.missing:
                self.frame_done(frame, [], None)
        if self.stop is not None:
            exit_code, why = self.stop
            self.fail_remaining(why if self.missing else f"not rendered: {why}")
            return self.finish(exit_code, why, code)
        if code != 0:
            what = f"renderer {describe_exit(code)}"
            self.fail_remaining(f"{what} before saving it")
            detail = self.details()
            return self.finish(EXIT_RENDERER_FAILED, f"{what}: {detail}" if detail else what, code)
        earlier = dict(self.failures)
        left = self.fail_remaining(self.not_saved)
        if not self.failures:
            return self.finish(EXIT_OK, "", code)
        if left:
            what = f"renderer exited without saving frame(s) {', '.join(map(str, left))}"
            detail = self.details()
            reason = f"{what}: {detail}" if detail else what
        else:
            reason = "; ".join(f"frame {f}: {why}" for f, why in earlier.items())
        return self.finish(EXIT_RENDERER_FAILED, reason, code)

    def not_saved(self, frame: int) -> str:
        name = output_file_name(self.spec.output_name, frame)
        why = f"renderer exited without writing frame {frame} ({name}.* in {self.spec.output_dir})"
        if refused := self.refused.get(frame):
            why += "; refused: " + "; ".join(refused)
        return why

    def details(self) -> str:
        """The useful part of the renderer's output: its error lines, else the tail."""
        if self.parser.errors:
            return "\n".join(self.parser.errors[-10:])
        for stream in ("stderr", "stdout"):
            if self.tails[stream]:
                return "\n".join(list(self.tails[stream])[-15:])
        return ""


def _exists(path: str) -> bool:
    return Path(path).exists()


def run(
    spec: Spec,
    out: IO[str] | None = None,
    cancel: CancelFlag | None = None,
    *,
    idle_after_start: bool = False,
    slot: warm.WarmSlot | None = None,
) -> int:
    """Render the chunk ``spec`` describes, writing events to ``out``; the exit code.
    With ``idle_after_start`` (the agent program), the calling thread goes to idle priority
    once the renderer started (``idle``): a caller's own thread is never lowered."""
    emitter = Emitter(out, spec)
    runner: Run | None = None
    try:
        runner = Run(
            spec, emitter, cancel or CancelFlag(), idle_after_start=idle_after_start, slot=slot
        )
        return runner.execute()
    except Exception as exc:  # a bug in the agent: still end with a finished event
        emitter.emit("log", level="error", message=traceback.format_exc())
        emitter.emit(
            "finished",
            status=STATUSES[EXIT_ERROR],
            exit_code=EXIT_ERROR,
            reason=f"agent error: {exc!r}",
            renderer_exit_code=None,
        )
        return EXIT_ERROR
    finally:
        emitter.close()
        if runner is not None and runner.outputs is not None:
            runner.outputs.close()
