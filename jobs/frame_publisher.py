"""Uploading a chunk's finished frames, with their thumbnails, at idle priority.

The render worker hands each frame the agent checked to a thread of its own that runs at
nice 19 with idle I/O (``renderhub.agent.idle``), so uploads and thumbnails take the cores
and the disk only when the renders leave them free. The thread only uploads: the worker's
own thread records each uploaded frame in the database (:meth:`FramePublisher.drain`), and
drains them all before it records the chunk's end, so a frame is never counted after its
chunk ended.

SCHED_IDLE is not used here: the thread shares the worker's interpreter lock, and a thread
the scheduler almost never runs could hold that lock while the worker's heartbeat waits.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from renderhub import storage, thumbnails
from renderhub.agent.idle import lower_this_thread

log = logging.getLogger(__name__)

JOIN_SECONDS = 600  # the longest a chunk's end waits for its last uploads


@dataclass(frozen=True)
class Published:
    number: int
    seconds: float
    output_url: str
    thumbnail_url: str


class FramePublisher:
    """One thread per chunk run, started on the first frame; ``put`` frames, ``drain`` what
    has been uploaded, ``close`` to wait for the rest."""

    def __init__(self, output_url: str, frames_dir: Path, label: str) -> None:
        self.output_url = output_url
        self.frames_dir = frames_dir
        self.label = label
        self.todo: queue.Queue[tuple[int, list[str], float] | None] = queue.Queue()
        self.done: queue.Queue[Published | BaseException] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.priority: list[str] = []

    def put(self, number: int, outputs: list[str], seconds: float) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name=f"publish {self.label}")
            self.thread.daemon = True
            self.thread.start()
        self.todo.put((number, outputs, seconds))

    def drain(self, record: Callable[[Published], object]) -> None:
        """Record the frames uploaded so far; an upload's error is raised here."""
        while True:
            try:
                item = self.done.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                raise item
            record(item)

    def close(self, record: Callable[[Published], object]) -> None:
        """Wait for the frames still being uploaded and record them."""
        if self.thread is not None:
            self.todo.put(None)
            self.thread.join(JOIN_SECONDS)
            if self.thread.is_alive():
                log.warning("%s: uploads still running after %d s", self.label, JOIN_SECONDS)
        self.drain(record)

    def _run(self) -> None:
        self.priority = lower_this_thread(sched_idle=False)
        log.debug("%s: publishing at %s", self.label, ", ".join(self.priority) or "normal")
        while (item := self.todo.get()) is not None:
            number, outputs, seconds = item
            try:
                self.done.put(self.upload(number, outputs, seconds))
            except BaseException as exc:  # handed to the worker's thread, which fails the chunk
                self.done.put(exc)
                return

    def upload(self, number: int, outputs: list[str], seconds: float) -> Published:
        """Upload the frame's files to the job's output folder, with a thumbnail."""
        backend, prefix = storage.resolve(self.output_url)
        output_url = thumb_url = ""
        for path_text in outputs:
            path = Path(path_text)
            if path.parent != self.frames_dir or not path.is_file() or path.is_symlink():
                # The agent only reports files it took over; anything else is not uploaded.
                log.warning(
                    "%s: ignored output %r outside %s", self.label, path_text, self.frames_dir
                )
                continue
            key = prefix + path.name
            backend.upload_file(path, key)
            output_url = output_url or backend.url_for(key)
            if not thumb_url and (thumb := thumbnails.make(path)) is not None:
                thumb_key = f"{prefix}_thumbs/{path.stem}.jpg"
                backend.write(thumb_key, thumb, content_type="image/jpeg")
                thumb_url = backend.url_for(thumb_key)
        return Published(number, seconds, output_url, thumb_url)
