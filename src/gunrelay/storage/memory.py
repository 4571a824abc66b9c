"""In-memory stores: the reference implementations of the contract, for tests, ephemeral relays and peers.

Theory of operation. ``MemoryGraph`` keeps the graph as ``{soul: {key: (value JSON, state)}}``
and answers every call at once (its futures are born resolved); it is what a Python peer keeps
when its copy need not outlive it. Its change stream is ``_stream``, ``{(soul, key): number}`` in
insertion order: an accepted field is popped and put back at the end under the next number, so
the dict's order is the stream's and it holds each field's latest change only; a reader near the
end walks back to its cursor, one far behind walks forward from the start until its page is full. ``MemoryStore`` is the relay's: the same graph (inherited, so
merge and reads are the very same code) plus the control log in plain dicts and a list. The two
meet in two hooks of the purge: a reset's closure is the one installed with it
(``_closure_of``), and each batch adds to the reset's ``purged`` count (``_purge_counted``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

from ..core.bans import Ban
from ..core.fence import FenceRule, Protected, in_prefix
from ..core.graph import Field, State
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
    StorageHealth,
    StoreStats,
    encode_value,
    ham_wins,
    reachable_from,
    value_cost,
)
from .query import select_rows


class MemoryGraph(GraphStore):
    """A graph in memory, nothing else."""

    def __init__(self) -> None:
        self.health = StorageHealth()  # memory never fails a write
        self._souls: dict[str, dict[str, tuple[str, State]]] = {}
        self._stream: dict[tuple[str, str], int] = {}  # in number order: each field's latest change
        self._head = 0  # the last number given; never reused

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _done(self, result: object) -> asyncio.Future:  # type: ignore[type-arg]
        future = asyncio.get_running_loop().create_future()
        future.set_result(result)
        return future

    def merge(self, fields: list[Field]) -> asyncio.Future[list[Field]]:
        accepted = []
        stream = self._stream
        for field in fields:
            node = self._souls.setdefault(field.soul, {})
            if ham_wins(field, node.get(field.key)):
                node[field.key] = (encode_value(field.value), field.state)
                accepted.append(field)
                place = (field.soul, field.key)
                stream.pop(place, None)
                self._head += 1
                stream[place] = self._head
        return self._done(accepted)

    def changes_since(self, cursor: int, limit: int) -> asyncio.Future[ChangePage]:
        limit = max(limit, 0)
        newer: list[tuple[tuple[str, str], int]] = []
        if self._head - cursor <= len(self._stream) // 2:  # near the end: walk back to the cursor
            for place, seq in reversed(self._stream.items()):
                if seq <= cursor:
                    break
                newer.append((place, seq))
            newer.reverse()
        else:  # far behind: walk forward from the start, stop when the page is full
            for place, seq in self._stream.items():
                if len(newer) >= limit:
                    break
                if seq > cursor:
                    newer.append((place, seq))
        changes = []
        for (soul, key), seq in newer[:limit]:
            value, state = self._souls[soul][key]
            changes.append(Change(seq, soul, key, value, state))
        return self._done(ChangePage(changes, changes[-1].seq if changes else cursor))

    def read_page(self, query: ReadQuery) -> asyncio.Future[ReadPage]:
        after = query.after
        if query.soul is not None:
            souls = [query.soul] if query.soul in self._souls and not (after is not None and after[1] is None) else []
        else:
            assert query.soul_lex is not None
            descending = query.soul_lex.reverse
            souls = sorted((s for s in self._souls if query.soul_lex.matches(s)), reverse=descending)
            if after is not None:
                past = (lambda s: s < after[0]) if descending else (lambda s: s > after[0])
                souls = [s for s in souls if past(s) or (s == after[0] and after[1] is not None)]
        key_descending = query.key is not None and query.key.reverse

        def rows_of(soul: str) -> list[Row]:
            node = self._souls[soul]
            keys = sorted(node, reverse=key_descending)
            if after is not None and soul == after[0] and after[1] is not None:
                resume = after[1]
                keys = [k for k in keys if (k < resume if key_descending else k > resume)]
            return [(key, node[key][0], node[key][1]) for key in keys]

        return self._done(select_rows(((soul, rows_of(soul)) for soul in souls), query))

    async def stats(self) -> StoreStats:
        fields = sum(len(node) for node in self._souls.values())
        size = sum(len(k) + len(v) for node in self._souls.values() for k, (v, _) in node.items())
        return StoreStats(souls=len(self._souls), fields=fields, bytes=size)

    # -- purges --------------------------------------------------------------------------------

    def _closure_of(self, rule: FenceRule) -> frozenset[str]:
        """The souls beyond its prefix that ``rule`` covers."""
        return rule.souls

    def _purge_counted(self, rule_id: str, deleted: int) -> None:
        """Called after each purge batch (a graph keeps no count)."""

    def _fenced(self, rule: FenceRule, protected: Protected) -> list[tuple[str, str]]:
        now = time.time() * 1000
        closure = self._closure_of(rule)
        if closure is not rule.souls:
            rule = replace(rule, souls=closure)
        return [
            (soul, key)
            for soul, node in self._souls.items()
            if rule.covers(soul, protected)
            for key, (_, state) in node.items()
            if state <= rule.watermark_at(now)
        ]

    async def purge_batch(self, rule: FenceRule, protected: Protected, limit: int) -> int:
        doomed = self._fenced(rule, protected)[:limit]
        for soul, key in doomed:
            node = self._souls[soul]
            del node[key]
            del self._stream[(soul, key)]
            if not node:
                del self._souls[soul]
        self._purge_counted(rule.rule_id, len(doomed))
        return len(doomed)

    async def scope_report(self, rule: FenceRule, protected: Protected) -> StoreStats:
        doomed = self._fenced(rule, protected)
        size = sum(len(s) + len(k) + len(self._souls[s][k][0]) for s, k in doomed)
        return StoreStats(souls=len({s for s, _ in doomed}), fields=len(doomed), bytes=size)

    async def reachable_souls(self, prefix: str, protected: Protected, limit: int) -> frozenset[str]:
        frontier = [soul for soul in self._souls if in_prefix(soul, prefix)]
        return reachable_from(frontier, lambda soul: [v for v, _ in self._souls.get(soul, {}).values()], prefix, protected, limit)

    # -- whole-graph copies ----------------------------------------------------------------------

    async def snapshot_to(self, path: Path) -> StoreStats:
        rows = [[soul, key, value, state] for soul, node in self._souls.items() for key, (value, state) in node.items()]
        path.write_text(json.dumps(rows))
        return await self.stats()

    async def restore_fields_from(self, path: Path) -> StoreStats:
        rows = json.loads(path.read_text())
        self._souls = {}
        self._stream = {}
        for soul, key, value, state in rows:
            self._souls.setdefault(soul, {})[key] = (value, state)
            self._head += 1
            self._stream[(soul, key)] = self._head
        return await self.stats()


class MemoryStore(MemoryGraph, Store):
    """The relay's store in memory: the graph and the control log (lost on exit)."""

    def __init__(self) -> None:
        super().__init__()
        self._resets: dict[str, StoredReset] = {}
        self._acks: dict[tuple[str, str], ResetAck] = {}
        self._bans: dict[str, Ban] = {}
        self._sessions: dict[str, StoredSession] = {}
        self._ttls: dict[str, float] = {}
        self._stream_cursors: dict[str, int] = {}
        self._audit: list[AuditEntry] = []

    # -- where the graph's purge meets the control log ---------------------------------------------

    def _closure_of(self, rule: FenceRule) -> frozenset[str]:
        installed = self._resets.get(rule.rule_id)  # as SQLite: an installed reset's closure is what was installed
        return installed.souls if installed is not None else rule.souls

    def _purge_counted(self, rule_id: str, deleted: int) -> None:
        held = self._resets.get(rule_id)
        if held is not None:
            self._resets[rule_id] = replace(held, purged=held.purged + deleted)

    # -- resets ----------------------------------------------------------------------------------

    async def install_reset(self, record: ResetRecord, souls: frozenset[str]) -> None:
        self._resets[record.reset_id] = StoredReset(record, souls, purge_done=False, purged=0)

    async def load_resets(self) -> list[StoredReset]:
        return list(self._resets.values())

    async def finish_purge(self, reset_id: str, purged: int) -> None:
        self._resets[reset_id] = replace(self._resets[reset_id], purge_done=True, purged=purged)

    async def mark_published(self, reset_id: str) -> None:
        self._resets[reset_id] = replace(self._resets[reset_id], published=True)

    async def supersede_resets(self, issued_after: float, by: str) -> list[str]:
        ids = [i for i, h in self._resets.items() if h.superseded_by is None and h.record.issued_at > issued_after and i != by]
        for i in ids:
            self._resets[i] = replace(self._resets[i], superseded_by=by)
        return ids

    # -- acks, bans, TTL rules, audit --------------------------------------------------------------

    async def record_ack(self, ack: ResetAck) -> None:
        self._acks.setdefault((ack.reset_id, ack.peer_id), ack)

    async def acks(self, reset_id: str) -> list[ResetAck]:
        return [ack for (rid, _), ack in self._acks.items() if rid == reset_id]

    async def save_session(self, session: StoredSession, keep: int, now: float) -> None:
        self._sessions[session.digest] = session
        for digest in [d for d, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[digest]
        for digest in sorted(self._sessions, key=lambda d: self._sessions[d].expires)[: max(0, len(self._sessions) - keep)]:
            del self._sessions[digest]

    async def load_session(self, digest: str, now: float) -> StoredSession | None:
        session = self._sessions.get(digest)
        return session if session is not None and session.expires > now else None

    async def delete_session(self, digest: str) -> None:
        self._sessions.pop(digest, None)

    async def save_ban(self, ban: Ban) -> None:
        self._bans[ban.address] = ban

    async def delete_ban(self, address: str) -> None:
        self._bans.pop(address, None)

    async def load_bans(self) -> list[Ban]:
        return list(self._bans.values())

    async def save_ttl(self, prefix: str, ttl_ms: float) -> None:
        self._ttls[prefix] = ttl_ms

    async def delete_ttl(self, prefix: str) -> None:
        self._ttls.pop(prefix, None)

    async def load_ttls(self) -> dict[str, float]:
        return dict(self._ttls)

    async def save_stream_cursor(self, relay_pub: str, cursor: int) -> None:
        self._stream_cursors[relay_pub] = max(cursor, self._stream_cursors.get(relay_pub, 0))

    async def load_stream_cursors(self) -> dict[str, int]:
        return dict(self._stream_cursors)

    async def append_audit(self, entry: AuditEntry) -> int:
        stored = replace(entry, id=len(self._audit) + 1)
        self._audit.append(stored)
        return stored.id

    async def audit_page(self, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        newest_first = self._audit[::-1]
        return newest_first[offset : offset + limit], len(self._audit)


__all__ = ["MemoryGraph", "MemoryStore", "value_cost"]
