"""The relay's control log: what the relay decided and was told, kept beside its graph.

Theory of operation. Everything here is the relay's own bookkeeping, never part of the GUN graph
and never synced to a peer:

- resets (``install_reset``/``load_resets``): a reset is installed -- record, and for a prefix
  the closure of souls fenced with it, one durable step -- before anything is purged. The purge
  then deletes in batches (``GraphStore.purge_batch``); in a store that is both, each batch also
  adds to the reset's ``purged`` count in the same durable step, so a purge resumed after a crash
  reports every field it removed, and ``finish_purge`` marks it done. ``load_resets`` tells which
  purges are unfinished. ``mark_published`` remembers that the signed record went out;
  ``supersede_resets`` marks the resets a snapshot restore undid.
- acknowledgements of resets by peers, bans of addresses, TTL rules (prefix -> ms), the console's
  sessions (by the digest of their key: every process of a fleet knows a login made through any),
  and the operator's audit log (append-only, never capped).

Snapshots: the store copies the graph (``GraphStore.snapshot_to``); a snapshot's name, date and
size are kept in a file beside it by the relay (``server/snapshots.py``; on PostgreSQL the
snapshot and its metadata are in the database instead), and the control side of a restore is
``supersede_resets``.

A ``ControlLog`` has no lifecycle of its own: the relay's ``Store`` is a graph store and a control
log in one (``base.Store``), opened and closed once, whose control writes are ordered with its
merges.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from ..core.bans import Ban
from ..core.fence import FenceRule
from ..core.reset import ResetRecord, fence_rule


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


@dataclass(frozen=True)
class StoredSession:
    """A console session as the store keeps it: shared by every process of a fleet, so a login
    through one process works through all. The session key (the cookie) is not kept, only its
    SHA-256 (``digest``): what the store holds cannot be used as a cookie."""

    digest: str
    user: str
    csrf: str
    expires: float  # seconds since the epoch
    address: str


class ControlLog(abc.ABC):
    """The relay's resets, acks, bans, TTL rules and audit entries."""

    # -- resets, their closures, purge progress and publication ------------------------------------

    @abc.abstractmethod
    async def install_reset(self, record: ResetRecord, souls: frozenset[str]) -> None: ...

    @abc.abstractmethod
    async def load_resets(self) -> list[StoredReset]: ...

    @abc.abstractmethod
    async def finish_purge(self, reset_id: str, purged: int) -> None: ...

    @abc.abstractmethod
    async def mark_published(self, reset_id: str) -> None: ...

    @abc.abstractmethod
    async def supersede_resets(self, issued_after: float, by: str) -> list[str]:
        """Mark resets issued after a restored snapshot as superseded; their ids."""

    # -- peers' acknowledgements ----------------------------------------------------------------

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

    # -- TTL rules: prefix -> time-to-live in ms -------------------------------------------------

    @abc.abstractmethod
    async def save_ttl(self, prefix: str, ttl_ms: float) -> None: ...

    @abc.abstractmethod
    async def delete_ttl(self, prefix: str) -> None: ...

    @abc.abstractmethod
    async def load_ttls(self) -> dict[str, float]: ...

    # -- the mesh: how far this relay has read each linked relay's change stream -----------------

    @abc.abstractmethod
    async def save_stream_cursor(self, relay_pub: str, cursor: int) -> None:
        """Remember, durably, that everything of relay ``relay_pub``'s change stream up to
        ``cursor`` is stored here (a cursor never goes back: a smaller one is ignored)."""

    @abc.abstractmethod
    async def load_stream_cursors(self) -> dict[str, int]: ...

    # -- console sessions ------------------------------------------------------------------

    @abc.abstractmethod
    async def save_session(self, session: StoredSession, keep: int, now: float) -> None:
        """Keep ``session``; drop the ones expired by ``now``, and past ``keep`` sessions the oldest."""

    @abc.abstractmethod
    async def load_session(self, digest: str, now: float) -> StoredSession | None:
        """The live session with that digest, or None (unknown, logged out or expired)."""

    @abc.abstractmethod
    async def delete_session(self, digest: str) -> None: ...

    # -- the operator's audit log: append-only, never capped --------------------------------------

    @abc.abstractmethod
    async def append_audit(self, entry: AuditEntry) -> int:
        """Store the entry durably; its id (ids grow)."""

    @abc.abstractmethod
    async def audit_page(self, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        """Entries newest first, ``limit`` of them after skipping ``offset``; and how many there are."""
