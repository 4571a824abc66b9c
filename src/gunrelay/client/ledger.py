"""The resets this peer applied to its own copy: which epochs, how far each local purge got.

A peer's local store holds the graph only (``storage.graph``); what the peer did about the
relay's resets is its own bookkeeping, kept here. ``ResetKeeper`` reads it on start (to reinstate
its fence and finish a purge a crash cut short) and writes it as it applies records.

``MemoryResetLedger`` lives as long as the peer; ``SQLiteResetLedger`` keeps the same in a small
SQLite file of its own (next to the graph file and the outbox), written before each step is
taken as done. A graph file from before the storage split kept these rows in its own ``resets``
and ``fence_souls`` tables: an empty ledger takes them over once, so an upgraded peer does not
apply old records again.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.reset import ResetRecord
from ..storage.control import StoredReset


class MemoryResetLedger:
    def __init__(self) -> None:
        self._held: dict[str, StoredReset] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load_resets(self) -> list[StoredReset]:
        return list(self._held.values())

    async def install_reset(self, record: ResetRecord, souls: frozenset[str]) -> None:
        await self._keep(StoredReset(record, souls, purge_done=False, purged=0))

    async def finish_purge(self, reset_id: str, purged: int) -> None:
        await self._keep(replace(self._held[reset_id], purge_done=True, purged=purged))

    async def supersede_resets(self, issued_after: float, by: str) -> list[str]:
        """Mark every reset issued after ``issued_after`` (not ``by`` itself) as undone by ``by``."""
        undone = [
            reset_id for reset_id, held in self._held.items()
            if held.superseded_by is None and held.record.issued_at > issued_after and reset_id != by
        ]
        for reset_id in undone:
            await self._keep(replace(self._held[reset_id], superseded_by=by))
        return undone

    async def _keep(self, held: StoredReset) -> None:
        self._held[held.record.reset_id] = held


_TABLE = (
    "CREATE TABLE IF NOT EXISTS applied_resets (reset_id TEXT PRIMARY KEY, record TEXT NOT NULL, souls TEXT NOT NULL,"
    " purge_done INTEGER NOT NULL, purged INTEGER NOT NULL, superseded_by TEXT)"
)


def _rows_before_the_split(graph_file: Path) -> list[tuple[Any, ...]]:
    """The applied resets a pre-split graph file kept in its own tables (none if it has none)."""
    if not graph_file.exists():
        return []
    conn = sqlite3.connect(f"file:{graph_file}?mode=ro", uri=True)
    try:
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "resets" not in names or "fence_souls" not in names:
            return []
        rows = []
        for reset_id, record, done, purged, superseded_by in conn.execute(
            "SELECT reset_id, record, purge_done, purged, superseded_by FROM resets"
        ).fetchall():
            souls = sorted(s for (s,) in conn.execute("SELECT soul FROM fence_souls WHERE reset_id=?", (reset_id,)))
            rows.append((reset_id, record, json.dumps(souls), done, purged, superseded_by))
        return rows
    finally:
        conn.close()


class SQLiteResetLedger(MemoryResetLedger):
    def __init__(self, path: str | Path, graph_file: str | Path | None = None):
        super().__init__()
        self.path = Path(path)
        self.graph_file = Path(graph_file) if graph_file is not None else None
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gunrelay-ledger")

    async def _submit(self, job: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, job, *args)

    async def open(self) -> None:
        def job() -> list[tuple[Any, ...]]:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_TABLE)
            self._conn = conn
            rows = conn.execute("SELECT reset_id, record, souls, purge_done, purged, superseded_by FROM applied_resets").fetchall()
            if not rows and self.graph_file is not None:
                rows = _rows_before_the_split(self.graph_file)
                conn.executemany("INSERT INTO applied_resets VALUES (?, ?, ?, ?, ?, ?)", rows)
            return rows

        for _, record, souls, done, purged, superseded_by in await self._submit(job):
            held = StoredReset(ResetRecord.from_json(record), frozenset(json.loads(souls)), bool(done), purged, superseded_by)
            self._held[held.record.reset_id] = held

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._submit(conn.close)
        self._thread.shutdown(wait=True)

    async def _keep(self, held: StoredReset) -> None:
        row = (
            held.record.reset_id, held.record.to_json(), json.dumps(sorted(held.souls)),
            int(held.purge_done), held.purged, held.superseded_by,
        )

        def job() -> None:
            assert self._conn is not None, "the ledger is not open"
            self._conn.execute("INSERT OR REPLACE INTO applied_resets VALUES (?, ?, ?, ?, ?, ?)", row)

        await self._submit(job)
        self._held[held.record.reset_id] = held
