"""The outbox: writes the relay has not acknowledged yet.

Every put goes into the outbox before it is sent and leaves it when the relay answers (``ok`` or
``err``), or when its ack timeout passes on a connection that stayed open (the relay got it but
chose not to answer, as the Node relay does for a write HAM discards). Whatever is still in the
outbox when a connection drops, or was put while offline, is sent again after the next connect,
in order and with its original states: HAM makes a repeat harmless.

A reset drops the queued fields in its scope (``drop``), so a stale offline write is never pushed
back after the reset that wiped it.

``MemoryOutbox`` lives as long as the peer; ``SQLiteOutbox`` keeps the queue in a small SQLite
file of its own (next to the peer's SQLiteGraph), so writes made offline survive a restart of the client.
File I/O runs in one worker thread, in submission order; an in-memory mirror answers reads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import wire
from ..core.fence import FenceRule, Protected
from ..core.graph import node_states


@dataclass(frozen=True)
class OutboxEntry:
    entry_id: int
    graph: dict[str, Any]  # the wire graph, exactly as it will be sent
    created: float  # seconds since the epoch


def drop_fenced(graph: dict[str, Any], rule: FenceRule, protected: Protected, now_ms: float) -> tuple[dict[str, Any], int]:
    """The graph without the fields ``rule`` fences, and how many were removed."""
    watermark = rule.watermark_at(now_ms)
    kept: dict[str, Any] = {}
    removed = 0
    for soul, node in graph.items():
        if not rule.covers(soul, protected):
            kept[soul] = node
            continue
        states = node_states(node)
        stay = [(key, node[key], state) for key, state in states.items() if not state <= watermark]
        removed += len(states) - len(stay)
        if stay:
            kept[soul] = wire.node(soul, stay)
    return kept, removed


class MemoryOutbox:
    def __init__(self) -> None:
        self._entries: dict[int, OutboxEntry] = {}
        self._next = 1

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def entries(self) -> list[OutboxEntry]:
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: int) -> bool:
        return entry_id in self._entries

    async def add(self, graph: dict[str, Any]) -> OutboxEntry:
        entry = OutboxEntry(self._allocate(), graph, time.time())
        self._entries[entry.entry_id] = entry
        await self._save(entry)
        return entry

    async def remove(self, entry_id: int) -> None:
        if self._entries.pop(entry_id, None) is not None:
            await self._delete(entry_id)

    async def drop(self, rule: FenceRule, protected: Protected, now_ms: float) -> int:
        """Remove the queued fields ``rule`` fences; the count removed."""
        total = 0
        for entry in self.entries():
            kept, removed = drop_fenced(entry.graph, rule, protected, now_ms)
            if not removed:
                continue
            total += removed
            if kept:
                replaced = OutboxEntry(entry.entry_id, kept, entry.created)
                self._entries[entry.entry_id] = replaced
                await self._save(replaced)
            else:
                await self.remove(entry.entry_id)
        return total

    def _allocate(self) -> int:
        entry_id = self._next
        self._next += 1
        return entry_id

    async def _save(self, entry: OutboxEntry) -> None:
        return None

    async def _delete(self, entry_id: int) -> None:
        return None


class SQLiteOutbox(MemoryOutbox):
    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gunrelay-outbox")

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        assert self._conn is not None, "outbox is not open"
        return self._conn.execute(sql, params).fetchall()

    async def _submit(self, job: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, job, *args)

    async def open(self) -> None:
        def job() -> list[Any]:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, graph TEXT NOT NULL, created REAL NOT NULL)")
            self._conn = conn
            return self._run("SELECT id, graph, created FROM outbox ORDER BY id")

        for entry_id, graph, created in await self._submit(job):
            self._entries[entry_id] = OutboxEntry(entry_id, wire.loads(graph), created)
            self._next = max(self._next, entry_id + 1)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._submit(conn.close)
        self._thread.shutdown(wait=True)

    async def _save(self, entry: OutboxEntry) -> None:
        text = wire.encode(entry.graph)
        await self._submit(
            self._run, "INSERT OR REPLACE INTO outbox (id, graph, created) VALUES (?, ?, ?)", (entry.entry_id, text, entry.created)
        )

    async def _delete(self, entry_id: int) -> None:
        await self._submit(self._run, "DELETE FROM outbox WHERE id=?", (entry_id,))


Outbox = MemoryOutbox
