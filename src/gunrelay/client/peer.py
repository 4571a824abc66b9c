"""A GUN peer for Python programs: local-first, offline-capable, and it honours the relay's resets.

Theory of operation
-------------------
The peer keeps its own copy of the graph in a graph store (``MemoryGraph`` by default, or a
``SQLiteGraph`` for a copy that survives restarts; ``durable`` also keeps the outbox and the
resets applied, ``ledger``, in files of their own). Everything goes through it:

- ``put`` turns the data into a wire graph (``nodes.graph_of``: nested dicts become child nodes
  and relations, one state for the whole write from the GunJS-like ``StateClock``), judges it as
  the relay would (``core.graph.fields_of_put`` and ``core.admission.admit``: the client fence,
  SEA), merges it into the local store by HAM, queues it in the ``Outbox`` and sends it when
  connected. The outbox keeps it until the relay answers, so a write made offline, or lost with
  a dropped connection, is sent again after the next connect with its original states.
- Every graph that arrives (get replies, pushes) is judged by the same functions, as the relay
  judges a put: the client fence, HAM's timing, SEA. A field whose state is a little ahead of our
  clock waits until then, as GunJS defers it (one far ahead is dropped); the rest is merged by
  HAM at once. What changed the store is handed to ``on`` subscribers (``callbacks``), in
  order, from one callback task (so a callback may itself await the peer).
- ``get`` asks the relay (bounded by a timeout) and then answers from the local store, so it
  answers offline too, and reflects local writes not yet acknowledged.

The parts: ``protocol.PeerProtocol`` is the conversation's state without I/O (message ids,
dedup, encoding and decoding through ``core.wire``, requests waiting for answers, admission,
what to send on connect); ``connection.Connection`` dials, greets, receives, sends and redials;
``resets.ResetKeeper`` owns the client fence and applies reset records to the local store; this
module is the public API and carries out what the protocol reads.

Resets: the peer subscribes to ``~<relay pub>/reset`` (the latest record) and
``~<relay pub>/resets`` (the index of all of them); the pub is given, or read once from
``http://HOST:PORT/-/identity``. On every connection, before subscriptions and queued writes go
out, it reads both; it verifies every signature, applies each new epoch once (records it missed
while away in the order they were issued), acknowledges with ``{"dam": "reset-ack"}`` (the
latest per scope again on every connection), and then calls ``on_reset(record)``.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ..core import admission, sea, wire
from ..core.admission import Admission, Lookup
from ..core.graph import Field, InvalidGraph, State, Value, fields_of_put, is_relation, relation, relation_target
from ..core.lex import Lex
from ..core.reset import ResetRecord, index_entries, index_soul, record_of, reset_soul
from ..core.reads import ReadQuery
from ..storage.graph import GraphStore, decode_value
from ..storage.memory import MemoryGraph
from ..storage.sqlite import SQLiteGraph
from .callbacks import Callbacks
from .connection import Connection, Session, relay_identity
from .ledger import MemoryResetLedger, SQLiteResetLedger
from .nodes import graph_of, random_soul
from .outbox import MemoryOutbox, OutboxEntry, SQLiteOutbox
from .protocol import Answered, Forwarded, Graph, PeerProtocol, Send, Settled
from .resets import LEGACY_NODE, ResetKeeper
from .state_clock import StateClock

log = logging.getLogger("gunrelay.client")

Callback = Callable[[Any, str], Any]  # (value or node, key or soul); may return an awaitable
ResetCallback = Callable[[ResetRecord], Any]


@dataclass(frozen=True)
class PutResult:
    """What became of a put: acknowledged (``ok``), refused (``err``), or still queued."""

    ok: bool = False
    err: str | None = None
    queued: bool = False  # not acknowledged yet: kept in the outbox, sent (again) after the next connect
    timed_out: bool = False  # sent on a connection that stayed open, but the relay never answered
    ack: dict[str, Any] | None = None  # the relay's ack message as received
    state: State | None = None  # the state every field of this write carries

    def __bool__(self) -> bool:
        return self.ok


@dataclass(eq=False)
class Subscription:
    peer: GunPeer
    soul: str
    key: str | None
    callback: Callback

    def off(self) -> None:
        """Stop calling back (GUN has no unsubscribe message; the relay may keep pushing)."""
        self.peer._unsubscribe(self)


class GunPeer:
    def __init__(
        self,
        store: GraphStore | None = None,
        *,
        outbox: MemoryOutbox | None = None,
        ledger: MemoryResetLedger | None = None,
        relay_pub: str | None = None,
        watch_resets: bool = True,
        on_reset: ResetCallback | None = None,
        ack_timeout: float = 5.0,
        get_timeout: float = 5.0,
        get_settle: float = 0.1,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        max_retries: int | None = None,
        max_skew_ms: float = 120_000,
        answer_gets: bool = True,
        legacy_node: str = LEGACY_NODE,
        wall_ms: Callable[[], float] | None = None,
    ):
        self.store: GraphStore = store if store is not None else MemoryGraph()
        self.outbox: MemoryOutbox = outbox if outbox is not None else MemoryOutbox()
        self.ledger: MemoryResetLedger = ledger if ledger is not None else MemoryResetLedger()
        self.relay_pub = relay_pub
        self.watch_resets = watch_resets
        self.on_reset = on_reset
        self.ack_timeout = ack_timeout
        self.get_timeout = get_timeout
        self.get_settle = get_settle
        self.wall_ms: Callable[[], float] = wall_ms or (lambda: time.time() * 1000)
        self.clock = StateClock(self.wall_ms)
        self.resets = ResetKeeper(self.store, self.ledger, self.outbox, legacy_node)
        self.protocol = PeerProtocol(self.resets.fence, steady=time.monotonic, max_skew_ms=max_skew_ms, answer_gets=answer_gets)
        self.connection = Connection(
            self.protocol,
            Session(receive=self._receive, catch_up=self._catch_up, flush=self._flush, lost=self._lost),
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            max_retries=max_retries,
        )
        self.callbacks = Callbacks(self._rows)
        self._opened = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deferred: dict[asyncio.Task[Any], frozenset[str]] = {}  # fields waiting for their state -> their souls
        self._catching = asyncio.Lock()

    @classmethod
    def durable(cls, path: str | Path, **options: Any) -> GunPeer:
        """A peer whose local copy, outbox and applied resets live in SQLite files at ``path``."""
        path = Path(path)
        return cls(
            SQLiteGraph(path),
            outbox=SQLiteOutbox(path.with_name(path.name + "-outbox")),
            ledger=SQLiteResetLedger(path.with_name(path.name + "-resets"), graph_file=path),
            **options,
        )

    # -- who we are and who we talk to ------------------------------------------------------

    @property
    def pid(self) -> str:
        return self.protocol.pid

    @property
    def relay_pid(self) -> str | None:
        return self.protocol.relay_pid

    @property
    def acknowledged(self) -> set[str]:
        """Reset ids the relay confirmed on some connection."""
        return self.protocol.acknowledged

    @property
    def connections(self) -> int:
        """How many times a connection was established."""
        return self.protocol.connections

    @property
    def url(self) -> str | None:
        return self.connection.url

    @property
    def connected(self) -> bool:
        return self.connection.connected

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the local store (done by ``connect`` and by the first read or write)."""
        if self._opened:
            return
        self._opened = True
        await self.store.open()
        await self.outbox.open()
        await self.ledger.open()
        if self.relay_pub:
            self.resets.trust(self.relay_pub)
        await self.resets.load()
        self.callbacks.start()

    async def connect(self, url: str, timeout: float = 5.0) -> bool:
        """Dial the relay (``http(s)://`` or ``ws(s)://``, with or without ``/gun``) and keep the
        connection up; True once connected (and any reset published meanwhile applied), False if
        not within ``timeout`` (it keeps trying in the background)."""
        await self.open()
        self.connection.start(url)
        return await self.wait_connected(timeout)

    async def disconnect(self) -> None:
        """Go offline on purpose: the local copy and the outbox stay; ``connect`` resumes."""
        await self.connection.stop()

    async def wait_connected(self, timeout: float) -> bool:
        return await self.connection.wait_ready(timeout)

    async def close(self) -> None:
        """Disconnect, finish pending local writes and close the local store."""
        await self.connection.close()  # first: nothing more arrives to start tasks
        tasks = list(self._tasks)  # reset syncs, deferred writes, sends
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.callbacks.close()
        if self._opened:
            await self.outbox.close()
            await self.ledger.close()
            await self.store.close()
            self._opened = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing ----------------------------------------------------------------------------

    async def put(self, soul: str, data: dict[str, Any], timeout: float | None = None) -> PutResult:
        """Write ``data`` (GUN values; nested dicts become child nodes) into ``soul``.

        Returns once the relay answered (``ok`` or ``err``), or at once with ``queued`` when
        offline; raises ValueError for data GUN cannot hold."""
        await self.open()
        state = self.clock()
        graph = await graph_of(soul, data, state, self._link_of)
        try:
            fields = fields_of_put(graph)
        except InvalidGraph as exc:
            raise ValueError(str(exc)) from None
        now = self.wall_ms()
        judged = self.protocol.admit_local(fields, now)
        if judged.lookups:
            judged.refused.extend((await self._recheck(judged.lookups, now)).refused)
        if judged.refused:
            return PutResult(err=judged.refused[0][1], state=state)
        self.callbacks.changed(await self.store.merge(fields))
        entry = await self.outbox.add(graph)
        return await self._deliver(entry, self.ack_timeout if timeout is None else timeout, state)

    async def set(self, soul: str, item: dict[str, Any] | Value, timeout: float | None = None) -> tuple[str, PutResult]:
        """``gun.get(soul).set(item)``: the item (a dict becomes a node with a random soul) is
        added under its own key. Returns the item's soul (or key) and the put's result."""
        state = self.clock()
        key = random_soul(state)
        if type(item) is dict and not is_relation(item):
            await self.put(key, item, timeout)  # the item node, then the link to it
            return key, await self.put(soul, {key: relation(key)}, timeout)
        return key, await self.put(soul, {key: item}, timeout)

    async def wait_flushed(self, timeout: float = 10.0) -> bool:
        """True once every queued write was acknowledged (or answered); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.outbox):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _deliver(self, entry: OutboxEntry, timeout: float, state: State) -> PutResult:
        if not self.connected:
            return PutResult(queued=True, state=state)
        waiter: asyncio.Future[Settled | None] = asyncio.get_running_loop().create_future()
        msg_id = await self._send_entry(entry, waiter)
        if msg_id is None:
            return PutResult(queued=True, state=state)
        try:
            settled = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            await self._expire(msg_id)
            queued = entry.entry_id in self.outbox
            return PutResult(queued=queued, timed_out=not queued, state=state)
        if settled is None:
            return PutResult(queued=True, state=state)
        if settled.answer.err is not None:
            return PutResult(err=settled.answer.err, ack=settled.raw, state=state)
        return PutResult(ok=True, ack=settled.raw, state=state)

    async def _send_entry(self, entry: OutboxEntry, waiter: asyncio.Future[Settled | None] | None) -> str | None:
        msg_id, text = self.protocol.put(entry.entry_id, entry.graph, waiter)
        if not await self.connection.send(text):
            self.protocol.forget(msg_id)
            return None
        return msg_id

    async def _expire(self, msg_id: str) -> None:
        """No answer in time: dropped from the outbox if the relay got it (see ``PeerProtocol.expire``)."""
        entry_id = self.protocol.expire(msg_id, self.connected)
        if entry_id is not None:
            await self.outbox.remove(entry_id)

    async def _flush(self) -> None:
        """Send every queued write (those a put() is already waiting on went out on this connection)."""
        busy = self.protocol.in_flight()
        mine: list[str] = []
        for entry in self.outbox.entries():
            if entry.entry_id in busy or entry.entry_id not in self.outbox:
                continue
            msg_id = await self._send_entry(entry, None)
            if msg_id is None:
                return
            mine.append(msg_id)
        if mine:
            await asyncio.sleep(self.ack_timeout)
            for msg_id in mine:
                await self._expire(msg_id)

    # -- reading ----------------------------------------------------------------------------

    async def get(self, soul: str, key: str | None = None, timeout: float | None = None) -> Any:
        """The node (``{key: value}``) or one value, after asking the relay (when connected, up to
        ``timeout``) and merging its answer; None when neither the relay nor the local copy has it."""
        await self.open()
        if self.connected:
            await self._ask(soul, key, self.get_timeout if timeout is None else timeout)
        return await self.local(soul, key)

    async def once(self, *path: str, timeout: float | None = None) -> Any:
        """``gun.get(a).get(b)...once()``: follows relations along ``path``; a relation at the end
        is loaded as its node."""
        if not path:
            raise ValueError("once() needs a soul")
        soul = path[0]
        for index, key in enumerate(path[1:], start=1):
            value = await self.get(soul, key, timeout)
            target = relation_target(value) if is_relation(value) else None
            if target is None:
                return value if index == len(path) - 1 else None
            soul = target
        return await self.get(soul, timeout=timeout)

    async def load(self, soul: str, depth: int = 8, timeout: float | None = None) -> dict[str, Any] | None:
        """The node with its relations followed (up to ``depth`` levels, each soul once): the
        nested dict a put of nested data wrote."""
        return await self._load(soul, depth, timeout, builtins.set())

    async def _load(self, soul: str, depth: int, timeout: float | None, seen: builtins.set[str]) -> dict[str, Any] | None:
        seen.add(soul)
        node = await self.get(soul, timeout=timeout)
        if node is None or depth <= 0:
            return node  # type: ignore[no-any-return]
        out: dict[str, Any] = {}
        for key, value in node.items():
            target = relation_target(value) if is_relation(value) else None
            if target is not None and target not in seen:
                out[key] = await self._load(target, depth - 1, timeout, seen)
            else:
                out[key] = value
        return out

    async def local(self, soul: str, key: str | None = None) -> Any:
        """What the local copy holds, without asking anyone."""
        await self.open()
        rows = await self._rows(soul, key)
        if not rows:
            return None
        if key is not None:
            return rows[0][1]
        return {k: v for k, v, _ in rows}

    async def _rows(self, soul: str, key: str | None = None) -> list[tuple[str, Value, State]]:
        query = ReadQuery(soul=soul, key=None if key is None else Lex(exact=key))
        found = await self.store.read(query)
        return [(k, decode_value(v), s) for k, v, s in found.get(soul, [])]

    async def _link_of(self, soul: str, key: str) -> Value:
        rows = await self._rows(soul, key)
        return rows[0][1] if rows else None

    async def _ask(self, soul: str, key: str | None, timeout: float) -> bool:
        """Send a get and wait (bounded) for the relay's answer; True if it answered."""
        answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        msg_id, text = self.protocol.ask(soul, key, answered)
        try:
            if not await self.connection.send(text):
                return False
            if await asyncio.wait_for(asyncio.shield(answered), timeout) and not self.relay_pub and self.get_settle > 0:
                # not a gunrelay (no identity): the Node relay answers from memory (possibly a
                # partial node) and then again from disk; GunJS waits ~99 ms (opt.wait) likewise
                await asyncio.sleep(self.get_settle)
            return answered.result()
        except TimeoutError:
            return False
        finally:
            self.protocol.forget(msg_id)

    # -- subscriptions ----------------------------------------------------------------------

    def on(self, soul: str, callback: Callback, key: str | None = None) -> Subscription:
        """Call ``callback(node, soul)`` (or ``callback(value, key)`` with ``key``) now with what
        the local copy holds, and whenever the node (or key) changes, from anyone."""
        sub = Subscription(self, soul, key, callback)
        self.callbacks.add(sub)
        text = self.protocol.follow(soul, key)
        if self.connected:
            self._spawn(self.connection.send(text))
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if self.callbacks.remove(sub):
            self.protocol.unfollow(sub.soul, sub.key)

    # -- what the relay sends ---------------------------------------------------------------

    async def _receive(self, raw: Any) -> None:
        for event in self.protocol.receive(raw):
            if isinstance(event, Graph):
                await self._take(event.graph)
            elif isinstance(event, Send):
                await self.connection.send(event.text)
            elif isinstance(event, Settled):
                await self.outbox.remove(event.entry_id)
                if event.waiter is not None and not event.waiter.done():
                    event.waiter.set_result(event)
            elif isinstance(event, Answered):
                if not event.waiter.done():
                    event.waiter.set_result(True)
            elif isinstance(event, Forwarded):
                await self._answer_get(event.get)

    def _lost(self) -> None:
        lost = self.protocol.lost()
        for waiter in lost.puts:
            if not waiter.done():
                waiter.set_result(None)  # still in the outbox: goes again after the next connect
        for waiter in lost.gets:
            if not waiter.done():
                waiter.set_result(False)

    async def _take(self, graph: Any) -> None:
        """Admit an incoming graph (``PeerProtocol.admit``) and merge what passes, now or, for
        states ahead of our clock, once they are reached."""
        now = self.wall_ms()
        judged = self.protocol.admit(graph, now)
        if judged is None:
            return
        ready, later = judged.ready, judged.later
        if judged.lookups:
            again = await self._recheck(judged.lookups, now)
            ready, later = ready + again.ready, later + again.later
            judged.refused.extend(again.refused)
        if judged.refused:
            log.debug("dropped %d incoming field(s), e.g. %s", len(judged.refused), judged.refused[0][1])
        if ready:
            await self._merge(ready)
        if later:
            self._defer(later, now)

    async def _recheck(self, waiting: list[tuple[Field, list[Lookup]]], now: float) -> Admission:
        """Judge again fields signed under a certificate with a write-block list, against the
        entries the local copy holds (as the relay does against its store)."""
        blocked: dict[Lookup, bool] = {}
        for soul, writer in admission.wanted_lookups(waiting):
            rows = await self._rows(soul, writer)
            blocked[(soul, writer)] = any(sea.is_block_entry(value) for _, value, _ in rows)
        return admission.recheck(waiting, blocked, now)

    async def _merge(self, fields: list[Field]) -> None:
        changed = await self.store.merge(fields)
        self.callbacks.changed(changed)
        if self.relay_pub and {index_soul(self.relay_pub), reset_soul(self.relay_pub)} & {f.soul for f in changed}:
            self._spawn(self._sync_resets())  # it asks the relay: not from the loop that reads replies

    def _defer(self, fields: list[Field], now: float) -> None:
        """Merge ``fields`` once our clock reaches their states (HAM's defer, as GunJS does)."""
        delay = (max(f.state for f in fields) - now) / 1000
        task = self._spawn(self._merge_when_due(fields, delay, self.resets.fence.version))
        self._deferred[task] = frozenset(f.soul for f in fields)
        task.add_done_callback(lambda done: self._deferred.pop(done, None))

    async def _merge_when_due(self, fields: list[Field], delay: float, fence_version: int) -> None:
        await asyncio.sleep(delay)
        fence = self.resets.fence
        if fence.version != fence_version:  # a reset applied meanwhile: judge them against it
            fields = admission.through_fence(fields, fence, self.wall_ms(), Admission())
        if fields:
            await self._merge(fields)

    async def _settled(self, souls: builtins.set[str], timeout: float) -> None:
        """Wait (bounded) for deferred fields of ``souls`` to be merged."""
        waiting = [task for task, held in self._deferred.items() if held & souls]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)

    async def _answer_get(self, get: wire.Get) -> None:
        """A relay passing on another peer's get (the Node relay does): answer from the local copy."""
        assert get.soul is not None
        found = await self.store.read(ReadQuery(soul=get.soul, key=get.key, budget=get.budget))
        now = self.wall_ms()
        fence = self.resets.fence
        graph: dict[str, Any] = {}
        for soul, rows in found.items():
            items = [(k, decode_value(v), s) for k, v, s in rows if not fence.blocks(soul, s, now, serving=True)]
            if items:
                graph[soul] = wire.node(soul, items)
        if graph:
            await self.connection.send(self.protocol.answer_get(get, graph))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- resets -----------------------------------------------------------------------------

    async def hard_reset(self, scope: str = "*") -> int:
        """Clear the local copy of ``scope`` (``*``: everything but the relay's records) and its
        queued writes, as the browser console recipe does by hand; the fields removed."""
        await self.open()
        return await self.resets.hard_reset(scope, self.wall_ms())

    async def _catch_up(self) -> None:
        """On every connection, before subscriptions and the outbox: the relay's records."""
        if not self.watch_resets:
            return
        if not self.relay_pub and self.url:
            pub = await relay_identity(self.url)
            if pub is not None:
                self.relay_pub = pub
                self.resets.trust(pub)
        if not self.relay_pub:
            return
        wait = min(self.get_timeout, 3.0)
        souls = (index_soul(self.relay_pub), reset_soul(self.relay_pub))
        await asyncio.gather(*(self._ask(soul, None, wait) for soul in souls))
        await self._settled(builtins.set(souls), wait)
        await self._sync_resets()
        for record in self.resets.latest():
            await self._acknowledge(record.reset_id)

    async def _sync_resets(self) -> None:
        """Act on every record not applied yet: those in the relay's index first, in the order they
        were issued (a peer away during resets of several scopes honours each, not only the
        latest), then the latest record (live, it may arrive before its index entry)."""
        pub = self.relay_pub
        if not pub:
            return
        async with self._catching:
            await self._catch_up_with(pub)
            soul = reset_soul(pub)
            record = record_of(soul, await self._rows(soul), pub, self.wall_ms())
            if record is not None:
                await self._apply(record)

    async def _catch_up_with(self, pub: str) -> None:
        entries = index_entries(await self._rows(index_soul(pub)), pub, self.wall_ms())
        unseen = {reset_id: soul for reset_id, soul in entries.items() if reset_id not in self.resets.records}
        if not unseen:
            return
        if self.connected:
            wait = min(self.get_timeout, 3.0)
            await asyncio.gather(*(self._ask(soul, None, wait) for soul in unseen.values()))
            await self._settled(builtins.set(unseen.values()), wait)
        latest: dict[str, ResetRecord] = {}  # per scope the newest epoch subsumes the older ones
        for soul in unseen.values():
            record = record_of(soul, await self._rows(soul), pub, self.wall_ms())
            if record is not None and (record.scope not in latest or record.epoch > latest[record.scope].epoch):
                latest[record.scope] = record
        for record in sorted(latest.values(), key=lambda r: (r.issued_at, r.epoch)):
            await self._apply(record)

    async def _apply(self, record: ResetRecord) -> None:
        if not self.resets.is_new(record) or not await self.resets.apply(record, self.wall_ms()):
            return
        await self._acknowledge(record.reset_id)
        self.callbacks.reset(self.on_reset, record)
        if self.connected:  # read the scope afresh from the relay
            for text in self.protocol.resubscriptions():
                await self.connection.send(text)

    async def _acknowledge(self, reset_id: str) -> None:
        text = self.protocol.acknowledge(reset_id)
        if text is not None:
            await self.connection.send(text)


__all__ = ["GunPeer", "PutResult", "Subscription"]
