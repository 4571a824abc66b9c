"""The graph contract: what every holder of a GUN graph meets, the relay's store and a peer's copy alike.

Theory of operation. A graph store holds fields (soul, key, value as JSON text, state) and
nothing else: no record of resets, acks, bans or operators (that is ``control.ControlLog``, the
relay's alone). Two operations carry the relay and the Python peer:

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
Around them: deleting what a fence rule covers (``purge_batch``/``purge``, with the dry run
``scope_report``), the closure of a prefix over relations (``reachable_souls``), sizes
(``stats``), and whole-graph copies (``snapshot_to``/``restore_fields_from``). A rule's extra
souls (the closure fenced with a prefix) travel in ``FenceRule.souls``: a graph store knows no
installed resets.

The change stream. The mesh of relays and the fleet replay "everything after a cursor" from a
durable, ordered stream of what ``merge`` accepted, so it lives here, as a property of the graph's
writes (``changes_since(cursor, limit)``). Its rules, the same for every backend:

- Every field a merge accepts takes the next sequence number, in the same durable step as the
  field itself (SQLite: a ``seq`` column of the field's own row, written by the same upsert in the
  same group commit; memory: an insertion-ordered index; PostgreSQL: see ``postgres.py``).
- The stream holds one entry per stored field: its latest change (keep-latest-per-field
  compaction, done by the write itself). A field accepted again moves to the end under a new
  number; its older entry is gone. So the stream never outgrows the graph, every cursor stays
  valid (no horizon, no "too old, resync" answer: cursor 0 is a full resync), and a reader that
  fell behind gets each field once, at its current value, in HAM order per field (a field's
  numbers only grow with the states that beat the stored one).
- An entry *is* the stored field: ``changes_since`` hands out the value stored now, never a value
  a later write replaced, and a purge (a reset's fence, a TTL rule) deletes the entry with the
  field. A fenced field is therefore never replayed from the stream; what a reset means to a peer
  travels as the reset's signed record, which is itself a change in the stream (and a reader should
  still ask its fence before sending, for a reset that lands between its read and its send).
- Numbers are never reused, even after a purge or a restore deleted the highest ones (the head is
  kept durably where rows disappear), so a reader's cursor never hides a later change. A restore
  gives every restored field a new number: to a reader, the restored graph is new.
- ``changes_since(cursor, limit)`` returns up to ``limit`` entries with numbers above ``cursor``
  in increasing order, and the cursor to pass next (the last number returned; the same cursor when
  nothing is new). Deletions are not in the stream: a reader learns of them from reset records.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from ..core import ham
from ..core.errors import LocalError
from ..core.fence import FenceRule, Protected, in_prefix
from ..core.graph import Field, State, Value, well_formed
from ..core.jsjson import stringify
from ..core.lex import cost
from ..core.reads import ReadPage, ReadQuery, Row
from ..core.wire import loads, relation_targets

@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change stream: a stored field (value as JSON text) under its number."""

    seq: int
    soul: str
    key: str
    value: str
    state: State


@dataclass(frozen=True, slots=True)
class ChangePage:
    """Entries after a cursor, in order, and the cursor to pass next."""

    changes: list[Change]
    cursor: int


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


class StorageFailure(LocalError):
    """The store could not make a write durable (disk full, read-only, I/O error); its text says
    which, in words a peer or an operator can act on."""


@dataclass
class StorageHealth:
    """Whether writes are reaching the disk: set by the store after each commit it attempts.
    A failure starts a degraded spell that lasts until a commit succeeds again."""

    failing_since: float | None = None  # seconds since the epoch
    error: str | None = None
    failed_commits: int = 0  # since start
    # set by a store whose writes can hang rather than fail (a database server that stopped
    # answering): why writes are stuck now, or None
    stuck: Callable[[], str | None] = lambda: None

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
        return {"ok": self.ok, "error": self.error, "failing_since": self.failing_since, "failed_commits": self.failed_commits,
                "stuck": self.stuck()}


class GraphStore(abc.ABC):
    """A GUN graph, durable or not: fields merged by HAM, read in pages, purged by fence rules."""

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

    @abc.abstractmethod
    def changes_since(self, cursor: int, limit: int) -> asyncio.Future[ChangePage]:
        """Up to ``limit`` stream entries numbered above ``cursor``, in order (module docstring)."""

    async def read(self, query: ReadQuery) -> dict[str, list[Row]]:
        """Everything the query matches, in one page."""
        page = await self.read_page(replace(query, page_bytes=None, scan_limit=None))
        return page.souls

    async def probe(self) -> None:
        """Try one small durable write (while degraded, to notice when the fault has ended)."""

    @abc.abstractmethod
    async def stats(self) -> StoreStats: ...

    # -- deleting what a fence rule covers ------------------------------------------------------
    # A rule covers the whole graph but the protected souls (scope ``*``), or a prefix and the
    # souls in ``rule.souls``; of those, the fields at or below the rule's watermark (now, for a
    # TTL rule). A store that also keeps a control log may take a reset's closure from what was
    # installed with it instead (the same souls) and counts the purge's progress there.

    @abc.abstractmethod
    async def purge_batch(self, rule: FenceRule, protected: Protected, limit: int) -> int:
        """Delete up to ``limit`` fields the rule fences; the count deleted (0: nothing left)."""

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
    async def scope_report(self, rule: FenceRule, protected: Protected) -> StoreStats:
        """What a purge under ``rule`` would remove (the dry run)."""

    @abc.abstractmethod
    async def reachable_souls(self, prefix: str, protected: Protected, limit: int) -> frozenset[str]:
        """Souls outside ``prefix`` reached by relations from souls inside it (transitively)."""

    # -- whole-graph copies (a snapshot's data; its name and date are kept beside it) ---------------

    @abc.abstractmethod
    async def snapshot_to(self, path: Path) -> StoreStats:
        """Write a consistent copy of the store to ``path`` (complete when this returns)."""

    @abc.abstractmethod
    async def restore_fields_from(self, path: Path) -> StoreStats:
        """Replace every field with the snapshot's, in one durable step."""
