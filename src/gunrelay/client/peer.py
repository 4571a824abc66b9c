"""A GUN peer for Python programs: local-first, offline-capable, and it honours the relay's resets.

Theory of operation
-------------------
The peer keeps its own copy of the graph in a ``Store`` (``MemoryStore`` by default, or a
``SQLiteStore`` for a copy that survives restarts). Everything goes through it:

- ``put`` turns the data into a wire graph (``nodes.graph_of``: nested dicts become child nodes
  and relations, one state for the whole write from the GunJS-like ``StateClock``), checks it as
  a relay would (graph validation, SEA, the client fence), merges it into the local store by
  HAM, queues it in the ``Outbox`` and sends it when connected. The outbox keeps it until the
  relay answers, so a write made offline, or lost with a dropped connection, is sent again after
  the next connect with its original states.
- Every field that arrives (get replies, pushes) is checked the same way -- graph validation,
  the client fence, SEA signatures, a bound on future states -- and merged by HAM; what changed
  the store is handed to ``on`` subscribers, in order, from one callback task (so a callback may
  itself await the peer).
- ``get`` asks the relay (bounded by a timeout) and then answers from the local store, so it
  answers offline too, and reflects local writes not yet acknowledged.

The connection task dials ``ws://HOST:PORT/gun``, answers the relay's ``{"dam": "?"}`` with our
pid, says ``{"dam": "hi"}``, then (re)subscribes: the reset record first, so that a reset issued
while we were away is applied before the outbox is flushed, then every ``on`` subscription, then
the outbox. When the socket drops it redials with a bounded exponential backoff. Incoming
messages are deduplicated by ``#``; message ids are random and end with a letter, so no id is
another id followed by digits (GunJS's internal ``<id><n>`` ids, protocol notes 2.2). A get
that a relay passes on (the Node relay does) is answered from the local copy, as GunJS peers do.

Resets (``resets.ResetKeeper``): the peer subscribes to ``~<relay pub>/reset`` (the latest
record) and ``~<relay pub>/resets`` (the index of all of them); the pub is given, or read once
from ``http://HOST:PORT/-/identity``. It verifies every signature, applies each new epoch once
(records it missed while away in the order they were issued), acknowledges with
``{"dam": "reset-ack", "reset": id}`` (the latest per scope again on every connection), and then
calls ``on_reset(record)``.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import json
import logging
import secrets
import string
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..core import sea, wire
from ..core.dup import DupCache
from ..core.graph import Field, InvalidGraph, State, Value, fields_of_put
from ..core.lex import Lex
from ..core.reset import ResetRecord
from ..storage.base import ReadQuery, Store, decode_value
from ..storage.memory import MemoryStore
from ..storage.sqlite import SQLiteStore
from .clock import StateClock
from .nodes import graph_of, is_relation, random_soul, random_text
from .outbox import MemoryOutbox, OutboxEntry, SQLiteOutbox
from .resets import (
    LEGACY_NODE,
    ResetKeeper,
    index_entries,
    index_soul,
    record_of,
    reset_soul,
)

log = logging.getLogger("gunrelay.client")

Callback = Callable[[Any, str], Any]  # (value or node, key or soul); may return an awaitable
ResetCallback = Callable[[ResetRecord], Any]


def new_id() -> str:
    """A random message id that ends with a letter (never ``<another id><digits>``)."""
    return random_text(8) + secrets.choice(string.ascii_letters)


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
        if self in self.peer._subs:
            self.peer._subs.remove(self)


@dataclass
class _Sent:
    entry_id: int
    connection: int
    waiter: asyncio.Future[dict[str, Any] | None] | None = None


class GunPeer:
    def __init__(
        self,
        store: Store | None = None,
        *,
        outbox: MemoryOutbox | None = None,
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
        self.store: Store = store if store is not None else MemoryStore()
        self.outbox: MemoryOutbox = outbox if outbox is not None else MemoryOutbox()
        self.relay_pub = relay_pub
        self.watch_resets = watch_resets
        self.on_reset = on_reset
        self.ack_timeout = ack_timeout
        self.get_timeout = get_timeout
        self.get_settle = get_settle
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.max_retries = max_retries
        self.max_skew_ms = max_skew_ms
        self.answer_gets = answer_gets
        self.wall_ms: Callable[[], float] = wall_ms or (lambda: time.time() * 1000)
        self.clock = StateClock(self.wall_ms)
        self.pid = random_text(9)
        self.relay_pid: str | None = None
        self.url: str | None = None
        self.resets = ResetKeeper(self.store, self.outbox, legacy_node)
        self.acknowledged: set[str] = set()  # reset ids the relay confirmed on some connection
        self.connections = 0  # how many times a connection was established
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()  # connected, and the reset record checked
        self._opened = False
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._setup: asyncio.Task[None] | None = None
        self._dup: DupCache[None] = DupCache(ttl=9.0, now=time.monotonic())
        self._sent: dict[str, _Sent] = {}
        self._asked: dict[str, asyncio.Future[bool]] = {}  # get message id -> answered
        self._acking: dict[str, str] = {}  # reset-ack message id -> reset id
        self._acked_here: builtins.set[str] = builtins.set()  # reset ids acknowledged on this connection
        self._subs: list[Subscription] = []
        self._events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._catching = asyncio.Lock()

    @classmethod
    def durable(cls, path: str | Path, **options: Any) -> GunPeer:
        """A peer whose local copy, outbox and applied resets live in SQLite files at ``path``."""
        path = Path(path)
        return cls(SQLiteStore(path), outbox=SQLiteOutbox(path.with_name(path.name + "-outbox")), **options)

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the local store (done by ``connect`` and by the first read or write)."""
        if self._opened:
            return
        self._opened = True
        await self.store.open()
        await self.outbox.open()
        if self.relay_pub:
            self.resets.trust(self.relay_pub)
        await self.resets.load()
        self._worker = asyncio.get_running_loop().create_task(self._deliver_events())

    async def connect(self, url: str, timeout: float = 5.0) -> bool:
        """Dial the relay (``http(s)://`` or ``ws(s)://``, with or without ``/gun``) and keep the
        connection up; True once connected (and any reset published meanwhile applied), False if
        not within ``timeout`` (it keeps trying in the background)."""
        await self.open()
        self.url = _ws_url(url)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
        return await self.wait_connected(timeout)

    async def disconnect(self) -> None:
        """Go offline on purpose: the local copy and the outbox stay; ``connect`` resumes."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
        if self._ws is not None:
            await self._ws.close()
        if runner is not None:
            await asyncio.gather(runner, return_exceptions=True)

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._connected.is_set()

    async def close(self) -> None:
        """Disconnect, finish pending local writes and close the local store."""
        self._closing = True
        tasks = [t for t in (self._runner, self._setup, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._worker is not None:
            try:
                await asyncio.wait_for(self._events.join(), 5.0)  # callbacks already queued
            except TimeoutError:
                log.warning("callbacks still running at close; cancelled")
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._opened:
            await self.outbox.close()
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
        for f in fields:
            rule = self.resets.fence.blocks(f.soul, f.state, now)
            if rule is not None:
                return PutResult(err=f"Refused: {f.soul!r} was reset ({rule.rule_id}); writes at or before {rule.watermark} are fenced.", state=state)
            problem = sea.check_field(f.soul, f.key, f.value, f.state, now)
            if problem is not None:
                return PutResult(err=problem, state=state)
        self._changed(await self.store.merge(fields))
        entry = await self.outbox.add(graph)
        return await self._deliver(entry, self.ack_timeout if timeout is None else timeout, state)

    async def set(self, soul: str, item: dict[str, Any] | Value, timeout: float | None = None) -> tuple[str, PutResult]:
        """``gun.get(soul).set(item)``: the item (a dict becomes a node with a random soul) is
        added under its own key. Returns the item's soul (or key) and the put's result."""
        state = self.clock()
        key = random_soul(state)
        if type(item) is dict and not is_relation(item):
            await self.put(key, item, timeout)  # the item node, then the link to it
            return key, await self.put(soul, {key: {"#": key}}, timeout)
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
        waiter: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        msg_id = await self._send_entry(entry, waiter)
        if msg_id is None:
            return PutResult(queued=True, state=state)
        try:
            ack = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            await self._expire(msg_id)
            queued = entry.entry_id in self.outbox
            return PutResult(queued=queued, timed_out=not queued, state=state)
        if ack is None:
            return PutResult(queued=True, state=state)
        err = ack.get("err")
        if err is not None:
            return PutResult(err=str(err), ack=ack, state=state)
        return PutResult(ok=True, ack=ack, state=state)

    async def _send_entry(self, entry: OutboxEntry, waiter: asyncio.Future[dict[str, Any] | None] | None) -> str | None:
        msg_id = new_id()
        sent = _Sent(entry.entry_id, self.connections, waiter)
        self._sent[msg_id] = sent
        if not await self._send({"#": msg_id, "put": entry.graph}):
            self._sent.pop(msg_id, None)
            return None
        return msg_id

    async def _expire(self, msg_id: str) -> None:
        """No answer in time: if the connection it went out on is still up, the relay has it and
        chose silence (the Node relay does not ack what HAM discards); otherwise it stays queued."""
        sent = self._sent.pop(msg_id, None)
        if sent is not None and sent.connection == self.connections and self.connected:
            await self.outbox.remove(sent.entry_id)

    async def _flush(self) -> None:
        """Send every queued write (those a put() is already waiting on went out on this connection)."""
        busy = {s.entry_id for s in self._sent.values() if s.connection == self.connections}
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
            if not is_relation(value):
                return value if index == len(path) - 1 else None
            soul = value["#"]
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
            if is_relation(value) and value["#"] not in seen:
                out[key] = await self._load(value["#"], depth - 1, timeout, seen)
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
        msg_id = new_id()
        answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asked[msg_id] = answered
        try:
            if not await self._send({"#": msg_id, "get": _lex(soul, key)}):
                return False
            if await asyncio.wait_for(asyncio.shield(answered), timeout) and not self.relay_pub and self.get_settle > 0:
                # not a gunrelay (no identity): the Node relay answers from memory (possibly a
                # partial node) and then again from disk; GunJS waits ~99 ms (opt.wait) likewise
                await asyncio.sleep(self.get_settle)
            return answered.result()
        except TimeoutError:
            return False
        finally:
            self._asked.pop(msg_id, None)

    # -- subscriptions ----------------------------------------------------------------------

    def on(self, soul: str, callback: Callback, key: str | None = None) -> Subscription:
        """Call ``callback(node, soul)`` (or ``callback(value, key)`` with ``key``) now with what
        the local copy holds, and whenever the node (or key) changes, from anyone."""
        sub = Subscription(self, soul, key, callback)
        self._subs.append(sub)
        self._events.put_nowait(("initial", sub))
        if self.connected:
            self._spawn(self._send({"#": new_id(), "get": _lex(soul, key)}))
        return sub

    def _changed(self, fields: list[Field]) -> None:
        """Queue callbacks for fields that changed the local store."""
        if not fields or not self._subs:
            return
        by_soul: dict[str, dict[str, Value]] = {}
        for f in fields:
            by_soul.setdefault(f.soul, {})[f.key] = f.value
        for sub in list(self._subs):
            changed = by_soul.get(sub.soul)
            if changed is None:
                continue
            if sub.key is None:
                self._events.put_nowait(("node", sub))
            elif sub.key in changed:
                self._events.put_nowait(("value", sub, changed[sub.key]))

    async def _deliver_events(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._run_event(event)
            except Exception:
                log.exception("a callback failed")
            finally:
                self._events.task_done()

    async def _run_event(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "reset":
            if self.on_reset is not None:
                await _maybe_await(self.on_reset(event[1]))
            return
        sub: Subscription = event[1]
        if sub not in self._subs:
            return
        if kind == "value":
            await _maybe_await(sub.callback(event[2], sub.key or sub.soul))
            return
        rows = await self._rows(sub.soul, sub.key)
        if not rows:
            return  # nothing held (yet, or purged by a reset): the next change calls back
        value = rows[0][1] if sub.key is not None else {k: v for k, v, _ in rows}
        await _maybe_await(sub.callback(value, sub.key or sub.soul))

    # -- resets -----------------------------------------------------------------------------

    async def hard_reset(self, scope: str = "*") -> int:
        """Clear the local copy of ``scope`` (``*``: everything but the relay's records) and its
        queued writes, as the browser console recipe does by hand; the fields removed."""
        await self.open()
        return await self.resets.hard_reset(scope, self.wall_ms())

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
        self._events.put_nowait(("reset", record))
        if self.connected:  # read the scope afresh from the relay
            for sub in list(self._subs):
                await self._send({"#": new_id(), "get": _lex(sub.soul, sub.key)})

    async def _acknowledge(self, reset_id: str) -> None:
        if reset_id in self._acked_here:
            return
        self._acked_here.add(reset_id)
        msg_id = new_id()
        self._acking[msg_id] = reset_id
        await self._send({"#": msg_id, "dam": "reset-ack", "reset": reset_id})

    async def _find_relay_pub(self) -> None:
        """Read the relay's pub from ``/-/identity`` (once it is known it is kept; a relay without
        one, such as the Node relay, has no resets to watch)."""
        if self.relay_pub or not self.url:
            return
        parts = urllib.parse.urlsplit(self.url)
        scheme = "https" if parts.scheme == "wss" else "http"
        url = f"{scheme}://{parts.netloc}/-/identity"

        def fetch() -> Any:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url, timeout=3) as response:
                return json.loads(response.read())

        try:
            pub = (await asyncio.to_thread(fetch)).get("pub")
        except Exception as exc:  # noqa: BLE001 - any failure means "no identity here (now)"
            log.info("no relay identity at %s (%s): no resets to watch on this connection", url, exc)
            return
        if isinstance(pub, str) and sea.user_space_pub("~" + pub) == pub:
            self.relay_pub = pub
            self.resets.trust(pub)

    # -- the connection ---------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.url is not None
        failures = 0
        while not self._closing:
            try:
                ws = await connect(self.url, open_timeout=5, close_timeout=2, max_size=None, compression=None, proxy=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - refused, unreachable, bad handshake: try again later
                failures += 1
                if self.max_retries is not None and failures > self.max_retries:
                    log.warning("giving up on %s after %d attempts: %s", self.url, failures, exc)
                    return
                await asyncio.sleep(min(self.reconnect_max, self.reconnect_min * 2 ** min(failures, 16)))
                continue
            failures = 0
            await self._serve(ws)
            if not self._closing:
                await asyncio.sleep(self.reconnect_min)

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.connections += 1
        self._acked_here.clear()  # the relay counts acknowledgements per connection
        self._connected.set()
        self._setup = asyncio.get_running_loop().create_task(self._greet())
        try:
            async for frame in ws:
                try:
                    messages = wire.parse_frame(frame)
                except ValueError as exc:
                    log.warning("unreadable frame from the relay: %s", exc)
                    continue
                for raw in messages:
                    try:
                        await self._handle(raw)
                    except Exception:
                        log.exception("failed to handle %.200r", raw)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._connected.clear()
            self._ready.clear()
            self._setup.cancel()
            for sent in self._sent.values():
                if sent.waiter is not None and not sent.waiter.done():
                    sent.waiter.set_result(None)  # still in the outbox: goes again after the next connect
            self._sent.clear()
            for answered in self._asked.values():
                if not answered.done():
                    answered.set_result(False)

    async def _greet(self) -> None:
        """On every connection: hi, the reset record, acknowledgements, subscriptions, the outbox."""
        try:
            await self._send({"#": new_id(), "dam": "hi"})
            if self.watch_resets:
                await self._find_relay_pub()
            if self.watch_resets and self.relay_pub:
                wait = min(self.get_timeout, 3.0)
                await asyncio.gather(self._ask(index_soul(self.relay_pub), None, wait), self._ask(reset_soul(self.relay_pub), None, wait))
                await self._sync_resets()
                for record in self.resets.latest():
                    await self._acknowledge(record.reset_id)
            for sub in list(self._subs):
                await self._send({"#": new_id(), "get": _lex(sub.soul, sub.key)})
        except Exception:
            log.exception("greeting the relay failed")
        finally:
            if self._ws is not None:
                self._ready.set()
        await self._flush()

    async def _send(self, message: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None:
            return False
        msg_id = message.get("#")
        if isinstance(msg_id, str):
            self._dup.track(msg_id, None, time.monotonic())  # our own messages echoed back are dropped
        try:
            await ws.send(wire.encode(message))
        except ConnectionClosed:
            return False
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- incoming ---------------------------------------------------------------------------

    async def _handle(self, raw: Any) -> None:
        if type(raw) is not dict:
            return
        msg_id = raw.get("#")
        if msg_id is not None and not self._dup.track(str(msg_id), None, time.monotonic()):
            return
        if "dam" in raw:
            await self._on_dam(raw)
            return
        reply_to = raw.get("@")
        if "put" in raw:
            await self._on_put(raw["put"])
        if reply_to is None:
            if "get" in raw and self.answer_gets and msg_id is not None:
                await self._answer_get(raw)
            return
        sent = self._sent.pop(reply_to, None) if type(reply_to) is str else None
        if sent is not None:
            if "ok" in raw or "err" in raw:
                await self.outbox.remove(sent.entry_id)
                if sent.waiter is not None and not sent.waiter.done():
                    sent.waiter.set_result(raw)
            else:
                self._sent[reply_to] = sent
            return
        answered = self._asked.get(reply_to) if type(reply_to) is str else None
        if answered is not None and not answered.done() and not raw.get("%"):
            answered.set_result(True)  # a reply with '%' has more chunks to come

    async def _on_dam(self, raw: dict[str, Any]) -> None:
        kind = raw.get("dam")
        if kind == "?":
            if "@" in raw:
                self.relay_pid = raw.get("pid") if isinstance(raw.get("pid"), str) else None
            elif raw.get("#") is not None:
                self.relay_pid = raw.get("pid") if isinstance(raw.get("pid"), str) else self.relay_pid
                await self._send({"#": new_id(), "dam": "?", "pid": self.pid, "@": raw["#"]})
        elif kind == "reset-ack":
            reset_id = self._acking.pop(str(raw.get("@")), None)
            if reset_id is not None and raw.get("ok"):
                self.acknowledged.add(reset_id)
            elif reset_id is not None:
                log.warning("the relay refused our acknowledgement of %s: %s", reset_id, raw.get("err"))
        elif kind == "!":
            log.warning("the relay reports an error: %s", raw.get("err"))

    async def _on_put(self, graph: Any) -> None:
        try:
            fields = fields_of_put(graph)
        except InvalidGraph as exc:
            log.warning("ignoring an invalid graph: %s", exc)
            return
        now = self.wall_ms()
        fence = self.resets.fence
        accepted = []
        for f in fields:
            if f.state > now + self.max_skew_ms:
                continue  # far-future states would win every later conflict
            if fence and fence.blocks(f.soul, f.state, now) is not None:
                continue
            if sea.check_field(f.soul, f.key, f.value, f.state, now) is not None:
                continue
            accepted.append(f)
        if not accepted:
            return
        changed = await self.store.merge(accepted)
        self._changed(changed)
        if self.relay_pub and {index_soul(self.relay_pub), reset_soul(self.relay_pub)} & {f.soul for f in changed}:
            self._spawn(self._sync_resets())  # it asks the relay: not from the loop that reads replies

    async def _answer_get(self, raw: dict[str, Any]) -> None:
        """A relay passing on another peer's get (the Node relay does): answer from the local copy."""
        try:
            request = wire.decode(raw)
        except wire.MessageError:
            return
        if not isinstance(request, wire.Get) or request.soul is None:
            return
        found = await self.store.read(ReadQuery(soul=request.soul, key=request.key, budget=request.budget))
        now = self.wall_ms()
        graph: dict[str, Any] = {}
        for soul, rows in found.items():
            items = [(k, decode_value(v), s) for k, v, s in rows if not self.resets.fence.blocks(soul, s, now, serving=True)]
            if items:
                graph[soul] = wire.node(soul, items)
        if graph:
            await self._send({"#": new_id(), "@": raw["#"], "put": graph})


def _lex(soul: str, key: str | None) -> dict[str, str]:
    return {"#": soul} if key is None else {"#": soul, ".": key}


def _ws_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a relay URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/gun"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


__all__ = ["GunPeer", "PutResult", "Subscription"]
