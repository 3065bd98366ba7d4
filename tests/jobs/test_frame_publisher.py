"""A render worker uploads frames and makes their thumbnails on a thread at idle priority;
its own thread records them, all of them before the chunk's end."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jobs.frame_publisher import FramePublisher, Published
from renderhub import storage
from renderhub.agent import idle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux priorities")


def test_uploads_and_thumbnails_run_at_idle_priority_off_the_workers_thread(
    tmp_path: Path, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in (1, 2):
        Image.new("RGB", (64, 48), (n * 60, 90, 160)).save(frames / f"shot_{n:04d}.png")
    niceness: list[int] = []
    upload = FramePublisher.upload

    def watched(self: FramePublisher, *args: Any) -> Published:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return upload(self, *args)

    monkeypatch.setattr(FramePublisher, "upload", watched)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    output = storage.join(storage_url, "out/")
    publisher = FramePublisher(output, frames, "chunk")
    recorded: list[Published] = []
    for n in (1, 2):
        publisher.put(n, [str(frames / f"shot_{n:04d}.png")], seconds=0.5)
    publisher.close(recorded.append)

    assert niceness == [idle.NICE, idle.NICE]
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the worker's thread is untouched
    assert [p.number for p in recorded] == [1, 2]
    backend, prefix = storage.resolve(output)
    for published in recorded:
        assert published.output_url and published.thumbnail_url
        key = prefix + f"_thumbs/shot_{published.number:04d}.jpg"
        assert backend.stat(key).size > 0


def test_an_upload_error_reaches_the_workers_thread(tmp_path: Path, storage_url: str) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "shot_0001.png").write_bytes(b"not read: the folder is refused first")
    publisher = FramePublisher("nowhere://x/", frames, "chunk")
    publisher.put(1, [str(frames / "shot_0001.png")], seconds=0.1)
    with pytest.raises(storage.StorageError):
        publisher.close(lambda _: None)
