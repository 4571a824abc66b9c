"""The storage contract every backend meets (tests/storage runs one suite against each).

A store holds fields (soul, key, value as JSON text, state). Two operations carry the relay:

- ``merge(fields)``: apply HAM (``core.ham.compare``) against the *stored* state of each field
  and write the winners, durably. The returned awaitable resolves only once the winners are
  durable, with the list of fields that changed the store (the ones to push to subscribers).
  Fields of one call are applied in order, so a later field in the same call sees an earlier one.
- ``read_page(query)``: the stored fields matching a get, grouped by soul, in key order (reversed
  when the lex asks), cut by the ``%`` budget, one page at a time: a page stops after about
  ``page_bytes`` of fields or ``scan_limit`` rows looked at, and says where the next one resumes
  (``ReadPage.resume``, passed back as ``ReadQuery.after``). ``read(query)`` reads it all at once
  (the relay's own small lookups).

Both return awaitables without blocking the event loop; a backend may batch calls together.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass, replace

import orjson

from ..core import ham
from ..core.bans import Ban
from ..core.fence import FenceRule, Protected, in_prefix
from ..core.graph import Field, State, Value, well_formed
from ..core.jsjson import stringify
from ..core.lex import Lex, cost
from ..core.reads import ReadPage, ReadQuery, Row
from ..core.reset import ResetRecord, fence_rule
from ..core.wire import loads

@dataclass(frozen=True, slots=True)
class StoreStats:
    souls: int
    fields: int
    bytes: int


def encode_value(value: Value) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # lone surrogates: escape them as JSON.stringify does
        return stringify(value)


def decode_value(value_json: str) -> Value:
    return loads(value_json)  # type: ignore[no-any-return]


def value_cost(value_json: str) -> int:
    if value_json[:1] == '"':
        return cost(decode_value(value_json))
    return cost(None)


def ham_tie_wins(incoming_json: str, current_json: str) -> bool:
    """At equal states: does the incoming value (JSON text) beat the current one by HAM's tie rule?"""
    return ham.compare(0, decode_value(incoming_json), 0, decode_value(current_json)) is ham.Verdict.INCOMING


def ham_wins(field: Field, current: tuple[str, State] | None) -> bool:
    """True when ``field`` should replace ``current`` (value JSON, state) by HAM."""
    if current is None:
        return True
    value_json, state = current
    if field.state != state:
        return field.state > state
    return ham.compare(field.state, field.value, state, decode_value(value_json)) is ham.Verdict.INCOMING


def as_state(number: float) -> State:
    """States come back from storage as floats; integral ones go on the wire as integers."""
    if number.is_integer() and -(2**53) <= number <= 2**53:
        return int(number)
    return number


@dataclass(frozen=True, slots=True)
class StoredReset:
    record: ResetRecord
    souls: frozenset[str]
    purge_done: bool
    purged: int
    superseded_by: str | None = None  # a restore of an older snapshot undid this reset
    published: bool = False

    @property
    def rule(self) -> FenceRule:
        return fence_rule(self.record, self.souls, self.purge_done)


@dataclass(frozen=True, slots=True)
class ResetAck:
    reset_id: str
    peer_id: str
    address: str
    pid: str | None
    at: float  # ms since the epoch


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action: who, from where, when, what, and how it ended."""

    at: float  # ms since the epoch
    who: str
    address: str
    action: str
    detail: str
    outcome: str  # ok, refused, error
    status: int  # the HTTP status answered
    id: int = 0  # given by the store


def relation_targets(value_json: str) -> list[str]:
    """Souls a stored value points to: a relation, or a relation inside a SEA-signed string."""
    if value_json[:5] == '{"#":':
        target = decode_value(value_json)
        return [target["#"]] if type(target) is dict and type(target.get("#")) is str else []
    if value_json[:1] == '"' and '\\"#\\"' in value_json:
        try:
            inner = loads(decode_value(value_json))  # type: ignore[arg-type]
        except Exception:
            return []
        if type(inner) is dict and type(inner.get(":")) is dict and type(inner[":"].get("#")) is str:
            return [inner[":"]["#"]]
    return []


def reachable_from(
    frontier: list[str], values_of: Callable[[str], list[str]], prefix: str, protected: Protected, limit: int
) -> frozenset[str]:
    """Breadth-first over relations from ``frontier``; the souls found outside ``prefix``. A link
    to a soul with a lone surrogate (refused now, perhaps stored before) leads nowhere: no such
    soul can be stored."""
    seen = set(frontier)
    found: set[str] = set()
    while frontier and len(found) < limit:
        next_frontier = []
        for soul in frontier:
            for value_json in values_of(soul):
                for target in relation_targets(value_json):
                    if target not in seen and not protected.contains(target) and well_formed(target):
                        seen.add(target)
                        next_frontier.append(target)
                        if not in_prefix(target, prefix):
                            found.add(target)
        frontier = next_frontier
    return frozenset(found)


class StorageFailure(Exception):
    """The store could not make a write durable (disk full, read-only, I/O error); its text says
    which, in words a peer or an operator can act on."""


@dataclass
class StorageHealth:
    """Whether writes are reaching the disk: set by the store after each commit it attempts.
    A failure starts a degraded spell that lasts until a commit succeeds again."""

    failing_since: float | None = None  # seconds since the epoch
    error: str | None = None
    failed_commits: int = 0  # since start

    @property
    def ok(self) -> bool:
        return self.failing_since is None

    def failed(self, error: str, now: float) -> None:
        self.failed_commits += 1
        self.error = error
        if self.failing_since is None:
            self.failing_since = now

    def committed(self) -> None:
        self.failing_since = None
        self.error = None

    def as_json(self) -> dict[str, object]:
        return {"ok": self.ok, "error": self.error, "failing_since": self.failing_since, "failed_commits": self.failed_commits}


class Store(abc.ABC):
    health: StorageHealth  # set by each backend's constructor

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes, then release resources."""

    @abc.abstractmethod
    def merge(self, fields: list[Field]) -> asyncio.Future[list[Field]]: ...

    @abc.abstractmethod
    def read_page(self, query: ReadQuery) -> asyncio.Future[ReadPage]: ...

    async def read(self, query: ReadQuery) -> dict[str, list[Row]]:
        """Everything the query matches, in one page."""
        page = await self.read_page(replace(query, page_bytes=None, scan_limit=None))
        return page.souls

    async def probe(self) -> None:
        """Try one small durable write (while degraded, to notice when the fault has ended)."""

    @abc.abstractmethod
    async def stats(self) -> StoreStats: ...

    # -- the reset control plane ------------------------------------------------------------
    # A reset is installed (record + fence + closure, one durable step) before anything is
    # purged; the purge then deletes in batches and can resume after a crash (``load_resets``
    # tells which purges are unfinished).

    @abc.abstractmethod
    async def install_reset(self, record: ResetRecord, souls: frozenset[str]) -> None: ...

    @abc.abstractmethod
    async def load_resets(self) -> list[StoredReset]: ...

    @abc.abstractmethod
    async def purge_batch(self, rule: FenceRule, protected: Protected, limit: int) -> int:
        """Delete up to ``limit`` fields the rule fences; the count deleted (0: nothing left).
        A prefix rule's extra souls are the ones installed with its reset (``install_reset``).
        The reset's ``purged`` count grows with each batch, durably with it, so a purge resumed
        after a crash reports every field it removed."""

    async def purge(
        self, rule: FenceRule, protected: Protected, batch: int = 20_000, progress: Callable[[int], None] | None = None
    ) -> int:
        """Delete everything ``rule`` fences, in batches (so merges interleave); the count deleted.
        ``progress`` hears the running total after each batch."""
        total = 0
        while (deleted := await self.purge_batch(rule, protected, batch)) > 0:
            total += deleted
            if progress is not None:
                progress(total)
        return total

    @abc.abstractmethod
    async def finish_purge(self, reset_id: str, purged: int) -> None: ...

    @abc.abstractmethod
    async def mark_published(self, reset_id: str) -> None: ...

    @abc.abstractmethod
    async def scope_report(self, rule: FenceRule, protected: Protected) -> StoreStats:
        """What a purge under ``rule`` would remove (the dry run)."""

    @abc.abstractmethod
    async def reachable_souls(self, prefix: str, protected: Protected, limit: int) -> frozenset[str]:
        """Souls outside ``prefix`` reached by relations from souls inside it (transitively)."""

    @abc.abstractmethod
    async def record_ack(self, ack: ResetAck) -> None: ...

    @abc.abstractmethod
    async def acks(self, reset_id: str) -> list[ResetAck]: ...

    # -- bans ----------------------------------------------------------------------------------

    @abc.abstractmethod
    async def save_ban(self, ban: Ban) -> None: ...

    @abc.abstractmethod
    async def delete_ban(self, address: str) -> None: ...

    @abc.abstractmethod
    async def load_bans(self) -> list[Ban]: ...

    # -- the operator's audit log: append-only, never capped --------------------------------------

    @abc.abstractmethod
    async def append_audit(self, entry: AuditEntry) -> int:
        """Store the entry durably; its id (ids grow)."""

    @abc.abstractmethod
    async def audit_page(self, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        """Entries newest first, ``limit`` of them after skipping ``offset``; and how many there are."""

    # -- snapshots: consistent copies of the graph while serving --------------------------------

    @abc.abstractmethod
    async def snapshot_to(self, path: Path) -> StoreStats:
        """Write a consistent copy of the store to ``path`` (complete when this returns)."""

    @abc.abstractmethod
    async def restore_fields_from(self, path: Path) -> StoreStats:
        """Replace every field with the snapshot's, in one durable step."""

    @abc.abstractmethod
    async def supersede_resets(self, issued_after: float, by: str) -> list[str]:
        """Mark resets issued after a restored snapshot as superseded; their ids."""

    # -- TTL rules: prefix -> time-to-live in ms -------------------------------------------------

    @abc.abstractmethod
    async def save_ttl(self, prefix: str, ttl_ms: float) -> None: ...

    @abc.abstractmethod
    async def delete_ttl(self, prefix: str) -> None: ...

    @abc.abstractmethod
    async def load_ttls(self) -> dict[str, float]: ...
