"""Moving a relay's store between backends: ``gunrelay migrate --from SRC --to DST`` (issue 13).

Theory of operation. Each side is a stopped relay's store: ``sqlite:DIR`` (the data folder,
``DIR/gunrelay.sqlite3``) or a ``postgresql://`` URL. Both are opened as ``Store`` objects and
everything goes through the ``Store`` interface, so any pair of backends works the same way:

1. **Refusals first** (before anything is written): an unknown address, the same store on both
   sides, a source that is not a gunrelay store, a SQLite folder a live relay holds (its data lock,
   ``server/datalock.py``, taken here and held until the end, so no relay can start on it
   meanwhile), a PostgreSQL database a live relay uses, a target written by a newer gunrelay (the
   store's own ``SchemaTooNew`` on open), and a target holding graph data unless ``--merge``.
   A live relay on PostgreSQL shows itself only by its connections (its reader and writer
   threads each keep one open from its first query on; no heartbeat table exists yet), so
   ``database_users`` lists the other client sessions of that database in ``pg_stat_activity``
   and any one of them refuses the migration (a stray ``psql`` too: stop it, or migrate from a
   copy). The check runs once, before opening; a relay started during the migration is not
   kept out.
2. **The graph**, a page at a time (``store.read_page``, about ``PAGE_BYTES`` of values per page,
   so memory stays bounded whatever the size), each page written with ``target.merge``. Into an
   empty target a merge is a plain copy (HAM against nothing keeps every value and its exact
   state); every field must be accepted, or the migration stops with an error. With ``merge``
   the target's HAM (and, on PostgreSQL, its fences) decide, and what they keep out is counted.
   The graph goes before the resets so that a fence installed in the target never judges the
   copy (a rotation in its grace period still serves what it found).
3. **The control log**: resets in issue order with their fence closures, purge state and
   publication mark; a restore's superseding is replayed right after the restore is installed
   (``supersede_resets`` from just before the first reset it undid). Then every reset's acks,
   bans, TTL rules, stream cursors, and the audit log oldest first (read newest-first pages from
   the old end; the target gives new ids in the same order). With ``merge`` a reset the target
   already knows is left as it is.
4. **Verification**: counts of every table compared, then a full field-by-field comparison of
   the two graphs (both streamed in soul/key order, side by side: value text and state equal),
   and every reset, ack, ban, TTL rule, cursor and audit entry compared. With ``merge`` the check
   is that every source field is in the target at a state at least as new (a field the target's
   fence kept out is counted as ``kept_out``). A mismatch is an error naming the first difference.

A PostgreSQL store is opened with the system prefixes its database already names (``protected_of``:
opening replaces that table with the constructor's, so an empty set would wipe what the relay
declared). A migration that fails after it began writing says so (``MigrationFailed``): the target
is then partly written and must be emptied before another try.

One thing the interface cannot carry: the running ``purged`` count of a purge that had not
finished (only ``finish_purge`` sets a count). Such a reset arrives unfinished with its count at
0; its purge resumes when the relay starts, and the report lists it (``purge_counts_restarted``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..core.errors import GunrelayError, LocalError, OperatorError
from ..core.fence import Protected
from ..core.graph import Field
from ..core.lex import Lex
from ..storage.base import AuditEntry, ReadQuery, Store, StoredReset, decode_value
from ..storage.postgres import PostgresStore, database_named
from ..storage.sqlite import SQLiteStore
from .datalock import DataLock

STORE_FILE = "gunrelay.sqlite3"
PAGE_BYTES = 1 << 20  # values' text read per page, about
PAGE_SCAN = 50_000  # stored rows one page may look at
AUDIT_PAGE = 1_000
SUPERSEDE_MARGIN_MS = 0.001  # just before the first reset a restore undid


class MigrationRefused(OperatorError):
    """The migration cannot start: what was asked is impossible or unsafe; nothing was written."""


class DatabaseInUse(LocalError):
    """Another session (a live relay, most likely) is connected to the PostgreSQL database."""


class MigrationMismatch(LocalError):
    """The verification found the target different from the source."""


class MigrationFailed(LocalError):
    """The migration stopped after it began writing the target."""


@dataclass(frozen=True, slots=True)
class StoreAddress:
    """One side of a migration: a SQLite data folder or a PostgreSQL URL."""

    kind: str  # "sqlite" or "postgresql"
    location: str  # the folder, or the URL

    @property
    def sqlite_file(self) -> Path:
        return Path(self.location) / STORE_FILE

    def __str__(self) -> str:
        return f"sqlite:{self.location}" if self.kind == "sqlite" else database_named(self.location)


def parse_address(text: str) -> StoreAddress:
    if text.startswith("sqlite:"):
        folder = text[len("sqlite:"):]
        if not folder:
            raise MigrationRefused("sqlite: needs a data folder (sqlite:DIR)")
        return StoreAddress("sqlite", folder)
    if text.startswith(("postgresql://", "postgres://")):
        return StoreAddress("postgresql", text)
    raise MigrationRefused(f"{text!r} is not a store: give sqlite:DIR (a data folder) or a postgresql:// URL")


def same_store(a: StoreAddress, b: StoreAddress) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "sqlite":
        return Path(a.location).resolve() == Path(b.location).resolve()
    key = ("host", "port", "dbname")
    return [conninfo_to_dict(a.location).get(k, "5432" if k == "port" else "") for k in key] == [
        conninfo_to_dict(b.location).get(k, "5432" if k == "port" else "") for k in key
    ]


def _pg_connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise MigrationRefused(f"cannot connect to {database_named(url)}: {str(exc).strip()}") from None


def database_users(url: str) -> list[str]:
    """The other client sessions connected to this database (``pg_stat_activity``), described."""
    with _pg_connect(url) as conn:
        rows = conn.execute(
            "SELECT pid, application_name, coalesce(client_addr::text, 'local socket'), backend_start "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).fetchall()
    return [f"pid {pid} from {addr}{f' ({app})' if app else ''} since {start:%Y-%m-%d %H:%M:%S}" for pid, app, addr, start in rows]


def _has_pg_store(url: str) -> bool:
    with _pg_connect(url) as conn:
        row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    return bool(row and row[0])


@dataclass
class Counts:
    fields: int = 0
    resets: int = 0
    acks: int = 0
    bans: int = 0
    ttl_rules: int = 0
    stream_cursors: int = 0
    audit: int = 0


@dataclass
class MigrationReport:
    source: str
    target: str
    dry_run: bool = False
    merge: bool = False
    source_counts: Counts = field(default_factory=Counts)
    copied: Counts = field(default_factory=Counts)
    kept_out: int = 0  # merge: fields the target's HAM or fence kept
    resets_already_known: int = 0  # merge
    purge_counts_restarted: list[str] = field(default_factory=list)
    verification: str = "not run"
    copy_seconds: float = 0.0  # the graph and the control log
    verify_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def count_of(store: Store) -> Counts:
    resets = await store.load_resets()
    acks = 0
    for held in resets:
        acks += len(await store.acks(held.record.reset_id))
    _, audit = await store.audit_page(0, 1)
    return Counts(
        fields=(await store.stats()).fields, resets=len(resets), acks=acks, bans=len(await store.load_bans()),
        ttl_rules=len(await store.load_ttls()), stream_cursors=len(await store.load_stream_cursors()), audit=audit,
    )


async def rows_of(store: Store) -> AsyncIterator[tuple[str, str, str, float]]:
    """Every stored field (soul, key, value JSON, state) in soul/key order, a page at a time."""
    after: tuple[str, str | None] | None = None
    while True:
        query = ReadQuery(None, soul_lex=Lex(), max_fields=1 << 62, after=after, page_bytes=PAGE_BYTES, scan_limit=PAGE_SCAN)
        page = await store.read_page(query)
        for soul, rows in page.souls.items():
            for key, value_json, state in rows:
                yield soul, key, value_json, state
        if page.resume is None:
            return
        after = page.resume


async def _pages(store: Store) -> AsyncIterator[list[Field]]:
    batch: list[Field] = []
    after: tuple[str, str | None] | None = None
    while True:
        query = ReadQuery(None, soul_lex=Lex(), max_fields=1 << 62, after=after, page_bytes=PAGE_BYTES, scan_limit=PAGE_SCAN)
        page = await store.read_page(query)
        batch = [Field(soul, key, decode_value(value_json), state) for soul, rows in page.souls.items() for key, value_json, state in rows]
        if batch:
            yield batch
        if page.resume is None:
            return
        after = page.resume


async def audit_oldest_first(store: Store) -> AsyncIterator[AuditEntry]:
    """The audit log from its first entry on, a page at a time (``audit_page`` is newest first)."""
    _, total = await store.audit_page(0, 1)
    end = total
    while end > 0:
        start = max(0, end - AUDIT_PAGE)
        entries, _ = await store.audit_page(start, end - start)
        for entry in reversed(entries):
            yield entry
        end = start


def _comparable(held: StoredReset, ignore_purged: bool) -> StoredReset:
    return replace(held, purged=0) if ignore_purged else held


Progress = Callable[[int], None]


class Migration:
    """One migration between two opened stores (see the module's theory of operation)."""

    def __init__(self, source: Store, target: Store, report: MigrationReport):
        self.source = source
        self.target = target
        self.report = report
        self.known: set[str] = set()  # merge: resets the target had already, left as they were

    async def check_target(self) -> None:
        if self.report.merge:
            return
        present = (await self.target.stats()).fields
        if present:
            raise MigrationRefused(
                f"the target {self.report.target} already holds {present} fields: migrate into an empty store, "
                "or pass --merge to merge by HAM"
            )
        if await self.target.load_resets():
            raise MigrationRefused(f"the target {self.report.target} already holds resets: migrate into an empty store, or pass --merge")

    async def copy_graph(self, progress: Progress) -> None:
        async for batch in _pages(self.source):
            accepted = await self.target.merge(batch)
            self.report.copied.fields += len(accepted)
            if not self.report.merge and len(accepted) != len(batch):
                taken = {(f.soul, f.key) for f in accepted}
                first = next(f for f in batch if (f.soul, f.key) not in taken)
                raise MigrationMismatch(f"the target refused field {first.soul!r} {first.key!r}: it is not empty or it fences")
            self.report.kept_out += len(batch) - len(accepted)
            progress(len(batch))

    async def copy_resets(self) -> None:
        resets = sorted(await self.source.load_resets(), key=lambda h: h.record.issued_at)
        known = self.known = {h.record.reset_id for h in await self.target.load_resets()}
        for held in resets:
            reset_id = held.record.reset_id
            if reset_id in known:
                self.report.resets_already_known += 1
                continue
            await self.target.install_reset(held.record, held.souls)
            if held.purge_done:
                await self.target.finish_purge(reset_id, held.purged)
            elif held.purged:
                self.report.purge_counts_restarted.append(reset_id)
            if held.published:
                await self.target.mark_published(reset_id)
            undone = [h for h in resets if h.superseded_by == reset_id and h.record.reset_id not in known]
            if undone:
                since = min(h.record.issued_at for h in undone) - SUPERSEDE_MARGIN_MS
                await self.target.supersede_resets(since, by=reset_id)
            self.report.copied.resets += 1
            for ack in await self.source.acks(reset_id):
                await self.target.record_ack(ack)
                self.report.copied.acks += 1

    async def copy_rest(self) -> None:
        for ban in await self.source.load_bans():
            await self.target.save_ban(ban)
            self.report.copied.bans += 1
        for prefix, ttl_ms in (await self.source.load_ttls()).items():
            await self.target.save_ttl(prefix, ttl_ms)
            self.report.copied.ttl_rules += 1
        for relay_pub, cursor in (await self.source.load_stream_cursors()).items():
            await self.target.save_stream_cursor(relay_pub, cursor)
            self.report.copied.stream_cursors += 1
        async for entry in audit_oldest_first(self.source):
            await self.target.append_audit(replace(entry, id=0))
            self.report.copied.audit += 1

    async def run(self, progress: Progress, verify_progress: Progress) -> MigrationReport:
        await self.check_target()
        audit_before = (await self.target.audit_page(0, 1))[1]
        started = time.monotonic()
        await self.copy_graph(progress)
        await self.copy_resets()
        await self.copy_rest()
        copied = time.monotonic()
        self.report.copy_seconds = round(copied - started, 3)
        await self.verify(audit_before, verify_progress)
        self.report.verify_seconds = round(time.monotonic() - copied, 3)
        return self.report

    # -- verification ------------------------------------------------------------------------

    async def verify(self, audit_before: int, progress: Progress) -> None:
        if self.report.merge:
            await self._verify_merged_fields(progress)
        else:
            await self._verify_counts()
            await self._verify_fields(progress)
        await self._verify_control(audit_before)
        self.report.verification = (
            "passed: every source field in the target at a state at least as new; control log compared"
            if self.report.merge else
            "passed: counts of every table equal; full field-by-field comparison (value, state) equal; "
            "resets, acks, bans, TTL rules, cursors, audit compared entry by entry"
        )

    async def _verify_counts(self) -> None:
        source, target = await count_of(self.source), await count_of(self.target)
        if source != target:
            raise MigrationMismatch(f"counts differ after the copy: source {asdict(source)}, target {asdict(target)}")

    async def _verify_fields(self, progress: Progress) -> None:
        theirs = rows_of(self.target)
        async for row in rows_of(self.source):
            other = await anext(theirs, None)
            if other != row:
                raise MigrationMismatch(f"field differs: source {row!r}, target {other!r}")
            progress(1)
        extra = await anext(theirs, None)
        if extra is not None:
            raise MigrationMismatch(f"the target holds a field the source does not: {extra!r}")

    async def _verify_merged_fields(self, progress: Progress) -> None:
        theirs = rows_of(self.target)
        other = await anext(theirs, None)
        missing = 0
        async for soul, key, _, state in rows_of(self.source):
            while other is not None and (other[0], other[1]) < (soul, key):
                other = await anext(theirs, None)
            if other is None or (other[0], other[1]) != (soul, key):
                missing += 1  # the target's fence kept it out
            elif other[3] < state:
                raise MigrationMismatch(f"field {soul!r} {key!r} is older in the target than in the source")
            progress(1)
        if missing > self.report.kept_out:
            raise MigrationMismatch(f"{missing} source fields are missing from the target, {self.report.kept_out} were kept out")

    async def _verify_control(self, audit_before: int) -> None:
        restarted = set(self.report.purge_counts_restarted)
        theirs = {h.record.reset_id: h for h in await self.target.load_resets()}
        for held in await self.source.load_resets():
            reset_id = held.record.reset_id
            other = theirs.get(reset_id)
            if other is None:
                raise MigrationMismatch(f"reset {reset_id} is missing from the target")
            if reset_id in self.known:
                continue  # a reset the target knew is left as it was
            if _comparable(other, reset_id in restarted) != _comparable(held, reset_id in restarted):
                raise MigrationMismatch(f"reset {reset_id} differs: source {held}, target {other}")
            their_acks = {(a.peer_id, a.address, a.pid, a.at) for a in await self.target.acks(reset_id)}
            if not {(a.peer_id, a.address, a.pid, a.at) for a in await self.source.acks(reset_id)} <= their_acks:
                raise MigrationMismatch(f"acknowledgements of reset {reset_id} differ")
        their_bans = {(b.address, b.until, b.reason) for b in await self.target.load_bans()}
        if not {(b.address, b.until, b.reason) for b in await self.source.load_bans()} <= their_bans:
            raise MigrationMismatch("bans differ")
        their_ttls = await self.target.load_ttls()
        if any(their_ttls.get(prefix) != ttl for prefix, ttl in (await self.source.load_ttls()).items()):
            raise MigrationMismatch("TTL rules differ")
        their_cursors = await self.target.load_stream_cursors()
        if any(their_cursors.get(pub, -1) < cursor for pub, cursor in (await self.source.load_stream_cursors()).items()):
            raise MigrationMismatch("stream cursors differ")
        await self._verify_audit(audit_before)

    async def _verify_audit(self, audit_before: int) -> None:
        _, total = await self.target.audit_page(0, 1)
        copied = total - audit_before
        if copied != self.report.copied.audit:
            raise MigrationMismatch(f"the target's audit log grew by {copied} entries, {self.report.copied.audit} were copied")
        # the copied entries are the newest ``copied`` of the target, oldest first from its offset 0 end
        theirs = audit_oldest_first_window(self.target, copied)
        async for entry in audit_oldest_first(self.source):
            other = await anext(theirs, None)
            if other is None or replace(other, id=0) != replace(entry, id=0):
                raise MigrationMismatch(f"audit entry differs: source {entry}, target {other}")


async def audit_oldest_first_window(store: Store, newest: int) -> AsyncIterator[AuditEntry]:
    """The newest ``newest`` audit entries, oldest first, a page at a time."""
    end = newest
    while end > 0:
        start = max(0, end - AUDIT_PAGE)
        entries, _ = await store.audit_page(start, end - start)
        for entry in reversed(entries):
            yield entry
        end = start


# -- opening both sides -------------------------------------------------------------------------


def protected_of(url: str) -> Protected:
    """The system prefixes the database's last relay declared (``PostgresStore.open`` replaces the
    table with its constructor's, so a store opened here passes them on unchanged)."""
    with _pg_connect(url) as conn:
        if conn.execute("SELECT to_regclass('protected') IS NULL").fetchone() == (True,):
            return Protected()
        rows = conn.execute("SELECT prefix FROM protected ORDER BY prefix").fetchall()
    return Protected(tuple(bytes(prefix).decode() for (prefix,) in rows))


def _open_store(address: StoreAddress) -> Store:
    if address.kind == "sqlite":
        return SQLiteStore(address.sqlite_file)
    return PostgresStore(address.location, protected_of(address.location))


async def _refuse_live_database(address: StoreAddress) -> None:
    users = database_users(address.location)
    if users:
        raise DatabaseInUse(
            f"{address} is in use ({len(users)} other session(s): {'; '.join(users[:5])}): "
            "stop the relays using it (and any other client) first"
        )


async def _check_source(address: StoreAddress) -> None:
    if address.kind == "sqlite":
        if not address.sqlite_file.is_file():
            raise MigrationRefused(f"no relay store in {address.location} (no {STORE_FILE})")
    elif not _has_pg_store(address.location):
        raise MigrationRefused(f"{address} holds no gunrelay store (no schema_version table)")


@contextlib.asynccontextmanager
async def opened(address: StoreAddress, stack: contextlib.AsyncExitStack) -> AsyncIterator[Store]:
    """The store at ``address``, opened, after its liveness check (a SQLite folder's lock is
    taken and held until the stack closes)."""
    if address.kind == "sqlite":
        lock = DataLock(Path(address.location))
        lock.acquire()  # DataFolderBusy: a live relay (or another command) holds the folder
        stack.callback(lock.release)
    else:
        await _refuse_live_database(address)
    store = _open_store(address)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def migrate(
    source_text: str, target_text: str, *, dry_run: bool = False, merge: bool = False,
    progress_factory: Callable[[str, int], contextlib.AbstractContextManager[Progress]] | None = None,
) -> MigrationReport:
    """Migrate (or, with ``dry_run``, check and count) from one store to another; the report."""
    source, target = parse_address(source_text), parse_address(target_text)
    if same_store(source, target):
        raise MigrationRefused(f"the source and the target are the same store ({source})")
    await _check_source(source)
    report = MigrationReport(source=str(source), target=str(target), dry_run=dry_run, merge=merge)
    bars = progress_factory or (lambda desc, total: contextlib.nullcontext(lambda n: None))
    async with contextlib.AsyncExitStack() as stack:
        src = await stack.enter_async_context(opened(source, stack))
        report.source_counts = await count_of(src)
        if dry_run:
            target_exists = target.sqlite_file.is_file() if target.kind == "sqlite" else _has_pg_store(target.location)
            if target_exists:
                dst = await stack.enter_async_context(opened(target, stack))
                await Migration(src, dst, report).check_target()
            report.verification = "dry run: nothing written, nothing verified"
            return report
        dst = await stack.enter_async_context(opened(target, stack))
        migration = Migration(src, dst, report)
        with bars("copied", report.source_counts.fields) as copied, bars("verified", report.source_counts.fields) as verified:
            try:
                return await migration.run(copied, verified)
            except MigrationRefused:
                raise  # before anything was written
            except GunrelayError as exc:
                raise MigrationFailed(f"{exc} -- the target {target} is partly written: empty it before migrating again") from exc
    raise AssertionError("unreachable")  # pragma: no cover
