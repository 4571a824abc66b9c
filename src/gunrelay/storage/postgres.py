"""PostgreSQL storage, for a fleet of relay processes sharing one database (issue 13, first steps).

Theory of operation. The shape is SQLite's (``sqlite.py``): the event loop never waits on the
database; ``merge`` and every control write go to one writer thread that runs each group of
waiting jobs in one transaction and resolves their futures only after the commit (acks after
commit, one commit for many puts); reads go to a reader thread on its own connection, which sees
committed rows only. psycopg 3 in its blocking form releases the GIL while it waits on the network.
The merges of a group go to the server as one pipeline (``_merge_run``: one round trip, not one per
put), so a busy relay pays a round trip and a commit for many puts.

Three things are decided *inside* the database, because other processes write the same rows:

- **HAM.** A field is written by one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` whose
  condition is HAM's: an incoming state above the stored one wins in the statement itself. A row
  the statement refused is looked at again in the same transaction: at equal states the tie rule
  (``JSON.stringify`` order in UTF-16 code units: ``graph.ham_tie_wins``, exact, in Python) may
  still let it win, and then it is written by a compare-and-set ``UPDATE ... WHERE value = <the
  value compared against>``, so a concurrent writer can never make it store a loser.
- **The fence.** Rules live in ``fence_rules`` (a reset's scope and watermark, written with the
  reset; a TTL rule's prefix and ttl; a superseded reset's rule is deleted), a reset's closure in
  ``fence_souls``, the protected system prefixes (given to the constructor) in ``protected``. Both
  write statements carry ``NOT EXISTS (a rule covering this soul at this state)``, so a field a
  reset issued by *another* process fences is refused in the same statement that would have
  stored it. Such a field is simply not among the accepted (like a HAM loser); the relay's own
  admission, which refuses with a message, still runs first against its in-memory fence.
- **The change stream's order.** Numbers come from the sequence ``stream_seq``. A plain sequence
  is not enough: a writer can take 9, another 10, and 10 commit first, so a reader at cursor 10
  would never see 9. Every write transaction of every process therefore takes one transaction-
  scoped advisory lock (``STREAM_LOCK``) before it writes anything, and holds it through its
  commit: write transactions are serial across the fleet, a number is taken only after every
  smaller number is committed (or rolled back), and a reader that sees a number sees all the
  committed ones below it. The price is one fleet-wide commit at a time; group commit (many puts
  per transaction) is what keeps acks fast under it. Sequence numbers are never reused (a rollback
  leaves a gap, which a reader just passes), so purges need no stream head of their own.

Souls and keys are stored as ``bytea`` (their UTF-8): GUN allows any text, NUL included, which a
PostgreSQL ``text`` cannot hold, and byte order is SQLite's order (code points), so lex ranges
and pages come out the same as the other backends. Values are the JSON text (``text``): JSON
escapes every control character.

Schema: created and migrated by ``open`` under an advisory lock (two processes starting at once
migrate once); ``schema_version`` holds the version, ``MIGRATIONS[n]`` takes a database from
version n-1 to n (2 added the mesh's stream cursors, 3 the fleet's tables, 4 the console's
sessions and the snapshots), and a database written by a newer gunrelay is refused with
``SchemaTooNew``. The relay keeps its snapshots in the database (``snapshot_into_database``: one
transaction, one consistent view); ``snapshot_to`` writes JSON-lines files of (soul, key, value,
state) for whoever asks for a file.

The fleet (``server/fleet.py``). Each process opens its store under a fresh ``process_id``; the
upserts write it into the row's ``writer`` column (schema 3) with the value, so a stream entry says
which process wrote it, in the same statement (a restore writes NULL: every process pushes it).
``others_since`` reads the stream like ``changes_since`` but hands out only entries other processes
wrote (its cursor still passes the skipped ones). A write transaction that accepted a field sends
``NOTIFY gunrelay_stream`` before its commit (PostgreSQL delivers it at the commit, never for a
rollback); ``listen`` keeps a thread LISTENing and calls back on each notification. A notification
is only a nudge: the reader's position is its cursor in the stream, so a lost one costs a poll's
delay, nothing more.

Control in step. Every write that changes what the fence or the bans are (a reset installed,
superseded or purged, a TTL rule or a ban saved or deleted) adds one to ``control_version`` in its
own transaction and sends ``NOTIFY gunrelay_control``; a process that sees a version above the one
it applied reloads resets, TTL rules and bans, and says so in its heartbeat row
(``fleet_processes``: ``beat``, ``processes``), whose ``last_seen`` is the database's clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..core.bans import Ban
from ..core.errors import LocalError, RemoteError
from ..core.fence import ALL, FenceRule, Protected
from ..core.graph import Field
from ..core.lex import Lex
from ..core.reset import ResetRecord
from .base import Store
from .control import AuditEntry, ResetAck, StoredReset, StoredSession
from .graph import (
    Change,
    ChangePage,
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

SCHEMA_VERSION = 4
STREAM_CHANNEL = "gunrelay_stream"  # NOTIFY'd by a write transaction that accepted fields
CONTROL_CHANNEL = "gunrelay_control"  # NOTIFY'd by a write transaction that changed the control log
LISTEN_WAIT_S = 1.0  # how long the listener blocks between looks at its stop flag
STREAM_LOCK = 0x67756E72  # "gunr": every write transaction holds it to its commit
MIGRATION_LOCK = 0x67756E6D  # "gunm": one process migrates at a time
LEASE_SPACE = 0x67756E6C  # "gunl": the first key of a lease's advisory lock (the second: the name's hash)
CHUNK = 256  # rows per round trip of a lazy scan
CONNECT_TIMEOUT_S = 5  # a connection attempt that takes longer fails (and is tried again)
STUCK_S = 10.0  # a write transaction waiting this long for the server makes /health 503

MIGRATIONS: dict[int, str] = {
    1: r"""
CREATE TABLE fields (
    soul  bytea NOT NULL,
    key   bytea NOT NULL,
    value text NOT NULL,
    state double precision NOT NULL,
    seq   bigint NOT NULL,
    PRIMARY KEY (soul, key)
);
CREATE INDEX fields_by_seq ON fields (seq);
CREATE SEQUENCE stream_seq;
CREATE TABLE probe (id integer PRIMARY KEY CHECK (id = 1), at double precision NOT NULL);
CREATE TABLE resets (
    reset_id      text PRIMARY KEY,
    record        text NOT NULL,
    purge_done    boolean NOT NULL DEFAULT false,
    purged        bigint NOT NULL DEFAULT 0,
    superseded_by text,
    published     boolean NOT NULL DEFAULT false
);
CREATE TABLE fence_souls (reset_id text NOT NULL, soul bytea NOT NULL, PRIMARY KEY (reset_id, soul));
CREATE TABLE fence_rules (
    rule_id   text PRIMARY KEY,
    scope     bytea,                 -- NULL: the whole graph but the protected souls
    watermark double precision,      -- NULL: a TTL rule, W = now - ttl_ms
    ttl_ms    double precision
);
CREATE TABLE protected (prefix bytea PRIMARY KEY);
CREATE TABLE reset_acks (
    reset_id text NOT NULL,
    peer_id  text NOT NULL,
    address  text NOT NULL,
    pid      text,
    at       double precision NOT NULL,
    PRIMARY KEY (reset_id, peer_id)
);
CREATE TABLE ttl_rules (prefix text PRIMARY KEY, ttl_ms double precision NOT NULL);
CREATE TABLE audit (
    id      bigserial PRIMARY KEY,
    at      double precision NOT NULL,
    who     text NOT NULL,
    address text NOT NULL,
    action  text NOT NULL,
    detail  text NOT NULL,
    outcome text NOT NULL,
    status  integer NOT NULL
);
CREATE TABLE bans (address text PRIMARY KEY, until double precision NOT NULL, reason text NOT NULL);
""",
    2: """
CREATE TABLE stream_cursors (relay_pub text PRIMARY KEY, cursor bigint NOT NULL);
""",
    3: """
ALTER TABLE fields ADD COLUMN writer text;  -- the process (PostgresStore.process_id) that wrote the entry
CREATE TABLE control_version (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
INSERT INTO control_version VALUES (1, 0);
CREATE TABLE fleet_processes (
    process_id   text PRIMARY KEY,
    pid          integer NOT NULL,
    host         text NOT NULL,
    port         integer NOT NULL,
    started      double precision NOT NULL,
    last_seen    double precision NOT NULL,   -- the database's clock: one clock for the whole fleet
    applied      bigint NOT NULL,             -- the control_version this process has in force
    connections  integer NOT NULL,
    messages_in  bigint NOT NULL,
    messages_out bigint NOT NULL
);
""",
    4: """
CREATE TABLE console_sessions (
    digest  text PRIMARY KEY,          -- SHA-256 of the session key: the cookie itself is not kept
    "user"  text NOT NULL,
    csrf    text NOT NULL,
    expires double precision NOT NULL,
    address text NOT NULL
);
CREATE TABLE snapshots (
    name    text PRIMARY KEY,
    created double precision NOT NULL,  -- seconds since the epoch
    bytes   bigint NOT NULL,
    fields  bigint NOT NULL
);
CREATE TABLE snapshot_fields (
    name  text NOT NULL REFERENCES snapshots (name) ON DELETE CASCADE,
    soul  bytea NOT NULL,
    key   bytea NOT NULL,
    value text NOT NULL,
    state double precision NOT NULL,
    PRIMARY KEY (name, soul, key)
);
""",
}


class SchemaTooNew(LocalError):
    """The database was written by a newer gunrelay than this one."""


class StoreUnreachable(StorageFailure):
    """The PostgreSQL server cannot be reached now (down, restarting, out of connections): worth
    trying again, unlike a wrong URL, user, password or database name (``StoreMisconfigured``)."""


class StoreMisconfigured(LocalError):
    """``--postgres-url`` cannot work as given: not a URL, or the server refuses its user, password
    or database; trying again would not help."""


# What a server says while refusing a connection for the configuration's fault, not a passing
# state (libpq gives no SQLSTATE for errors at connect, only the server's message, in English
# unless the server's lc_messages says otherwise): no such database or role, a wrong password or
# method, no pg_hba.conf entry, no right to connect. Anything else (refused, timed out, starting
# up, too many clients) is tried again.
MISCONFIGURED = re.compile(r"FATAL: .*(does not exist|authentication failed|no pg_hba\.conf entry|permission denied)")


def _b(text: str) -> bytes:
    return text.encode()


def _texts(*values: str | None) -> None:
    """Control-log text comes from operators, peers and imported files; a PostgreSQL ``text`` cannot
    hold NUL. Checked in the job before it writes, so such a value fails its own call only (a
    database error would fail every write of the group)."""
    for value in values:
        if value is not None and "\x00" in value:
            raise RemoteError(f"text with a NUL character cannot be stored: {value!r}")


def _control_changed(conn: psycopg.Connection[Any]) -> None:
    """In the transaction that changes the control log: a new control version, told at the commit."""
    conn.execute("UPDATE control_version SET version = version + 1")
    conn.execute("SELECT pg_notify(%s, '')", (CONTROL_CHANNEL,))


def _prefix_bounds(prefix: bytes) -> tuple[bytes, bytes]:
    """Souls under ``prefix/`` sort from ``prefix/`` (inclusive) to ``prefix0`` ('0' follows '/')."""
    return prefix + b"/", prefix + b"0"


# -- the fence, as SQL over the stored rules (the soul and state of the row being written) -----------

_IN_PREFIX = "({soul} = {p} OR ({soul} >= {p} || '\\x2f'::bytea AND {soul} < {p} || '\\x30'::bytea))"
_NOT_FENCED = f"""NOT EXISTS (
    SELECT 1 FROM fence_rules r
    WHERE %(state)s <= coalesce(r.watermark, %(now_ms)s - r.ttl_ms)
      AND ((r.scope IS NULL AND NOT EXISTS (SELECT 1 FROM protected p WHERE {_IN_PREFIX.format(soul="%(soul)s", p="p.prefix")}))
           OR {_IN_PREFIX.format(soul="%(soul)s", p="r.scope")}
           OR EXISTS (SELECT 1 FROM fence_souls f WHERE f.reset_id = r.rule_id AND f.soul = %(soul)s)))"""

_UPSERT = f"""
INSERT INTO fields (soul, key, value, state, seq, writer)
SELECT %(soul)s, %(key)s, %(value)s, %(state)s, nextval('stream_seq'), %(writer)s WHERE {_NOT_FENCED}
ON CONFLICT (soul, key) DO UPDATE SET value = excluded.value, state = excluded.state, seq = excluded.seq, writer = excluded.writer
WHERE excluded.state > fields.state
RETURNING 1
"""

_TIE_UPDATE = f"""
UPDATE fields SET value = %(value)s, seq = nextval('stream_seq'), writer = %(writer)s
WHERE soul = %(soul)s AND key = %(key)s AND state = %(state)s AND value = %(current)s AND {_NOT_FENCED}
RETURNING 1
"""


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_named(url: str) -> str:
    """The database a URL names, for messages (never its password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "a PostgreSQL URL that cannot be read"
    return f"PostgreSQL database {info.get('dbname', '')!r} on {info.get('host', 'localhost')}:{info.get('port', '5432')}"


def storage_failure(exc: Exception) -> StorageFailure:
    """What a failed transaction means, in words for the writer's error and the operator's health page."""
    if isinstance(exc, StorageFailure):
        return exc
    text = _first_line(exc)
    if isinstance(exc, psycopg.errors.DiskFull):
        return StorageFailure("the PostgreSQL server's disk is full")
    if isinstance(exc, psycopg.OperationalError):
        return StorageFailure(f"the PostgreSQL server cannot be reached or failed ({text})")
    return StorageFailure(f"{type(exc).__name__}: {text}")


_STOP = object()
Job = tuple[Callable[[psycopg.Connection[Any]], Any], "asyncio.Future[Any]"]


class _Worker:
    """A thread with its own connection running queued jobs in groups. The writer wraps each group
    in one transaction that first takes ``STREAM_LOCK`` and reports each commit to ``health``; the
    reader runs each job in autocommit. After the server went away (a restart, a dropped link) the
    writer fails the group it was in, unacknowledged, and reconnects for the next (a group that
    had not begun when the old connection proved dead is run again at once on a new one); the
    reader reconnects and runs its group again at once (a read has no effect to repeat). While the
    server cannot be reached, each group fails at once with ``StoreUnreachable``: writers get an
    error, never a stall."""

    def __init__(self, name: str, connect: Callable[[], psycopg.Connection[Any]], writer: bool, health: StorageHealth | None):
        self.connect = connect
        self.conn: psycopg.Connection[Any] | None = None  # connected by the thread, for its first group
        self.busy_since: float | None = None  # time.monotonic() when the group under way began
        self.writer = writer
        self.health = health
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[psycopg.Connection[Any]], Any]) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.queue.put((job, future))
        return future

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is _STOP:
                break
            jobs, stop = [first], False
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    jobs.append(item)
            self.busy_since = time.monotonic()
            outcomes, failure, wrote, began = self._run_group(jobs)
            if failure is not None and self._broken() and (not self.writer or not began):
                # a connection the server dropped (a restart, a cut link) shows only when used: a read
                # repeats safely on a new one, and so does a write group that failed before its
                # first statement was through (nothing of it reached the server)
                outcomes, failure, wrote, began = self._run_group(jobs)
            # every failure of the writer counts against the store's health, and every commit clears
            # it; the reader's count only when the server could not be reached (its heartbeats then
            # say so within a second, with no write needed), and never clear it (only a commit can)
            health = self.health if self.writer or (failure is not None and self._broken()) else None
            self.busy_since = None
            self.loop.call_soon_threadsafe(_resolve, outcomes, health, failure, wrote)
            if stop:
                break
        if self.conn is not None:
            self.conn.close()

    def _broken(self) -> bool:
        return self.conn is None or self.conn.closed

    def _run_group(self, jobs: list[Job]) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], StorageFailure | None, bool, bool]:
        """Run a group: each job's outcome, the group's failure (None: committed), whether it wrote,
        and whether it began (its first statement went through)."""
        # Jobs check their input before writing, so a job that raises a non-database error has
        # written nothing and fails alone; a database error fails the whole group, unacknowledged.
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        began = False
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self.connect()
            conn = self.conn
            if self.writer:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (STREAM_LOCK,))
            began = True
            start, accepted = 0, False
            while start < len(jobs):
                job, future = jobs[start]
                if isinstance(job, _Merge):  # a run of merges goes to the server as one pipeline
                    end = start + 1
                    while end < len(jobs) and isinstance(jobs[end][0], _Merge):
                        end += 1
                    run = _merge_run(conn, jobs[start:end])
                    accepted = accepted or any(ok and value for _, ok, value in run)
                    outcomes += run
                    start = end
                    continue
                start += 1
                try:
                    outcomes.append((future, True, job(conn)))
                except psycopg.Error:
                    raise
                except Exception as exc:
                    log.exception("storage job failed")
                    outcomes.append((future, False, exc))
            if self.writer:
                if accepted:  # delivered at the commit, to every LISTENing process (a nudge: see the docstring)
                    conn.execute("SELECT pg_notify(%s, '')", (STREAM_CHANNEL,))
                conn.commit()
        except Exception as exc:  # the server failed or went away: nobody is acked
            failure = storage_failure(exc)
            log.error("storage failed, %d jobs refused: %s", len(jobs), failure)
            self._abandon()
            return [(future, False, failure) for _, future in jobs], failure, False, began
        return outcomes, None, self.writer, began

    def _abandon(self) -> None:
        conn = self.conn
        if conn is None:
            return
        try:
            conn.rollback()
        except psycopg.Error:
            conn.close()  # broken: the next group reconnects

    def stop(self) -> None:
        self.queue.put(_STOP)
        self.thread.join()


def _resolve(
    outcomes: list[tuple[asyncio.Future[Any], bool, Any]], health: StorageHealth | None, failure: StorageFailure | None, wrote: bool
) -> None:
    if health is not None:
        if failure is not None:
            health.failed(str(failure), time.time())
        elif wrote:
            health.committed()
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value if isinstance(value, BaseException) else RuntimeError(str(value)))


@dataclass(frozen=True, slots=True)
class ProcessBeat:
    """One process of the fleet, as its heartbeat row says."""

    process_id: str
    pid: int
    host: str
    port: int
    started: float  # seconds since the epoch
    last_seen: float  # seconds since the epoch, the database's clock
    applied: int  # the control version it has in force
    connections: int
    messages_in: int
    messages_out: int


class _Listener:
    """A thread holding a LISTEN connection: each notification on a channel calls that channel's
    nudge on the loop. It wakes at least every ``LISTEN_WAIT_S`` to look at its stop flag; a broken
    connection (the server restarted) is replaced after a pause, and then nudges once, since a
    notification may have been lost meanwhile."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], nudges: dict[str, Callable[[], None]]):
        self.connect = connect
        self.nudges = nudges
        self.loop = asyncio.get_running_loop()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="gunrelay-pg-listener", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.connect() as conn:
                    for channel in self.nudges:
                        conn.execute(f"LISTEN {channel}")
                    for nudge in self.nudges.values():  # whatever was missed while not listening
                        self.loop.call_soon_threadsafe(nudge)
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=LISTEN_WAIT_S, stop_after=1):
                            self.loop.call_soon_threadsafe(self.nudges[note.channel])
            except (psycopg.Error, StorageFailure) as exc:
                log.warning("stream listener lost its connection (%s); the fleet's readers poll meanwhile", exc)
                self.stopping.wait(LISTEN_WAIT_S)
            except RuntimeError:  # the loop closed under us: nothing left to nudge
                return

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5 * LISTEN_WAIT_S)


class PostgresStore(Store):
    """The relay's store in a PostgreSQL database: graph, change stream, fence rules and control log."""

    def __init__(self, url: str, protected: Protected = Protected()):
        self.url = url
        self.protected = protected
        self.health = StorageHealth(stuck=self._writes_stuck)
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None
        self._listener: _Listener | None = None
        self.process_id = uuid.uuid4().hex  # written with each stream entry this process makes (``writer``)
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreMisconfigured(f"--postgres-url is not a PostgreSQL URL ({_first_line(exc)}); use postgresql://USER@HOST:PORT/DB") from None

    def _connect(self, autocommit: bool, role: str) -> psycopg.Connection[Any]:
        """A new connection, named for ``pg_stat_activity`` (``gunrelay writer pid N``). Keepalives
        notice a server or link that vanished without closing (a host crash, a cut cable) within
        about 15 s, and ``tcp_user_timeout`` a send that is never acknowledged, so a blocked read
        becomes an error instead of a stall."""
        try:
            return psycopg.connect(
                self.url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S,
                application_name=f"gunrelay {role} pid {os.getpid()}",
                keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=5, tcp_user_timeout=15_000,
            )
        except psycopg.OperationalError as exc:
            if MISCONFIGURED.search(str(exc)):
                raise StoreMisconfigured(f"--postgres-url: the server refused the {database_named(self.url)}: {_first_line(exc)}") from exc
            raise StoreUnreachable(f"the PostgreSQL server cannot be reached ({_first_line(exc)})") from exc
        except psycopg.Error as exc:
            raise storage_failure(exc) from exc

    def _writes_stuck(self) -> str | None:
        """Why writes are stuck, when the writer's transaction has waited ``STUCK_S`` for the server
        (stopped, or its disk frozen, without the connection failing): ``/health`` then says so."""
        writer = self._writer
        since = writer.busy_since if writer is not None else None
        if since is None:
            return None
        waited = time.monotonic() - since
        return f"a write to the PostgreSQL server has waited {waited:.0f} s for its answer" if waited >= STUCK_S else None

    async def open(self) -> None:
        """Connect, and create or migrate the schema. ``StoreUnreachable`` when the server cannot be
        reached (the caller may try again), ``StoreMisconfigured`` or ``SchemaTooNew`` when it never will."""
        await asyncio.to_thread(self._migrate)
        self._writer = _Worker("gunrelay-pg-writer", lambda: self._connect(False, "writer"), writer=True, health=self.health)
        self._reader = _Worker("gunrelay-pg-reader", lambda: self._connect(True, "reader"), writer=False, health=self.health)

    def _migrate(self) -> None:
        with self._connect(False, "schema") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row is not None and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"the PostgreSQL database was written by a newer gunrelay (schema {version}; this one knows up to {SCHEMA_VERSION})"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[step])
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
            conn.execute("LOCK TABLE protected")
            self._same_relay(conn)
            conn.execute("DELETE FROM protected")
            for prefix in self.protected.prefixes:
                conn.execute("INSERT INTO protected (prefix) VALUES (%s) ON CONFLICT DO NOTHING", (_b(prefix),))
            conn.commit()

    def _same_relay(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse a database another relay keeps: the user spaces it protects (``~<pub>``, the
        relay's own) must be this process's. Processes of one fleet share one identity; one started
        with a new identity (a machine whose data folder was not given the fleet's ``identity.json``)
        would sign reset records no client of the fleet trusts."""
        stored = {bytes(row[0]).decode() for row in conn.execute("SELECT prefix FROM protected")}
        theirs = {p for p in stored if p.startswith("~")}
        ours = {p for p in self.protected.prefixes if p.startswith("~")}
        if theirs and ours and theirs != ours:
            raise StoreMisconfigured(
                f"the {database_named(self.url)} is the store of relay {', '.join(sorted(theirs))[1:]}, and this process's "
                f"identity is {', '.join(sorted(ours))[1:]}: processes sharing a database are one relay; copy identity.json "
                "and admin-token from the data folder of a process of that relay into this one's --data"
            )

    async def close(self) -> None:
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
            self._listener = None
        for worker in (self._writer, self._reader):
            if worker is not None:
                await asyncio.to_thread(worker.stop)
        self._writer = self._reader = None

    def _write(self, job: Callable[[psycopg.Connection[Any]], Any]) -> asyncio.Future[Any]:
        assert self._writer is not None, "store is not open"
        return self._writer.submit(job)

    def _query(self, job: Callable[[psycopg.Connection[Any]], Any]) -> asyncio.Future[Any]:
        assert self._reader is not None, "store is not open"
        return self._reader.submit(job)

    # -- the graph ---------------------------------------------------------------------------------

    def merge(self, fields: list[Field]) -> asyncio.Future[list[Field]]:
        return self._write(_Merge(fields, self.process_id))

    def read_page(self, query: ReadQuery) -> asyncio.Future[ReadPage]:
        return self._query(lambda conn: _read_page(conn, query))

    def changes_since(self, cursor: int, limit: int) -> asyncio.Future[ChangePage]:
        return self._query(lambda conn: _changes_since(conn, cursor, limit))

    # -- the fleet: other processes' writes, and the nudge that they wrote -----------------------------

    def others_since(self, cursor: int, limit: int) -> asyncio.Future[ChangePage]:
        """Like ``changes_since``, without the entries this store (``process_id``) wrote; the cursor
        passes them all the same."""
        return self._query(lambda conn: _changes_since(conn, cursor, limit, skip_writer=self.process_id))

    def stream_head(self) -> asyncio.Future[int]:
        return self._query(_stream_head)

    def listen(self, nudges: Mapping[str, Callable[[], None]]) -> None:
        """For each channel (``STREAM_CHANNEL``: a write transaction of any process, its own too,
        accepted fields; ``CONTROL_CHANNEL``: one changed the control log), call its nudge on the
        event loop at each notification, until ``close``. Reconnects after a failure."""
        assert self._listener is None, "already listening"
        self._listener = _Listener(lambda: self._connect(True, "listener"), dict(nudges))

    async def lease(self, name: str) -> Callable[[], Awaitable[None]] | None:
        """The fleet-wide lead of ``name`` (a reset's purge): a session advisory lock held by a
        connection of its own, so that it ends with this process, crash or not. None: another
        process holds it. Else the call that gives it up."""
        def take() -> psycopg.Connection[Any] | None:
            conn = self._connect(True, "lease")
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LEASE_SPACE, name)).fetchone()
            except psycopg.Error:
                conn.close()
                raise
            if row is None or not row[0]:
                conn.close()
                return None
            return conn

        held = await asyncio.to_thread(take)
        if held is None:
            return None

        async def release() -> None:
            await asyncio.to_thread(held.close)  # the lock ends with the session

        return release

    # -- the fleet's heartbeats and control version ------------------------------------------------

    def control_version(self) -> asyncio.Future[int]:
        def job(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute("SELECT version FROM control_version").fetchone()
            return int(row[0]) if row is not None else 0

        return self._query(job)

    def beat(self, beat: ProcessBeat) -> asyncio.Future[None]:
        """This process's heartbeat row, ``last_seen`` now by the database's clock. Written in
        autocommit on the reader's connection: a heartbeat is no part of the stream, and must not
        wait for the fleet's write lock."""
        _texts(beat.host)
        return self._query(
            lambda conn: conn.execute(
                "INSERT INTO fleet_processes (process_id, pid, host, port, started, last_seen, applied, connections, messages_in, messages_out) "
                "VALUES (%s, %s, %s, %s, %s, extract(epoch FROM clock_timestamp()), %s, %s, %s, %s) "
                "ON CONFLICT (process_id) DO UPDATE SET last_seen = excluded.last_seen, applied = excluded.applied, "
                "connections = excluded.connections, messages_in = excluded.messages_in, messages_out = excluded.messages_out, port = excluded.port",
                (self.process_id, beat.pid, beat.host, beat.port, beat.started, beat.applied, beat.connections, beat.messages_in, beat.messages_out),
            )
        )

    def processes(self, live_s: float) -> asyncio.Future[list[ProcessBeat]]:
        """Every process whose heartbeat is younger than ``live_s`` (by the database's clock)."""
        def job(conn: psycopg.Connection[Any]) -> list[ProcessBeat]:
            rows = conn.execute(
                "SELECT process_id, pid, host, port, started, last_seen, applied, connections, messages_in, messages_out "
                "FROM fleet_processes WHERE last_seen > extract(epoch FROM clock_timestamp()) - %s ORDER BY started, process_id",
                (live_s,),
            ).fetchall()
            return [ProcessBeat(*row) for row in rows]

        return self._query(job)

    def forget_process(self) -> asyncio.Future[None]:
        """This process leaves the fleet (a clean stop): its heartbeat row goes."""
        return self._query(lambda conn: conn.execute("DELETE FROM fleet_processes WHERE process_id = %s", (self.process_id,)))

    async def probe(self) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO probe (id, at) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET at = excluded.at", (time.time(),)
            )
        )

    async def stats(self) -> StoreStats:
        return await self._query(lambda conn: _stats(conn, "", ()))  # type: ignore[no-any-return]

    # -- purges --------------------------------------------------------------------------------

    def _fenced_sql(self, conn: psycopg.Connection[Any], rule: FenceRule, protected: Protected) -> tuple[str, tuple[Any, ...]]:
        """A condition selecting the stored fields ``rule`` fences (evaluated now, for TTL rules);
        an installed reset's closure is the one installed with it."""
        watermark = rule.watermark_at(time.time() * 1000)
        if rule.scope == ALL:
            clauses = ["state <= %s"]
            params: list[Any] = [watermark]
            for prefix in protected.prefixes:
                low, high = _prefix_bounds(_b(prefix))
                clauses.append("NOT (soul = %s OR (soul >= %s AND soul < %s))")
                params += [_b(prefix), low, high]
            return " AND ".join(clauses), tuple(params)
        scope = _b(rule.scope)
        low, high = _prefix_bounds(scope)
        closure_params: tuple[Any, ...]
        if conn.execute("SELECT 1 FROM resets WHERE reset_id = %s", (rule.rule_id,)).fetchone() is not None:
            closure, closure_params = "soul IN (SELECT soul FROM fence_souls WHERE reset_id = %s)", (rule.rule_id,)
        else:
            closure, closure_params = "soul = ANY(%s)", ([_b(s) for s in rule.souls],)
        return f"state <= %s AND (soul = %s OR (soul >= %s AND soul < %s) OR {closure})", (watermark, scope, low, high, *closure_params)

    async def purge_batch(self, rule: FenceRule, protected: Protected, limit: int) -> int:
        def job(conn: psycopg.Connection[Any]) -> int:
            where, params = self._fenced_sql(conn, rule, protected)
            deleted = conn.execute(
                f"DELETE FROM fields WHERE (soul, key) IN (SELECT soul, key FROM fields WHERE {where} LIMIT %s)", (*params, limit)
            ).rowcount
            conn.execute("UPDATE resets SET purged = purged + %s WHERE reset_id = %s", (deleted, rule.rule_id))
            return deleted

        return await self._write(job)  # type: ignore[no-any-return]

    async def scope_report(self, rule: FenceRule, protected: Protected) -> StoreStats:
        def job(conn: psycopg.Connection[Any]) -> StoreStats:
            where, params = self._fenced_sql(conn, rule, protected)
            return _stats(conn, f"WHERE {where}", params)

        return await self._query(job)  # type: ignore[no-any-return]

    async def reachable_souls(self, prefix: str, protected: Protected, limit: int) -> frozenset[str]:
        def job(conn: psycopg.Connection[Any]) -> frozenset[str]:
            low, high = _prefix_bounds(_b(prefix))
            frontier = [
                bytes(s).decode()
                for (s,) in conn.execute("SELECT DISTINCT soul FROM fields WHERE soul = %s OR (soul >= %s AND soul < %s)", (_b(prefix), low, high))
            ]

            def values_of(soul: str) -> list[str]:
                return [v for (v,) in conn.execute("SELECT value FROM fields WHERE soul = %s", (_b(soul),))]

            return reachable_from(frontier, values_of, prefix, protected, limit)

        return await self._query(job)  # type: ignore[no-any-return]

    # -- whole-graph copies: a JSON-lines file of [soul, key, value JSON, state] --------------------

    async def snapshot_to(self, path: Path) -> StoreStats:
        def job(conn: psycopg.Connection[Any]) -> StoreStats:
            souls: set[bytes] = set()
            count = size = 0
            with conn.transaction(), path.open("w", encoding="utf-8") as out:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")  # one consistent view
                with conn.cursor(name="gunrelay_snapshot") as rows:
                    rows.execute("SELECT soul, key, value, state FROM fields")
                    for soul, key, value, state in rows:
                        soul, key = bytes(soul), bytes(key)
                        souls.add(soul)
                        count += 1
                        size += len(soul) + len(key) + len(value)
                        out.write(json.dumps([soul.decode(), key.decode(), value, state]) + "\n")
            return StoreStats(len(souls), count, size)

        return await self._query(job)  # type: ignore[no-any-return]

    async def restore_fields_from(self, path: Path) -> StoreStats:
        def load() -> list[list[Any]]:
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

        rows = await asyncio.to_thread(load)  # read before the writer takes the fleet's lock

        def job(conn: psycopg.Connection[Any]) -> StoreStats:
            conn.execute("DELETE FROM fields")
            with conn.cursor() as cur:  # every restored field takes a new number: to a reader, it is new
                cur.executemany(
                    "INSERT INTO fields (soul, key, value, state, seq, writer) VALUES (%s, %s, %s, %s, nextval('stream_seq'), NULL)",
                    [(_b(soul), _b(key), value, state) for soul, key, value, state in sorted(rows, key=lambda r: (r[3], r[0], r[1]))],
                )
            conn.execute("SELECT pg_notify(%s, '')", (STREAM_CHANNEL,))  # every process pushes the restored graph
            return _stats(conn, "", ())

        return await self._write(job)  # type: ignore[no-any-return]

    # -- snapshots kept in the database (``server/snapshots.py`` ``DatabaseShelf``) ---------------

    async def snapshot_into_database(self, name: str, created: float) -> tuple[StoreStats, int]:
        """Copy the graph into snapshot ``name``, whole or not at all (one transaction); its
        stats and size. On a connection of its own, in one consistent view (REPEATABLE READ): a
        long copy holds neither the reader nor the fleet's write lock."""
        _texts(name)

        def job() -> tuple[StoreStats, int]:
            with self._connect(False, "snapshot") as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                conn.execute("INSERT INTO snapshots (name, created, bytes, fields) VALUES (%s, %s, 0, 0)", (name, created))
                conn.execute("INSERT INTO snapshot_fields (name, soul, key, value, state) SELECT %s, soul, key, value, state FROM fields", (name,))
                row = conn.execute(
                    "SELECT count(DISTINCT soul), count(*), coalesce(sum(length(soul) + length(key) + length(value)), 0) "
                    "FROM snapshot_fields WHERE name = %s", (name,),
                ).fetchone()
                souls, fields, size = (int(v) for v in row) if row is not None else (0, 0, 0)
                conn.execute("UPDATE snapshots SET bytes = %s, fields = %s WHERE name = %s", (size, fields, name))
                conn.commit()
            return StoreStats(souls, fields, size), size

        try:
            return await asyncio.to_thread(job)
        except psycopg.Error as exc:
            raise storage_failure(exc) from exc

    async def database_snapshots(self) -> list[tuple[str, float, int, int]]:
        """Every snapshot: name, created, bytes, fields; by name (the names sort by time)."""
        rows = await self._query(lambda conn: conn.execute("SELECT name, created, bytes, fields FROM snapshots ORDER BY name").fetchall())
        return [(str(n), float(c), int(b), int(f)) for n, c, b, f in rows]

    async def delete_database_snapshot(self, name: str) -> bool:
        """Drop a snapshot; False when there is none by that name."""
        def job(conn: psycopg.Connection[Any]) -> bool:
            return conn.execute("DELETE FROM snapshots WHERE name = %s RETURNING 1", (name,)).fetchone() is not None

        return await self._query(job)  # type: ignore[no-any-return]

    async def restore_fields_from_database_snapshot(self, name: str) -> StoreStats:
        """Replace every field with snapshot ``name``'s (``restore_fields_from``, from the database)."""
        def job(conn: psycopg.Connection[Any]) -> StoreStats:
            if conn.execute("SELECT 1 FROM snapshots WHERE name = %s", (name,)).fetchone() is None:
                raise KeyError(name)
            conn.execute("DELETE FROM fields")
            conn.execute(  # every restored field takes a new number: to a reader, it is new
                "INSERT INTO fields (soul, key, value, state, seq, writer) SELECT soul, key, value, state, nextval('stream_seq'), NULL "
                "FROM (SELECT soul, key, value, state FROM snapshot_fields WHERE name = %s ORDER BY state, soul, key) AS kept",
                (name,),
            )
            conn.execute("SELECT pg_notify(%s, '')", (STREAM_CHANNEL,))  # every process pushes the restored graph
            return _stats(conn, "", ())

        return await self._write(job)  # type: ignore[no-any-return]

    # -- resets (each with its fence rule, which the merge statements obey) -------------------------

    async def install_reset(self, record: ResetRecord, souls: frozenset[str]) -> None:
        await self._write(lambda conn: _install_reset(conn, record, souls))

    async def load_resets(self) -> list[StoredReset]:
        def job(conn: psycopg.Connection[Any]) -> list[StoredReset]:
            out = []
            rows = conn.execute("SELECT reset_id, record, purge_done, purged, superseded_by, published FROM resets").fetchall()
            for reset_id, record, done, purged, superseded_by, published in rows:
                souls = frozenset(bytes(s).decode() for (s,) in conn.execute("SELECT soul FROM fence_souls WHERE reset_id = %s", (reset_id,)))
                out.append(StoredReset(ResetRecord.from_json(record), souls, done, purged, superseded_by, published))
            return out

        return await self._query(job)  # type: ignore[no-any-return]

    async def finish_purge(self, reset_id: str, purged: int) -> None:
        _texts(reset_id)
        def job(conn: psycopg.Connection[Any]) -> None:
            conn.execute("UPDATE resets SET purge_done = true, purged = %s WHERE reset_id = %s", (purged, reset_id))
            _control_changed(conn)  # a rotated scope stops serving once its purge is done

        await self._write(job)

    async def mark_published(self, reset_id: str) -> None:
        _texts(reset_id)
        def job(conn: psycopg.Connection[Any]) -> None:
            conn.execute("UPDATE resets SET published = true WHERE reset_id = %s", (reset_id,))
            _control_changed(conn)

        await self._write(job)

    async def supersede_resets(self, issued_after: float, by: str) -> list[str]:
        _texts(by)
        def job(conn: psycopg.Connection[Any]) -> list[str]:
            ids = []
            for reset_id, record in conn.execute("SELECT reset_id, record FROM resets WHERE superseded_by IS NULL").fetchall():
                if ResetRecord.from_json(record).issued_at > issued_after and reset_id != by:
                    ids.append(reset_id)
            conn.execute("UPDATE resets SET superseded_by = %s WHERE reset_id = ANY(%s)", (by, ids))
            conn.execute("DELETE FROM fence_rules WHERE rule_id = ANY(%s)", (ids,))  # undone: they fence nothing any more
            _control_changed(conn)
            return ids

        return await self._write(job)  # type: ignore[no-any-return]

    # -- acks, bans, TTL rules, audit --------------------------------------------------------------

    async def record_ack(self, ack: ResetAck) -> None:
        _texts(ack.reset_id, ack.peer_id, ack.address, ack.pid)
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO reset_acks (reset_id, peer_id, address, pid, at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (ack.reset_id, ack.peer_id, ack.address, ack.pid, ack.at),
            )
        )

    async def acks(self, reset_id: str) -> list[ResetAck]:
        rows = await self._query(
            lambda conn: conn.execute(
                "SELECT reset_id, peer_id, address, pid, at FROM reset_acks WHERE reset_id = %s ORDER BY at", (reset_id,)
            ).fetchall()
        )
        return [ResetAck(*row) for row in rows]

    async def save_session(self, session: StoredSession, keep: int, now: float) -> None:
        _texts(session.digest, session.user, session.csrf, session.address)

        def job(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                'INSERT INTO console_sessions (digest, "user", csrf, expires, address) VALUES (%s, %s, %s, %s, %s) '
                'ON CONFLICT (digest) DO UPDATE SET "user" = excluded."user", csrf = excluded.csrf, expires = excluded.expires, '
                "address = excluded.address",
                (session.digest, session.user, session.csrf, session.expires, session.address),
            )
            conn.execute("DELETE FROM console_sessions WHERE expires <= %s", (now,))
            conn.execute(
                "DELETE FROM console_sessions WHERE digest IN (SELECT digest FROM console_sessions ORDER BY expires DESC OFFSET %s)", (keep,)
            )

        await self._write(job)

    async def load_session(self, digest: str, now: float) -> StoredSession | None:
        row = await self._query(
            lambda conn: conn.execute(
                'SELECT digest, "user", csrf, expires, address FROM console_sessions WHERE digest = %s AND expires > %s', (digest, now)
            ).fetchone()
        )
        return StoredSession(*row) if row is not None else None

    async def delete_session(self, digest: str) -> None:
        await self._write(lambda conn: conn.execute("DELETE FROM console_sessions WHERE digest = %s", (digest,)))

    async def save_ban(self, ban: Ban) -> None:
        _texts(ban.address, ban.reason)
        def job(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO bans (address, until, reason) VALUES (%s, %s, %s) "
                "ON CONFLICT (address) DO UPDATE SET until = excluded.until, reason = excluded.reason",
                (ban.address, ban.until, ban.reason),
            )
            _control_changed(conn)

        await self._write(job)

    async def delete_ban(self, address: str) -> None:
        _texts(address)
        def job(conn: psycopg.Connection[Any]) -> None:
            conn.execute("DELETE FROM bans WHERE address = %s", (address,))
            _control_changed(conn)

        await self._write(job)

    async def load_bans(self) -> list[Ban]:
        rows = await self._query(lambda conn: conn.execute("SELECT address, until, reason FROM bans").fetchall())
        return [Ban(*row) for row in rows]

    async def save_ttl(self, prefix: str, ttl_ms: float) -> None:
        _texts(prefix)
        def job(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO ttl_rules (prefix, ttl_ms) VALUES (%s, %s) ON CONFLICT (prefix) DO UPDATE SET ttl_ms = excluded.ttl_ms",
                (prefix, ttl_ms),
            )
            conn.execute(
                "INSERT INTO fence_rules (rule_id, scope, ttl_ms) VALUES (%s, %s, %s) "
                "ON CONFLICT (rule_id) DO UPDATE SET ttl_ms = excluded.ttl_ms",
                (f"ttl:{prefix}", None if prefix == ALL else _b(prefix), ttl_ms),
            )
            _control_changed(conn)

        await self._write(job)

    async def delete_ttl(self, prefix: str) -> None:
        _texts(prefix)
        def job(conn: psycopg.Connection[Any]) -> None:
            conn.execute("DELETE FROM ttl_rules WHERE prefix = %s", (prefix,))
            conn.execute("DELETE FROM fence_rules WHERE rule_id = %s", (f"ttl:{prefix}",))
            _control_changed(conn)

        await self._write(job)

    async def load_ttls(self) -> dict[str, float]:
        return dict(await self._query(lambda conn: conn.execute("SELECT prefix, ttl_ms FROM ttl_rules").fetchall()))

    async def save_stream_cursor(self, relay_pub: str, cursor: int) -> None:
        _texts(relay_pub)
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO stream_cursors (relay_pub, cursor) VALUES (%s, %s) "
                "ON CONFLICT (relay_pub) DO UPDATE SET cursor = greatest(stream_cursors.cursor, excluded.cursor)",
                (relay_pub, cursor),
            )
        )

    async def load_stream_cursors(self) -> dict[str, int]:
        return dict(await self._query(lambda conn: conn.execute("SELECT relay_pub, cursor FROM stream_cursors").fetchall()))

    async def append_audit(self, entry: AuditEntry) -> int:
        _texts(entry.who, entry.address, entry.action, entry.detail, entry.outcome)
        def job(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(
                "INSERT INTO audit (at, who, address, action, detail, outcome, status) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (entry.at, entry.who, entry.address, entry.action, entry.detail, entry.outcome, entry.status),
            ).fetchone()
            assert row is not None
            return int(row[0])

        return int(await self._write(job))

    async def audit_page(self, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        def job(conn: psycopg.Connection[Any]) -> tuple[list[AuditEntry], int]:
            rows = conn.execute(
                "SELECT at, who, address, action, detail, outcome, status, id FROM audit ORDER BY id DESC LIMIT %s OFFSET %s",
                (limit, offset),
            ).fetchall()
            total = conn.execute("SELECT count(*) FROM audit").fetchone()
            return [AuditEntry(*row) for row in rows], int(total[0]) if total is not None else 0

        result: tuple[list[AuditEntry], int] = await self._query(job)
        return result


# -- the jobs ------------------------------------------------------------------------------------


class _Merge:
    """A merge job: the writer sends a run of them in one pipeline (``_merge_run``)."""

    __slots__ = ("fields", "writer")

    def __init__(self, fields: list[Field], writer: str):
        self.fields = fields
        self.writer = writer

    def __call__(self, conn: psycopg.Connection[Any]) -> list[Field]:
        return _merge(conn, self.fields, self.writer)


def _rows(fields: list[Field], writer: str | None) -> list[dict[str, Any]]:
    # a TTL rule's watermark is judged by this host's clock, as the relay's admission and purges
    # judge it (not the database's, which may differ)
    now_ms = time.time() * 1000
    return [
        {"soul": _b(f.soul), "key": _b(f.key), "value": encode_value(f.value), "state": f.state, "writer": writer, "now_ms": now_ms}
        for f in fields
    ]


def _merge(conn: psycopg.Connection[Any], fields: list[Field], writer: str | None = None) -> list[Field]:
    rows = _rows(fields, writer)  # may raise: before any write
    won = _apply(conn, rows)
    return [field for field, accepted in zip(fields, won) if accepted]


def _merge_run(conn: psycopg.Connection[Any], jobs: list[Job]) -> list[tuple[asyncio.Future[Any], bool, Any]]:
    """Consecutive merge jobs in one pipeline (one round trip instead of one per job), in order. A
    job whose fields cannot be encoded fails alone, before anything is sent."""
    refused: dict[int, Exception] = {}
    rows: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for index, (job, _) in enumerate(jobs):
        assert isinstance(job, _Merge)
        try:
            job_rows = _rows(job.fields, job.writer)
        except Exception as exc:
            log.exception("storage job failed")
            refused[index] = exc
            job_rows = []
        spans.append((len(rows), len(rows) + len(job_rows)))
        rows += job_rows
    won = _apply(conn, rows) if rows else []
    outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
    for index, ((job, future), (low, high)) in enumerate(zip(jobs, spans)):
        if index in refused:
            outcomes.append((future, False, refused[index]))
        else:
            assert isinstance(job, _Merge)
            outcomes.append((future, True, [field for field, accepted in zip(job.fields, won[low:high]) if accepted]))
    return outcomes


def _apply(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> list[bool]:
    """Write ``rows`` in order by HAM and the fence; which of them changed the store."""
    won = [False] * len(rows)
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, rows, returning=True)  # pipelined: one round trip for them all
        for i in range(len(rows)):
            won[i] = cur.fetchone() is not None
            if i + 1 < len(rows):
                cur.nextset()
    lost = [i for i in range(len(rows)) if not won[i]]
    if lost:
        _settle_ties(conn, rows, lost, won)
    return won


def _settle_ties(conn: psycopg.Connection[Any], rows: list[dict[str, Any]], lost: list[int], won: list[bool]) -> None:
    """The rows the upsert refused: those at the stored state may still win by the tie rule, in order."""
    places = list({(rows[i]["soul"], rows[i]["key"]) for i in lost})
    current: dict[tuple[bytes, bytes], tuple[str, float]] = {
        (bytes(soul), bytes(key)): (value, state)
        for soul, key, value, state in conn.execute(
            "SELECT f.soul, f.key, f.value, f.state FROM fields f JOIN unnest(%s::bytea[], %s::bytea[]) AS w(soul, key) "
            "ON f.soul = w.soul AND f.key = w.key",
            ([s for s, _ in places], [k for _, k in places]),
        )
    }
    for i in lost:
        row = rows[i]
        held = current.get((row["soul"], row["key"]))
        if held is None or held[1] != row["state"] or not ham_tie_wins(row["value"], held[0]):
            continue
        if conn.execute(_TIE_UPDATE, {**row, "current": held[0]}).fetchone() is not None:
            won[i] = True
            current[(row["soul"], row["key"])] = (row["value"], row["state"])


def _install_reset(conn: psycopg.Connection[Any], record: ResetRecord, souls: frozenset[str]) -> None:
    """Record, closure and fence rule in one transaction: from its commit, every process's merge obeys it."""
    _texts(record.reset_id)
    closure = [(record.reset_id, _b(s)) for s in souls]
    conn.execute("INSERT INTO resets (reset_id, record) VALUES (%s, %s)", (record.reset_id, record.to_json()))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO fence_souls (reset_id, soul) VALUES (%s, %s) ON CONFLICT DO NOTHING", closure)
    scope = None if record.scope == ALL else _b(record.scope)
    conn.execute("INSERT INTO fence_rules (rule_id, scope, watermark) VALUES (%s, %s, %s)", (record.reset_id, scope, record.watermark))
    _control_changed(conn)


def _changes_since(conn: psycopg.Connection[Any], cursor: int, limit: int, skip_writer: str | None = None) -> ChangePage:
    """Entries above ``cursor`` in order; with ``skip_writer``, those that process wrote are left out
    of the page but still passed by its cursor (the last number read)."""
    rows = conn.execute(
        "SELECT seq, soul, key, value, state, writer FROM fields WHERE seq > %s ORDER BY seq LIMIT %s", (cursor, max(limit, 0))
    ).fetchall()
    changes = [
        Change(seq, bytes(soul).decode(), bytes(key).decode(), value, as_state(state))
        for seq, soul, key, value, state, writer in rows
        if skip_writer is None or writer != skip_writer
    ]
    return ChangePage(changes, rows[-1][0] if rows else cursor)


def _stream_head(conn: psycopg.Connection[Any]) -> int:
    """The highest number handed out so far (0 before the first): a reader starting here sees
    every change committed after this call (numbers are taken in commit order, ``STREAM_LOCK``)."""
    row = conn.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM stream_seq").fetchone()
    return int(row[0]) if row is not None else 0


def _stats(conn: psycopg.Connection[Any], where: str, params: tuple[Any, ...]) -> StoreStats:
    row = conn.execute(
        f"SELECT count(DISTINCT soul), count(*), coalesce(sum(octet_length(soul) + octet_length(key) + octet_length(value)), 0) FROM fields {where}",
        params,
    ).fetchone()
    assert row is not None
    return StoreStats(souls=row[0], fields=row[1], bytes=int(row[2]))


def _read_page(conn: psycopg.Connection[Any], query: ReadQuery) -> ReadPage:
    try:
        return select_rows(_scan(conn, query), query)
    except UnicodeEncodeError:  # a soul or key with a lone surrogate: nothing stored can match it
        return ReadPage({}, None, 0, 0)


def _within(column: str, lex: Lex, clauses: list[str], params: list[Any]) -> None:
    """Narrow ``column`` to the lex's index range (an exact name is its own lower and upper bound)."""
    lower, upper = lex.lower_bound(), lex.upper_bound()
    if lower:
        clauses.append(f"{column} >= %s")
        params.append(_b(lower))
    if upper is not None:
        clauses.append(f"{column} <= %s")
        params.append(_b(upper))


def _chunks(conn: psycopg.Connection[Any], select: str, column: str, clauses: list[str], params: list[Any], descending: bool, after: bytes | None) -> Iterator[tuple[Any, ...]]:
    """Rows in ``column`` order, fetched ``CHUNK`` at a time past the last one seen (a page that
    stops early has not read the rest)."""
    order = "DESC" if descending else "ASC"
    past = f"{column} < %s" if descending else f"{column} > %s"
    while True:
        where = clauses + ([past] if after is not None else [])
        sql = f"{select} {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {column} {order} LIMIT {CHUNK}"
        rows = conn.execute(sql, params + ([after] if after is not None else [])).fetchall()
        yield from rows
        if len(rows) < CHUNK:
            return
        after = bytes(rows[-1][0])


def _key_rows(conn: psycopg.Connection[Any], soul: str, key: Lex | None, after_key: str | None) -> Iterator[Row]:
    clauses = ["soul = %s"]
    params: list[Any] = [_b(soul)]
    if key is not None:
        _within("key", key, clauses, params)
    descending = key is not None and key.reverse
    after = _b(after_key) if after_key is not None else None
    for row_key, value, state in _chunks(conn, "SELECT key, value, state FROM fields", "key", clauses, params, descending, after):
        yield bytes(row_key).decode(), value, as_state(state)


def _scan(conn: psycopg.Connection[Any], query: ReadQuery) -> Iterator[tuple[str, Iterator[Row] | tuple[()]]]:
    """(soul, its rows) from the resume point on, lazily: a page stops reading when it is full."""
    after = query.after
    if query.soul is not None:
        if after is not None and after[1] is None:
            return
        yield query.soul, _key_rows(conn, query.soul, query.key, after[1] if after is not None else None)
        return
    soul_lex = query.soul_lex
    assert soul_lex is not None
    descending = soul_lex.reverse
    clauses: list[str] = []
    params: list[Any] = []
    _within("soul", soul_lex, clauses, params)
    start: bytes | None = None
    if after is not None:
        if after[1] is None:
            start = _b(after[0])
        else:
            clauses.append("soul <= %s" if descending else "soul >= %s")
            params.append(_b(after[0]))
    for (soul_bytes,) in _chunks(conn, "SELECT DISTINCT soul FROM fields", "soul", clauses, params, descending, start):
        soul = bytes(soul_bytes).decode()
        if not soul_lex.matches(soul):
            yield soul, ()
            continue
        resume_key = after[1] if after is not None and soul == after[0] else None
        yield soul, _key_rows(conn, soul, query.key, resume_key)
