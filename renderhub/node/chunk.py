"""One chunk on a node without keys: stage with links, render with the agent, upload with
grants, report with events.

The manager's answer to a claim (``jobs.node_claims``) says everything: the agent's
command and frames, the sandbox, a read link per scene file (with the place it goes), a
write grant per frame, per thumbnail and for the attempt's logs, the chunk attempt's event
token and the heartbeat period. What the agent reports is turned into events for the
manager; a frame is reported done only after its checked file is uploaded. The node never
names a URL the manager did not grant: a frame's report carries the tail of the name it
wrote (``png``), and the manager makes the URL from the job's output folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import queue
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renderhub.agent.idle import lower_this_thread
from renderhub.node_events import EventSender

from . import transfer
from .agent_session import AgentSession, kept, prune_sessions
from .claims import Control
from .process import CpuMeter, kill_group, read_events, read_tail, start_agent

log = logging.getLogger(__name__)

LOG_FILES = ("agent.log", "stdout.log", "stderr.log")
TAILS = {"agent.log": "agent_log_tail", "stdout.log": "stdout_tail", "stderr.log": "stderr_tail"}


@dataclass(frozen=True)
class NodeConfig:
    name: str
    manager_url: str  # where the manager's own links point (local-disk storage)
    work_dir: Path
    sandbox_paths: tuple[str, ...] = ()  # host folders the renderer may read besides the scene
    cpus: int = 0  # renderer threads per chunk; 0: every core
    # A job's Blender is kept this long after a chunk for the job's next one on the slot
    # (renderhub.node.agent_session); 0: a new renderer for every chunk.
    warm_seconds: float = 10.0

    @property
    def bytecode_dir(self) -> Path:
        """Where its renderers' Python is compiled once (renderhub.agent.bytecode)."""
        return self.work_dir / "bytecode"


class StagingError(Exception):
    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


class NodeChunk:
    def __init__(
        self, grant: dict[str, Any], config: NodeConfig, sender: EventSender, control: Control
    ) -> None:
        self.grant = grant
        self.config = config
        self.sender = sender
        self.control = control
        self.task = int(grant["task"])
        self.attempt = int(grant["attempt"])
        job_dir = config.work_dir / f"job-{int(grant['job'])}"
        self.job_dir = job_dir
        self.work_dir = job_dir / f"task-{int(grant['index'])}-attempt-{self.attempt}"
        self.frames_dir = self.work_dir / "frames"
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.uploads: queue.Queue[tuple[int, list[str], float] | None] = queue.Queue()
        self.uploaded: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
        self.process: subprocess.Popen[bytes] | None = None
        self.session: AgentSession | None = None  # kept between the job's chunks
        self.finished = False  # the agent reported this chunk's end
        self.status = ""
        self.lost = ""
        sender.authorize(self.task, self.attempt, str(grant["token"]))

    def event(self, kind: str, **fields: Any) -> None:
        self.sender.event(self.task, self.attempt, kind, **fields)

    # --- the run ---------------------------------------------------------------------

    def run(self) -> str:
        status, reason, code = "crashed", "", None
        try:
            scene, scene_root = self.stage()
            self.start_agent(scene, scene_root)
            status, reason, code = self.pump()
        except StagingError as exc:
            status, reason = ("input_missing" if exc.missing else "error"), str(exc)
        except Exception as exc:  # the node's own fault: another attempt may do better
            log.exception("chunk %s failed on this node", self.task)
            self.kill()
            status, reason = "crashed", f"RenderHub node error on {self.config.name}: {exc}"
        self.status = status
        logs = self.upload_logs()
        if self.lost:
            log.warning("stopped chunk %s attempt %s: %s", self.task, self.attempt, self.lost)
            return "stopped"
        self.event(
            "finished", status=status, reason=reason, exit_code=code, tails=self.tails(), logs=logs
        )
        self.sender.flush()
        return status

    def stage(self) -> tuple[Path, Path]:
        """The scene's files, once per job and version of its files on this node (slots
        share them), under a lock. A folder per version: a scene changed under a running
        job never pulls the files from under a slot still rendering the old one."""
        versions = "\n".join(f["version"] for f in self.grant["files"])
        digest = hashlib.sha256(versions.encode()).hexdigest()[:16]
        base = self.job_dir / f"scene-{digest}"
        self.job_dir.mkdir(parents=True, exist_ok=True)
        prune(self.config.work_dir)
        with open(self.job_dir / "scene.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marker = base / ".staged"
            if not marker.is_file():
                shutil.rmtree(base, ignore_errors=True)  # a stage cut short
                for entry in self.grant["files"]:
                    self._fetch(entry, base)
                marker.write_text(versions)
            os.utime(self.job_dir)  # in use: not pruned
        return _inside(base, self.grant["scene"]), base

    def _fetch(self, entry: dict[str, Any], base: Path) -> None:
        target = _inside(base, entry["place"])
        cached = self.config.work_dir / "cache" / str(entry["version"])[:64]
        if cached.is_file():
            os.utime(cached)  # used: not pruned
        else:
            try:
                transfer.download(transfer.absolute(self.config.manager_url, entry["url"]), cached)
            except transfer.TransferError as exc:
                raise StagingError(
                    f"{entry['place']}, which the scene needs: {exc}", missing=exc.missing
                ) from None
            cached.chmod(0o444)  # shared by hard links: never written through one
        transfer.link_files(cached, target)

    def agent_spec(self, scene: Path, scene_root: Path) -> dict[str, Any]:
        g = self.grant
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return {
            "version": 1,
            "job": g["job"],
            "task": g["index"],
            "command": g["command"],
            "variables": g["variables"],
            "scene": str(scene),
            "frames": g["frames"],
            "cpus": self.config.cpus or max(1, os.cpu_count() or 1),
            "work_dir": str(self.work_dir),
            "output_dir": str(self.work_dir / "out"),
            "output_name": g["output_name"],
            "progress_parser": g["progress_parser"],
            "timeout": g["timeout"],
            "stall_timeout": g["stall_timeout"],
            "publish_dir": str(self.frames_dir),
            "bytecode_dir": str(self.config.bytecode_dir),
            "sandbox": {
                **g["sandbox"],
                "read_only": [str(scene_root), *self.config.sandbox_paths],
            },
        }

    def start_agent(self, scene: Path, scene_root: Path) -> None:
        spec = self.agent_spec(scene, scene_root)
        spec_path = self.work_dir / "spec.json"
        if self.config.warm_seconds > 0:
            # The job's and its scene version's: a session never serves another job.
            key = f"job-{self.grant['job']}-{scene_root.name}"
            self.session = kept.take(key)
            if self.session is None:
                name = f"session-{secrets.token_hex(6)}"
                self.session = AgentSession(key, self.job_dir / name, self.job_dir / name / "out")
            spec["output_dir"] = str(self.session.output_dir)
            spec["session_dir"] = str(self.session.directory)
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(spec, indent=1))
        if self.session is not None:
            if not self.session.submit(spec_path):
                raise RuntimeError("the render agent session ended before the chunk")
            self.process, self.events = self.session.process, self.session.events
        else:
            self.process = start_agent(spec_path, self.work_dir)
            assert self.process.stdout is not None
            args = (self.process.stdout, self.events)
            threading.Thread(target=read_events, args=args, daemon=True).start()
        threading.Thread(target=self._upload_loop, daemon=True).start()

    def pump(self) -> tuple[str, str, int | None]:
        assert self.process is not None
        outcome: tuple[str, str, int | None] = ("crashed", "", None)
        beat_every = float(self.grant.get("heartbeat") or 5)
        next_beat = 0.0
        lifetime = float(self.grant.get("grant_seconds") or 3600)
        # New grants are asked for this long before the old ones end (a heartbeat or two
        # before at the least).
        renew_at = time.monotonic() + lifetime - max(min(600.0, lifetime / 2), 3 * beat_every)
        cpu = CpuMeter()
        while True:
            try:
                event = self.events.get(timeout=0.25)
            except queue.Empty:
                event = {}
            if event is None:
                break
            kind = event.get("event")
            if kind == "frame_started":
                self.event("frame_started", frame=int(event["frame"]))
            elif kind == "frame_done":
                frame = int(event["frame"])
                seconds = float(event.get("seconds") or 0)
                self.uploads.put((frame, event.get("outputs") or [], seconds))
            elif kind == "frame_failed":
                reason = str(event.get("reason", ""))
                self.event("frame_failed", frame=int(event["frame"]), reason=reason)
            elif kind == "finished":
                self.finished = True
                code = event.get("exit_code")
                outcome = (
                    str(event.get("status", "crashed")),
                    str(event.get("reason") or ""),
                    code if isinstance(code, int) else None,
                )
            self.report_uploads()
            if self.finished and self.session is not None:
                break  # the session's agent lives on, for the job's next chunk
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + beat_every
                self.event(
                    "heartbeat",
                    cpu=cpu.percent(self.process.pid),
                    tails=self.tails(),
                    reply=self.control.queue,
                    renew=time.monotonic() >= renew_at,
                )
                if self.lost or (reason := self.control.stopped(self.task, self.attempt)):
                    self.lost = self.lost or reason
                    self.kill()
                if renewed := self.control.renewed(self.task, self.attempt):
                    # Replaced whole: the upload thread reads the new ones from now on.
                    self.grant = {**self.grant, "outputs": renewed["outputs"],
                                  "logs": renewed["logs"]}  # fmt: skip
                    renew_at = (
                        time.monotonic() + lifetime - max(min(600.0, lifetime / 2), 3 * beat_every)
                    )
        self.uploads.put(None)
        stderr = self.work_dir / "agent.stderr"
        if self.session is not None:
            stderr = self.session.stderr_path
            if not self.finished:  # the agent ended mid-chunk
                self.session.kill()
            code = self.process.wait() if not self.finished else outcome[2]
        else:
            code = self.process.wait()
        while (item := self.uploaded.get()) is not None:  # the uploads' end is a None
            if isinstance(item, BaseException):
                return ("crashed", f"could not upload a frame: {item}", None)
            self.event("frame_done", **item)
        if outcome[0] == "crashed" and outcome[2] is None:
            detail = read_tail(stderr, 2000)
            outcome = ("crashed", f"The agent exited with {code} without reporting: {detail}", code)
        return outcome

    def report_uploads(self) -> None:
        while True:
            try:
                item = self.uploaded.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self.uploaded.put(None)
                return
            if isinstance(item, BaseException):
                self.uploaded.put(item)
                return
            self.event("frame_done", **item)

    def _upload_loop(self) -> None:
        """Upload each checked frame (and its thumbnail) at idle priority, in order."""
        lower_this_thread(sched_idle=False)
        failed = False
        while (item := self.uploads.get()) is not None:
            if failed:
                continue
            frame, outputs, seconds = item
            try:
                self.uploaded.put(self.upload_frame(frame, outputs, seconds))
            except BaseException as exc:
                self.uploaded.put(exc)
                failed = True
        self.uploaded.put(None)  # the end of the uploads

    def upload_frame(self, frame: int, outputs: list[str], seconds: float) -> dict[str, Any]:
        from renderhub import thumbnails

        grants = self.grant["outputs"][str(frame)]
        stem = grants["name"]  # "<scene stem>_0042."
        done: dict[str, Any] = {"frame": frame, "seconds": seconds, "output": "", "thumbnail": ""}
        for text in outputs:
            path = Path(text)
            if path.parent != self.frames_dir or not path.name.startswith(stem):
                log.warning("chunk %s: not uploading %r (not this frame's)", self.task, text)
                continue
            tail = path.name[len(stem) :]
            transfer.upload(self.config.manager_url, grants["file"], tail, path)
            done["output"] = done["output"] or tail
            if not done["thumbnail"] and (thumb := thumbnails.make(path)) is not None:
                thumb_path = self.work_dir / f"thumb-{frame}.jpg"
                thumb_path.write_bytes(thumb)
                transfer.upload(self.config.manager_url, grants["thumbnail"], "jpg", thumb_path)
                done["thumbnail"] = "jpg"
        return done

    def upload_logs(self) -> bool:
        uploaded = False
        for name in LOG_FILES:
            path = self.work_dir / name
            if path.is_file():
                try:
                    transfer.upload(self.config.manager_url, self.grant["logs"], name, path)
                    uploaded = True
                except transfer.TransferError as exc:  # logs are a convenience
                    log.warning("chunk %s: could not upload %s: %s", self.task, name, exc)
        return uploaded

    def tails(self) -> dict[str, str]:
        return {column: read_tail(self.work_dir / name) for name, column in TAILS.items()}

    def kill(self) -> None:
        if self.session is not None:
            self.session.kill()
        else:
            kill_group(self.process)

    def cleanup(self) -> None:
        """The chunk's folder goes; a session that ended its chunk cleanly is kept for the
        job's next chunk on this slot (closed after ``warm_seconds`` unless one comes) if
        the job had more chunks queued when this one was claimed (``more_queued``)."""
        session, clean = self.session, self.finished and not self.lost and self.status == "success"
        if session is None or not clean:
            self.kill()
            shutil.rmtree(self.work_dir, ignore_errors=True)
            return
        shutil.rmtree(self.work_dir, ignore_errors=True)
        if session.alive() and self.grant.get("more_queued", True):
            kept.keep(session, self.config.warm_seconds)
        else:  # the job had no other chunk queued when this one was claimed
            session.close()


KEEP_SECONDS = 24 * 3600  # a job's staged scene and unused cached files, untouched this long
PRUNE_EVERY = 600.0


def prune(work_dir: Path) -> None:
    """At most every PRUNE_EVERY seconds: the folders of jobs not used here for a day and
    running nothing here, session folders no agent holds any more, and cached files no
    staged scene links to, unused for a day."""
    stamp = work_dir / "pruned"
    now = time.time()
    try:
        if now - stamp.stat().st_mtime < PRUNE_EVERY:
            return
    except OSError:
        pass
    work_dir.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    for folder in work_dir.glob("job-*"):
        with contextlib.suppress(OSError):
            idle = now - folder.stat().st_mtime > KEEP_SECONDS
            if idle and not any(p.name.startswith("task-") for p in folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
    prune_sessions(work_dir)
    for cached in (work_dir / "cache").glob("*"):
        with contextlib.suppress(OSError):
            st = cached.stat()
            if st.st_nlink == 1 and now - st.st_mtime > KEEP_SECONDS:
                cached.unlink()


def _inside(base: Path, place: str) -> Path:
    """``base / place`` for a plain relative path the manager gave; never outside ``base``."""
    parts = [p for p in str(place).split("/") if p not in ("", ".")]
    if not parts or ".." in parts or str(place).startswith("/") or "\0" in str(place):
        raise StagingError(f"not a place below the scene's folder: {place!r}", missing=False)
    return base.joinpath(*parts)
