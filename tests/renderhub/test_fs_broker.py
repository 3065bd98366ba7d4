"""The embedded broker hands every message over whole, exactly once, oldest first.

Writers and readers run side by side here, each on its own connection, as a manager, the
render worker and the event drain do on the embedded defaults. With kombu's stock
filesystem transport, readers polling while writers write take some messages before a
byte is in them (they fail to decode and are lost).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import filesystem
from kombu.utils.json import dumps as json_dumps

from renderhub import fs_broker
from renderhub.fs_broker import TRANSPORT

WRITERS, READERS, EACH = 4, 3, 200
WORK = Queue("work", Exchange("work", type="direct"), routing_key="work")


def options(root: Path) -> dict[str, Any]:
    for sub in ("queue", "processed", "control"):
        (root / sub).mkdir(exist_ok=True)
    return {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),
        "polling_interval": 0.001,
    }


def connection(root: Path) -> Connection:
    return Connection("filesystem://", transport=TRANSPORT, transport_options=options(root))


def test_messages_written_while_readers_poll_arrive_whole_and_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A body big enough that writing it is not one instant, and a writer slow to encode
    # it (a busy machine), so readers poll while messages are being written.
    padding = "x" * 200_000

    def slow_dumps(value: Any) -> str:
        time.sleep(0.002)
        return json_dumps(value)

    monkeypatch.setattr(fs_broker, "dumps", slow_dumps)
    monkeypatch.setattr(filesystem, "dumps", slow_dumps)
    received: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    writing = threading.Event()
    lock = threading.Lock()

    def write(writer: int) -> None:
        try:
            with connection(tmp_path) as conn:
                producer = conn.Producer(serializer="json")
                for number in range(EACH):
                    body = {"writer": writer, "number": number, "padding": padding}
                    producer.publish(body, exchange=WORK.exchange, routing_key="work",
                                     declare=[WORK])  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            with connection(tmp_path) as conn:
                queue = WORK(conn.default_channel)
                queue.declare()
                while True:
                    message = queue.get()  # one message, none buffered in the reader
                    if message is None:
                        if not writing.is_set():
                            break
                        time.sleep(0.001)
                        continue
                    body = message.payload
                    assert body["padding"] == padding
                    message.ack()
                    with lock:
                        received.append((body["writer"], body["number"]))
        except BaseException as exc:  # a reader's failure fails the test, not only its thread
            errors.append(exc)

    writing.set()
    readers = [threading.Thread(target=read) for _ in range(READERS)]
    writers = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    for thread in readers:
        thread.join(timeout=60)

    assert not errors, errors
    assert len(received) == WRITERS * EACH
    assert sorted(received) == sorted({(w, n) for w in range(WRITERS) for n in range(EACH)})
    assert not list((tmp_path / "queue").iterdir())  # nothing left behind, no partial files


def test_a_queue_is_read_oldest_first(tmp_path: Path) -> None:
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("ordered")
        for number in range(20):
            queue.put({"number": number})
        got = []
        for _ in range(20):
            message = queue.get(timeout=1)
            got.append(message.payload["number"])
            message.ack()
        with pytest.raises(Empty):
            queue.get(timeout=0.1)
    assert got == list(range(20))
