"""The embedded broker: kombu's filesystem transport, with messages that appear whole.

kombu writes a message into its final name and locks it after opening, while a reader
moves away any file with that name: a reader can take a message before a byte of it is
written, fail to decode it and lose it (seen in CI as a ``JSONDecodeError`` in the
worker and a chunk that never ran); the exchange tables that route messages to queues
are rewritten in place the same way, so a sender could read an empty table and fail.
Here a message or a table is written under a name no reader looks at and renamed over
its final name once complete (table updates take a lock so none is lost), and a reader
claims a message by renaming it into the broker's own folder (same filesystem, so the
claim is atomic and two readers never both take one).
"""

from __future__ import annotations

import fcntl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

TRANSPORT = "renderhub.fs_broker:Transport"  # the path Celery and kombu import it by
PARTIAL = ".part"  # a message being written; its name does not end in ``<queue>.msg``


Table = list[filesystem.exchange_queue_t]


class Channel(filesystem.Channel):
    def _table_file(self, exchange: str) -> Path:
        # kombu's own name check (no path out of the control folder); its stubs predate it
        file: Path = self._exchange_file(exchange)  # type: ignore[attr-defined]
        return file

    def get_table(self, exchange: str) -> Table:  # type: ignore[override]  # as kombu's
        try:
            rows = loads(self._table_file(exchange).read_bytes())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot read the table of exchange {exchange!r}") from exc
        return [filesystem.exchange_queue_t(*row) for row in rows]

    def queue_bind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str = "",
        arguments: Any = None,
        **kwargs: Any,
    ) -> None:
        # kombu skips a binding its process-wide state already holds, though the thread
        # that put it there may not have written it to the table yet (a publish in
        # between went nowhere): every bind writes the table (once, under its lock).
        exchange = exchange or "amq.direct"
        known = self.state.has_binding(queue, exchange, routing_key)
        super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)
        if known:
            meta = self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments)
            self._queue_bind(exchange, meta[0], meta[1], meta[2])  # (key, pattern, queue)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str | None, queue: str) -> None:
        row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._change_table(exchange, lambda rows: rows if row in rows else [row, *rows])

    def _delete(
        self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any
    ) -> None:
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._change_table(exchange, lambda rows: [r for r in rows if r != row])

    def _change_table(self, exchange: str, change: Callable[[Table], Table]) -> None:
        file = self._table_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        try:
            with open(file.parent / f"{file.name}.lock", "a") as guard:
                fcntl.flock(guard, fcntl.LOCK_EX)  # released when closed
                rows = self.get_table(exchange)
                changed = change(rows)
                if changed != rows or not file.exists():
                    partial = file.parent / f"{file.name}{PARTIAL}"
                    partial.write_bytes(str_to_bytes(dumps(changed)))
                    partial.replace(file)
        except OSError as exc:
            raise ChannelError(f"Cannot change the table of exchange {exchange!r}") from exc

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Names sort by the time they were sent (kombu's are in milliseconds, so a burst
        # came out shuffled), and a queue is read oldest first.
        name = f"{time.monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        final = Path(self.data_folder_out) / name
        partial = final.with_name(name + PARTIAL)
        try:
            partial.write_bytes(str_to_bytes(dumps(payload)))
            partial.replace(final)
        except OSError as exc:
            raise ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc

    def _get(self, queue: str) -> Any:  # type: ignore[override]  # as kombu's
        wanted = f"{queue}.msg"
        claims = Path(self.processed_folder)
        for waiting in sorted(Path(self.data_folder_in).iterdir()):
            name = waiting.name
            if name.partition(".")[2] != wanted:
                continue
            claimed = claims / name
            try:
                waiting.rename(claimed)
            except FileNotFoundError:
                continue  # another reader claimed it first
            except OSError as exc:
                raise ChannelError(f"Cannot claim {name!r} into {claims}") from exc
            payload = claimed.read_bytes()
            if not self.store_processed:
                claimed.unlink()
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
