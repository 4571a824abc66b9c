"""SQLite storage, the embedded default: one writer thread with group commit, one reader thread.

Theory of operation. The event loop never touches sqlite3. ``merge`` and ``read`` put a job on a
thread's queue and return a future. The writer thread takes *every* job waiting when it wakes,
runs them in one transaction (HAM against the stored rows, then the upserts), commits, and only
then resolves all their futures with a single ``call_soon_threadsafe``. While it commits, new
jobs pile up and form the next group, so a busy relay pays one commit (one fsync in
``synchronous=FULL``) for many puts, and an ack always means "committed". The reader thread
batches reads the same way on its own connection; WAL lets it read while the writer writes, and
it sees only committed rows, so a client never reads a write that could still be lost.

Rows: ``fields(soul, key, value, state, seq)`` with ``value`` the JSON text of the GUN value (so
replies embed it without re-parsing) and ``state`` a REAL (an IEEE double, exactly JavaScript's
number), primary key (soul, key), WITHOUT ROWID so a node's fields are stored together in key order.

The change stream (``graph.py``) is the ``seq`` column, indexed: the upsert that stores a winning
field gives it the writer's next number in the same statement, so the field and its stream entry
are one row written in one commit, and a field's older entry is replaced by the write itself. Only
the writer thread numbers, and group commits are serial, so numbers are committed in order and a
reader (``SELECT ... WHERE seq > cursor ORDER BY seq``) can never pass over a change that commits
later. The writer keeps the last number in memory; ``stream_head`` keeps it durably only where rows
may vanish (a purge, a restore), so that a number is never given twice. A file from before the
stream gets the column on open, and any field without a number (from before the stream, or
written into the file by hand) is numbered after the head in state order (``PRAGMA user_version``
1; a file from a newer version is refused).

Two classes share all of that. ``SQLiteGraph`` creates the graph's tables only (``fields``, and
``probe``, the one row the health check rewrites): a Python peer's durable copy. ``SQLiteStore``,
the relay's, is the same class (so merge and reads are the very same code) plus the control
log's tables (``GRAPH_SCHEMA`` + ``CONTROL_SCHEMA`` = ``SCHEMA``, unchanged since before the
split, so existing data folders open as they are) on the same two connections: control writes
go through the writer, in order with merges. They differ in two hooks of the purge: where a
prefix rule's closure comes from (``rule.souls``, which SQL asks about through the function
``in_rule_closure``; the relay's store uses the ``fence_souls`` installed with the reset), and
the reset's ``purged`` count, which the relay's store grows in the same transaction as each batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.bans import Ban
from ..core.errors import LocalError
from ..core.fence import ALL, FenceRule, Protected
from ..core.graph import Field
from ..core.lex import Lex
from ..core.reset import ResetRecord
from .base import Store
from .control import AuditEntry, ResetAck, StoredReset, StoredSession
from .graph import (
    Change,
    ChangePage,
    GraphStore,
    ReadPage,
    ReadQuery,
    Row,
    StorageFailure,
    StorageHealth,
    StoreStats,
    as_state,
    encode_value,
    ham_tie_wins,
    reachable_from,
)
from .query import select_rows

log = logging.getLogger("gunrelay.storage")

GRAPH_SCHEMA = """
CREATE TABLE IF NOT EXISTS fields (
    soul  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    state REAL NOT NULL,
    seq   INTEGER,
    PRIMARY KEY (soul, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL
);
"""

CONTROL_SCHEMA = """
CREATE TABLE IF NOT EXISTS resets (
    reset_id   TEXT PRIMARY KEY,
    record     TEXT NOT NULL,
    purge_done INTEGER NOT NULL DEFAULT 0,
    purged     INTEGER NOT NULL DEFAULT 0,
    superseded_by TEXT,
    published  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS fence_souls (
    reset_id TEXT NOT NULL,
    soul     TEXT NOT NULL,
    PRIMARY KEY (reset_id, soul)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reset_acks (
    reset_id TEXT NOT NULL,
    peer_id  TEXT NOT NULL,
    address  TEXT NOT NULL,
    pid      TEXT,
    at       REAL NOT NULL,
    PRIMARY KEY (reset_id, peer_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ttl_rules (
    prefix TEXT PRIMARY KEY,
    ttl_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_cursors (
    relay_pub TEXT PRIMARY KEY,
    cursor    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    who     TEXT NOT NULL,
    address TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bans (
    address TEXT PRIMARY KEY,
    until   REAL NOT NULL,
    reason  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    digest  TEXT PRIMARY KEY,
    user    TEXT NOT NULL,
    csrf    TEXT NOT NULL,
    expires REAL NOT NULL,
    address TEXT NOT NULL
);
"""

SCHEMA = GRAPH_SCHEMA + CONTROL_SCHEMA  # the relay's store
SCHEMA_VERSION = 1  # PRAGMA user_version: 0 before the change stream, 1 with it


class SchemaTooNew(LocalError):
    """The data file was written by a newer gunrelay than this one."""


def _migrate(conn: sqlite3.Connection) -> int:
    """Bring a file to ``SCHEMA_VERSION`` (tables already created); the stream's last number."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"the data file was written by a newer gunrelay (schema {version}; this one knows up to {SCHEMA_VERSION})")
    conn.execute("BEGIN IMMEDIATE")
    if "seq" not in {row[1] for row in conn.execute("PRAGMA table_info(fields)")}:
        conn.execute("ALTER TABLE fields ADD COLUMN seq INTEGER")
    conn.execute("CREATE INDEX IF NOT EXISTS fields_by_seq ON fields (seq)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    (head,) = conn.execute("SELECT max(coalesce((SELECT max(seq) FROM fields), 0), coalesce((SELECT seq FROM stream_head), 0))").fetchone()
    # number the fields that have none (written before the stream existed, or by hand), oldest state first
    (unnumbered,) = conn.execute("SELECT count(*) FROM fields WHERE seq IS NULL").fetchone()  # (a WITH statement has no rowcount)
    if unnumbered:
        conn.execute(
            "WITH unnumbered AS (SELECT soul, key, row_number() OVER (ORDER BY state, soul, key) AS n FROM fields WHERE seq IS NULL) "
            "UPDATE fields SET seq = ? + unnumbered.n FROM unnumbered WHERE fields.soul = unnumbered.soul AND fields.key = unnumbered.key",
            (head,),
        )
        head += unnumbered
    conn.execute("COMMIT")
    return int(head)


class _StreamHead:
    """The last number the writer gave (touched on the writer thread only)."""

    def __init__(self, last: int):
        self.last = last

    def keep(self, conn: sqlite3.Connection) -> None:
        """Store it durably, in the current transaction: rows about to vanish may hold the highest."""
        conn.execute("INSERT OR REPLACE INTO stream_head (id, seq) VALUES (1, ?)", (self.last,))

_STOP = object()
Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
    return conn


def storage_failure(exc: Exception) -> StorageFailure:
    """What a failed commit means, in words for the writer's error and the operator's health page."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "full" in text:
        return StorageFailure("the relay's disk is full")
    if isinstance(exc, sqlite3.OperationalError) and ("readonly" in text or "read-only" in text or "I/O" in text):
        return StorageFailure(f"the relay's data folder is read-only or failing ({text})")
    return StorageFailure(f"{type(exc).__name__}: {text}")


class _Worker:
    """A thread that runs queued jobs in groups; ``transactional`` wraps each group in one commit,
    and reports each commit's outcome to ``health`` (on the event loop)."""

    def __init__(self, name: str, conn: sqlite3.Connection, transactional: bool, health: StorageHealth | None = None):
        self.conn = conn
        self.transactional = transactional
        self.health = health
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.queue.put((job, future))
        return future

    def _drain(self, first: Any) -> tuple[list[Job], bool]:
        jobs = [first]
        stop = False
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return jobs, stop
            if item is _STOP:
                stop = True
            else:
                jobs.append(item)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is _STOP:
                break
            jobs, stop = self._drain(first)
            outcomes, failure, wrote = self._run_group(jobs)
            self.loop.call_soon_threadsafe(_resolve, outcomes, self.health, failure, wrote)
            if stop:
                break
        self.conn.close()

    def _run_group(self, jobs: list[Job]) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], StorageFailure | None, bool]:
        """Run the jobs in one transaction: their outcomes, the failure that refused them all (or
        None), and whether the commit wrote anything."""
        # Jobs do whatever can fail on their input before writing, so a job that raises has
        # written nothing and fails alone; a failing commit fails the whole group, unacknowledged.
        conn = self.conn
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        changes = conn.total_changes
        try:
            if self.transactional:
                conn.execute("BEGIN IMMEDIATE")
            for job, future in jobs:
                try:
                    outcomes.append((future, True, job(conn)))
                except sqlite3.Error:
                    raise
                except Exception as exc:
                    log.exception("storage job failed")
                    outcomes.append((future, False, exc))
            if self.transactional:
                conn.execute("COMMIT")
        except Exception as exc:  # the database itself failed (disk full, read-only...): nobody is acked
            failure = storage_failure(exc)
            log.error("storage failed, %d jobs refused: %s", len(jobs), failure)
            if self.transactional and conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            return [(future, False, failure) for _, future in jobs], failure, False
        return outcomes, None, conn.total_changes != changes

    def stop(self) -> None:
        self.queue.put(_STOP)
        self.thread.join()


def _resolve(
    outcomes: list[tuple[asyncio.Future[Any], bool, Any]],
    health: StorageHealth | None,
    failure: StorageFailure | None,
    wrote: bool,
) -> None:
    if health is not None:
        if failure is not None:
            health.failed(str(failure), time.time())
        elif wrote:  # a commit that changed nothing (every field lost to the stored one) proves nothing about the disk
            health.committed()
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value if isinstance(value, BaseException) else RuntimeError(str(value)))


class _RuleClosure:
    """Answers ``in_rule_closure(soul)`` in SQL on one connection: is the soul among the closure
    souls of the rule a job there is purging or sizing? The job sets ``souls`` before its query
    (it runs alone on the connection). Exact for any text, for any number of souls, and it writes
    nothing."""

    def __init__(self, conn: sqlite3.Connection):
        self.souls: frozenset[str] = frozenset()
        conn.create_function("in_rule_closure", 1, self.holds)

    def holds(self, soul: str) -> bool:
        return soul in self.souls


class SQLiteGraph(GraphStore):
    """A graph in one SQLite file (WAL), nothing else in it."""

    schema = GRAPH_SCHEMA  # the tables ``open`` creates when missing

    def __init__(self, path: str | os.PathLike[str], synchronous: str = "FULL"):
        self.path = Path(path)
        self.synchronous = synchronous
        self.health = StorageHealth()
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None
        self._closures: dict[sqlite3.Connection, _RuleClosure] = {}
        self._head = _StreamHead(0)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer_conn = _connect(self.path, self.synchronous)
        try:
            writer_conn.executescript(self.schema)
            self._head = _StreamHead(_migrate(writer_conn))
        except BaseException:
            writer_conn.close()
            raise
        writer_conn.create_function("ham_tie_wins", 2, ham_tie_wins, deterministic=True)
        reader_conn = _connect(self.path, self.synchronous)
        self._closures = {conn: _RuleClosure(conn) for conn in (writer_conn, reader_conn)}
        self._writer = _Worker("gunrelay-sqlite-writer", writer_conn, transactional=True, health=self.health)
        self._reader = _Worker("gunrelay-sqlite-reader", reader_conn, transactional=False)

    async def close(self) -> None:
        # the queues are FIFO: every job submitted before close() runs (and commits) first
        for worker in (self._writer, self._reader):
            if worker is not None:
                await asyncio.to_thread(worker.stop)
        self._writer = self._reader = None
        self._closures = {}

    def merge(self, fields: list[Field]) -> asyncio.Future[list[Field]]:
        assert self._writer is not None, "store is not open"
        head = self._head
        return self._writer.submit(lambda conn: _merge(conn, fields, head))

    def read_page(self, query: ReadQuery) -> asyncio.Future[ReadPage]:
        assert self._reader is not None, "store is not open"
        return self._reader.submit(lambda conn: _read_page(conn, query))

    def changes_since(self, cursor: int, limit: int) -> asyncio.Future[ChangePage]:
        assert self._reader is not None, "store is not open"
        return self._reader.submit(lambda conn: _changes_since(conn, cursor, limit))

    async def probe(self) -> None:
        await self._write(lambda conn: conn.execute("INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)", (time.time(),)))

    async def stats(self) -> StoreStats:
        assert self._reader is not None, "store is not open"
        return await self._reader.submit(_stats)  # type: ignore[no-any-return]

    def _write(self, job: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        """Run ``job`` on the writer thread, in the next group commit (ordered with merges)."""
        assert self._writer is not None, "store is not open"
        return self._writer.submit(job)

    def _query(self, job: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        """Run ``job`` on the reader thread (it sees committed rows only)."""
        assert self._reader is not None, "store is not open"
        return self._reader.submit(job)

    # -- purges --------------------------------------------------------------------------------

    def _in_closure_sql(self, conn: sqlite3.Connection, rule: FenceRule) -> tuple[str, tuple[Any, ...]] | None:
        """A condition on ``soul`` true for the souls beyond its prefix that ``rule`` covers, with
        its parameters (None: there are none). Called in the job, on the connection that runs it."""
        if not rule.souls:
            return None
        self._closures[conn].souls = rule.souls
        return "in_rule_closure(soul)", ()

    def _purge_counted(self, conn: sqlite3.Connection, rule_id: str, deleted: int) -> None:
        """Called in each purge batch's transaction (a graph keeps no count)."""

    def _fenced_sql(self, conn: sqlite3.Connection, rule: FenceRule, protected: Protected) -> tuple[str, tuple[Any, ...]]:
        """A WHERE clause selecting the stored fields ``rule`` fences (evaluated now, for TTL rules)."""
        watermark = rule.watermark_at(time.time() * 1000)
        if rule.scope == ALL:
            clauses: list[str] = ["state <= ?"]
            params: list[Any] = [watermark]
            for prefix in protected.prefixes:
                low, high = _prefix_bounds(prefix)
                clauses.append("NOT (soul = ? OR (soul >= ? AND soul < ?))")
                params += [prefix, low, high]
            return " AND ".join(clauses), tuple(params)
        low, high = _prefix_bounds(rule.scope)
        in_closure = self._in_closure_sql(conn, rule)
        if in_closure is None:
            return "state <= ? AND (soul = ? OR (soul >= ? AND soul < ?))", (watermark, rule.scope, low, high)
        condition, closure_params = in_closure
        return (
            f"state <= ? AND (soul = ? OR (soul >= ? AND soul < ?) OR {condition})",
            (watermark, rule.scope, low, high, *closure_params),
        )

    async def purge_batch(self, rule: FenceRule, protected: Protected, limit: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            where, params = self._fenced_sql(conn, rule, protected)
            sql = f"DELETE FROM fields WHERE (soul, key) IN (SELECT soul, key FROM fields WHERE {where} LIMIT ?)"
            self._head.keep(conn)
            deleted: int = conn.execute(sql, (*params, limit)).rowcount
            self._purge_counted(conn, rule.rule_id, deleted)
            return deleted

        return await self._write(job)  # type: ignore[no-any-return]

    async def scope_report(self, rule: FenceRule, protected: Protected) -> StoreStats:
        def job(conn: sqlite3.Connection) -> StoreStats:
            where, params = self._fenced_sql(conn, rule, protected)
            souls, count, size = conn.execute(
                f"SELECT count(DISTINCT soul), count(*), coalesce(sum(length(soul)+length(key)+length(value)), 0) FROM fields WHERE {where}",
                params,
            ).fetchone()
            return StoreStats(souls=souls, fields=count, bytes=size)

        return await self._query(job)  # type: ignore[no-any-return]

    async def reachable_souls(self, prefix: str, protected: Protected, limit: int) -> frozenset[str]:
        def job(conn: sqlite3.Connection) -> frozenset[str]:
            low, high = _prefix_bounds(prefix)
            frontier = [s for (s,) in conn.execute("SELECT DISTINCT soul FROM fields WHERE soul=? OR (soul>=? AND soul<?)", (prefix, low, high))]

            def values_of(soul: str) -> list[str]:
                return [v for (v,) in conn.execute("SELECT value FROM fields WHERE soul=?", (soul,))]

            return reachable_from(frontier, values_of, prefix, protected, limit)

        return await self._query(job)  # type: ignore[no-any-return]

    # -- whole-graph copies ----------------------------------------------------------------------

    async def snapshot_to(self, path: Path) -> StoreStats:
        def job(conn: sqlite3.Connection) -> StoreStats:
            target = sqlite3.connect(path)
            try:
                conn.backup(target)  # one read transaction: a consistent copy while writers go on (WAL)
                target.execute("PRAGMA journal_mode=DELETE")
                souls, count, size = target.execute(
                    "SELECT count(DISTINCT soul), count(*), coalesce(sum(length(soul)+length(key)+length(value)), 0) FROM fields"
                ).fetchone()
            finally:
                target.close()
            return StoreStats(souls=souls, fields=count, bytes=size)

        return await self._query(job)  # type: ignore[no-any-return]

    async def restore_fields_from(self, path: Path) -> StoreStats:
        def job(conn: sqlite3.Connection) -> StoreStats:
            # ATTACH cannot run inside a transaction: end the group's, restore in our own, reopen one
            conn.execute("COMMIT")
            conn.execute("ATTACH DATABASE ? AS snap", (str(path),))
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM fields")
                restored = conn.execute(
                    "INSERT INTO fields (soul, key, value, state, seq) "
                    "SELECT soul, key, value, state, ? + row_number() OVER (ORDER BY state, soul, key) FROM snap.fields",
                    (self._head.last,),
                ).rowcount
                self._head.last += restored
                self._head.keep(conn)
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
            finally:
                conn.execute("DETACH DATABASE snap")
                conn.execute("BEGIN IMMEDIATE")
            return _stats(conn)

        return await self._write(job)  # type: ignore[no-any-return]


class SQLiteStore(SQLiteGraph, Store):
    """The relay's store: the graph and the control log in one SQLite file."""

    schema = SCHEMA

    # -- where the graph's purge meets the control log (writes on the writer thread, so they
    # -- order with merges) ------------------------------------------------------------------------

    def _in_closure_sql(self, conn: sqlite3.Connection, rule: FenceRule) -> tuple[str, tuple[Any, ...]] | None:
        if conn.execute("SELECT 1 FROM resets WHERE reset_id=?", (rule.rule_id,)).fetchone() is not None:
            return "soul IN (SELECT soul FROM fence_souls WHERE reset_id = ?)", (rule.rule_id,)  # the closure installed with it
        return super()._in_closure_sql(conn, rule)

    def _purge_counted(self, conn: sqlite3.Connection, rule_id: str, deleted: int) -> None:
        # the running count commits with the batch, so it survives a crash mid-purge
        conn.execute("UPDATE resets SET purged = purged + ? WHERE reset_id = ?", (deleted, rule_id))

    # -- resets ----------------------------------------------------------------------------------

    async def install_reset(self, record: ResetRecord, souls: frozenset[str]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO resets (reset_id, record) VALUES (?, ?)", (record.reset_id, record.to_json()))
            conn.executemany(
                "INSERT OR IGNORE INTO fence_souls (reset_id, soul) VALUES (?, ?)", [(record.reset_id, s) for s in souls]
            )

        await self._write(job)

    async def load_resets(self) -> list[StoredReset]:
        def job(conn: sqlite3.Connection) -> list[StoredReset]:
            out = []
            rows = conn.execute("SELECT reset_id, record, purge_done, purged, superseded_by, published FROM resets").fetchall()
            for reset_id, record, done, purged, superseded_by, published in rows:
                souls = frozenset(s for (s,) in conn.execute("SELECT soul FROM fence_souls WHERE reset_id=?", (reset_id,)))
                out.append(StoredReset(ResetRecord.from_json(record), souls, bool(done), purged, superseded_by, bool(published)))
            return out

        return await self._query(job)  # type: ignore[no-any-return]

    async def finish_purge(self, reset_id: str, purged: int) -> None:
        await self._write(
            lambda conn: conn.execute("UPDATE resets SET purge_done=1, purged=? WHERE reset_id=?", (purged, reset_id))
        )

    async def mark_published(self, reset_id: str) -> None:
        await self._write(lambda conn: conn.execute("UPDATE resets SET published=1 WHERE reset_id=?", (reset_id,)))

    async def supersede_resets(self, issued_after: float, by: str) -> list[str]:
        def job(conn: sqlite3.Connection) -> list[str]:
            ids = []
            for reset_id, record in conn.execute("SELECT reset_id, record FROM resets WHERE superseded_by IS NULL").fetchall():
                if ResetRecord.from_json(record).issued_at > issued_after and reset_id != by:
                    ids.append(reset_id)
            conn.executemany("UPDATE resets SET superseded_by=? WHERE reset_id=?", [(by, i) for i in ids])
            return ids

        return await self._write(job)  # type: ignore[no-any-return]

    # -- acks, bans, TTL rules, audit --------------------------------------------------------------

    async def record_ack(self, ack: ResetAck) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT OR IGNORE INTO reset_acks (reset_id, peer_id, address, pid, at) VALUES (?, ?, ?, ?, ?)",
                (ack.reset_id, ack.peer_id, ack.address, ack.pid, ack.at),
            )
        )

    async def acks(self, reset_id: str) -> list[ResetAck]:
        rows = await self._query(
            lambda conn: conn.execute(
                "SELECT reset_id, peer_id, address, pid, at FROM reset_acks WHERE reset_id=? ORDER BY at", (reset_id,)
            ).fetchall()
        )
        return [ResetAck(*row) for row in rows]

    async def save_session(self, session: StoredSession, keep: int, now: float) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO console_sessions (digest, user, csrf, expires, address) VALUES (?, ?, ?, ?, ?)",
                (session.digest, session.user, session.csrf, session.expires, session.address),
            )
            conn.execute("DELETE FROM console_sessions WHERE expires <= ?", (now,))
            conn.execute(
                "DELETE FROM console_sessions WHERE digest IN (SELECT digest FROM console_sessions ORDER BY expires DESC LIMIT -1 OFFSET ?)",
                (keep,),
            )

        await self._write(job)

    async def load_session(self, digest: str, now: float) -> StoredSession | None:
        row = await self._query(
            lambda conn: conn.execute(
                "SELECT digest, user, csrf, expires, address FROM console_sessions WHERE digest = ? AND expires > ?", (digest, now)
            ).fetchone()
        )
        return StoredSession(*row) if row is not None else None

    async def delete_session(self, digest: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM console_sessions WHERE digest = ?", (digest,)))

    async def save_ban(self, ban: Ban) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO bans (address, until, reason) VALUES (?, ?, ?)", (ban.address, ban.until, ban.reason)
            )
        )

    async def delete_ban(self, address: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM bans WHERE address=?", (address,)))

    async def load_bans(self) -> list[Ban]:
        rows = await self._query(lambda conn: conn.execute("SELECT address, until, reason FROM bans").fetchall())
        return [Ban(*row) for row in rows]

    async def save_ttl(self, prefix: str, ttl_ms: float) -> None:
        await self._write(lambda conn: conn.execute("INSERT OR REPLACE INTO ttl_rules (prefix, ttl_ms) VALUES (?, ?)", (prefix, ttl_ms)))

    async def delete_ttl(self, prefix: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM ttl_rules WHERE prefix=?", (prefix,)))

    async def load_ttls(self) -> dict[str, float]:
        return dict(await self._query(lambda conn: conn.execute("SELECT prefix, ttl_ms FROM ttl_rules").fetchall()))

    async def save_stream_cursor(self, relay_pub: str, cursor: int) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO stream_cursors (relay_pub, cursor) VALUES (?, ?) "
                "ON CONFLICT (relay_pub) DO UPDATE SET cursor = max(cursor, excluded.cursor)",
                (relay_pub, cursor),
            )
        )

    async def load_stream_cursors(self) -> dict[str, int]:
        return dict(await self._query(lambda conn: conn.execute("SELECT relay_pub, cursor FROM stream_cursors").fetchall()))

    async def append_audit(self, entry: AuditEntry) -> int:
        def job(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO audit (at, who, address, action, detail, outcome, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.at, entry.who, entry.address, entry.action, entry.detail, entry.outcome, entry.status),
            )
            return int(cursor.lastrowid or 0)

        return int(await self._write(job))

    async def audit_page(self, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        def job(conn: sqlite3.Connection) -> tuple[list[AuditEntry], int]:
            rows = conn.execute(
                "SELECT at, who, address, action, detail, outcome, status, id FROM audit ORDER BY id DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            (total,) = conn.execute("SELECT count(*) FROM audit").fetchone()
            return [AuditEntry(*row) for row in rows], int(total)

        result: tuple[list[AuditEntry], int] = await self._query(job)
        return result


def _prefix_bounds(prefix: str) -> tuple[str, str]:
    """Souls under ``prefix/`` sort from ``prefix/`` (inclusive) to ``prefix0`` ('0' follows '/')."""
    return prefix + "/", prefix + "0"


# HAM in one statement: insert, or replace when the incoming state is newer, or equal with a
# greater JSON.stringify (the rare tie goes to Python); RETURNING tells whether it changed the store.
# A winner takes the stream's next number with it (a loser's offered number is simply offered again).
_UPSERT = """
INSERT INTO fields (soul, key, value, state, seq) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (soul, key) DO UPDATE SET value = excluded.value, state = excluded.state, seq = excluded.seq
WHERE excluded.state > fields.state
   OR (excluded.state = fields.state AND ham_tie_wins(excluded.value, fields.value))
RETURNING 1
"""


def _merge(conn: sqlite3.Connection, fields: list[Field], head: _StreamHead) -> list[Field]:
    rows = [(f.soul, f.key, encode_value(f.value), f.state) for f in fields]  # may raise: before any write
    execute = conn.execute
    accepted = []
    for field, (soul, key, value, state) in zip(fields, rows):
        if execute(_UPSERT, (soul, key, value, state, head.last + 1)).fetchone() is not None:
            head.last += 1  # at once: a job failing later still commits this row; a failed group leaves a gap
            accepted.append(field)
    return accepted


def _changes_since(conn: sqlite3.Connection, cursor: int, limit: int) -> ChangePage:
    rows = conn.execute(
        "SELECT seq, soul, key, value, state FROM fields WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, max(limit, 0))
    ).fetchall()
    changes = [Change(seq, soul, key, value, as_state(state)) for seq, soul, key, value, state in rows]
    return ChangePage(changes, changes[-1].seq if changes else cursor)


def _read_page(conn: sqlite3.Connection, query: ReadQuery) -> ReadPage:
    try:
        return select_rows(_scan(conn, query), query)
    except UnicodeEncodeError:  # a soul or key with a lone surrogate: nothing stored can match it
        return ReadPage({}, None, 0, 0)


def _within(column: str, lex: Lex, clauses: list[str], params: list[Any]) -> None:
    """Narrow ``column`` to the lex's index range (an exact name is its own lower and upper bound)."""
    lower, upper = lex.lower_bound(), lex.upper_bound()
    if lower:
        clauses.append(f"{column}>=?")
        params.append(lower)
    if upper is not None:
        clauses.append(f"{column}<=?")
        params.append(upper)


def _key_rows(conn: sqlite3.Connection, soul: str, key: Lex | None, after_key: str | None) -> Iterator[Row]:
    """One soul's rows within the key lex's bounds, in the scan's order, after ``after_key``."""
    clauses = ["soul=?"]
    params: list[Any] = [soul]
    descending = key is not None and key.reverse
    if key is not None:
        _within("key", key, clauses, params)
    if after_key is not None:
        clauses.append("key<?" if descending else "key>?")
        params.append(after_key)
    order = "DESC" if descending else "ASC"
    for row_key, value, state in conn.execute(f"SELECT key, value, state FROM fields WHERE {' AND '.join(clauses)} ORDER BY key {order}", params):
        yield row_key, value, as_state(state)


def _scan(conn: sqlite3.Connection, query: ReadQuery) -> Iterator[tuple[str, Iterator[Row] | tuple[()]]]:
    """(soul, its rows) from the resume point on, lazily: a page stops reading when it is full."""
    after = query.after
    if query.soul is not None:
        if after is not None and after[1] is None:
            return  # the soul is done
        yield query.soul, _key_rows(conn, query.soul, query.key, after[1] if after is not None else None)
        return
    soul_lex = query.soul_lex
    assert soul_lex is not None
    descending = soul_lex.reverse
    clauses: list[str] = []
    params: list[Any] = []
    _within("soul", soul_lex, clauses, params)
    if after is not None:
        if after[1] is None:
            clauses.append("soul<?" if descending else "soul>?")
        else:
            clauses.append("soul<=?" if descending else "soul>=?")
        params.append(after[0])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    souls = conn.execute(f"SELECT DISTINCT soul FROM fields {where} ORDER BY soul {'DESC' if descending else 'ASC'}", params)
    for (soul,) in souls:
        if not soul_lex.matches(soul):
            yield soul, ()  # looked at (it counts against the page's scan), nothing to send
            continue
        resume_key = after[1] if after is not None and soul == after[0] else None
        yield soul, _key_rows(conn, soul, query.key, resume_key)


def _stats(conn: sqlite3.Connection) -> StoreStats:
    souls, fields, size = conn.execute(
        "SELECT count(DISTINCT soul), count(*), coalesce(sum(length(soul) + length(key) + length(value)), 0) FROM fields"
    ).fetchone()
    return StoreStats(souls=souls, fields=fields, bytes=size)
