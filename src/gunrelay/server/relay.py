"""The relay: what happens to each message from each peer.

Theory of operation.

- A frame is parsed (``core.wire``); every message is deduplicated by id (``core.dup``), which also
  remembers the peer each id came from.
- A get subscribes the peer to the soul or key (``core.subscriptions``) and is answered from
  storage, only to the peer that asked: a reply with ``put`` for each page of data (a big node
  comes in several), or one reply without ``put`` when there is none, so ``once()`` always
  completes. What a read may cost, and whose read goes next, is ``core.reads``: lex queries
  without ``%`` get RAD's budget, pages are bounded, connections take turns, and a connection
  that goes away takes its queued reads with it.
- A put is validated as a whole (``core.graph``); then each field is checked on its own: states
  too far in the future are refused, near-future ones wait until their state is reached (HAM's
  defer), SEA rules are checked (``core.sea``). The rest goes to ``store.merge``, which applies HAM
  against the stored state and returns once the winners are durable. Then, and only then, the
  writer gets one reply for its put: ``ok`` (also when HAM kept the stored value, so callbacks
  never hang) or ``err`` naming what was refused, and the fields that changed the store are
  pushed to their subscribers, the writer included only if it subscribed.
- The fence (``core.fence``, kept by the reset control) is asked about every field on the way in
  (an ``err`` naming the reset, the sender logged) and on the way out (fenced rows are never
  served, even before the purge deletes them). Writes that reach storage later (deferred,
  certificate-checked) are asked again if the fence changed meanwhile. Peers may not write the
  relay's system space (its SEA space, the legacy system node); only ``publish`` does.
- Nothing here blocks: storage answers through futures, and each peer's outbox batches what it
  is sent in one turn of the loop into one frame.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..core import ham, reads, sea, wire
from ..core import lex as lexmod
from ..core.clock import ClockWatch
from ..core.dup import DupCache
from ..core.fence import Fence, FenceRule
from ..core.graph import Field, InvalidGraph, fields_of_put
from ..core.limits import TokenBucket
from ..core.reads import FairQueue
from ..core.subscriptions import MAX_FOLLOWED_TEXT, Subscriptions
from ..storage.base import ReadPage, ReadQuery, Row, StorageFailure, Store, decode_value
from .peer import Peer, random_pid

log = logging.getLogger("gunrelay.relay")


# What a field in user space ('~' souls: a SEA signature to verify, about 130 us) costs against a
# connection's field budget beyond the 1 every field costs (about 5 us of validation and checks).
SEA_FIELD_COST = 25

RESET_ACK = "reset-ack"  # {"dam": "reset-ack", "reset": <reset_id>}: a client says it has cleared itself


def fence_error(rule: FenceRule, state: float, now: float) -> str:
    if rule.ttl_ms is not None:
        return f"Expired: {rule.scope!r} keeps data for {rule.ttl_ms / 1000:g} s; state {state} is older."
    if math.isinf(rule.watermark_at(now)):
        return f"Refused: {rule.scope!r} was rotated ({rule.rule_id}) and is read-only."
    return (
        f"Refused by reset {rule.rule_id} of {rule.scope!r}: state {state} is at or below its watermark "
        f"{rule.watermark_at(now)}; data from before the reset must not come back."
    )


def _recorder(lookups: list[tuple[str, str]]) -> Callable[[str, str], bool]:
    """An ``is_blocked`` for a first SEA pass: notes which write-block entries a check needs."""

    def note(soul: str, writer: str) -> bool:
        lookups.append((soul, writer))
        return False

    return note


def wall_clock_ms() -> float:
    return time.time() * 1000.0


# Seconds that only go forward and count a suspend (CLOCK_BOOTTIME, Linux), so that a VM or laptop
# waking up is not taken for a step of the wall clock (core.clock); elsewhere the monotonic clock.
steady_s: Callable[[], float] = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic
)


@dataclass
class RelayStats:
    """Running totals since start (the console's rates and ``/metrics`` read them; nothing resets them)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    puts: int = 0
    gets: int = 0
    acks: int = 0
    connections: int = 0  # accepted since start
    peak_connections: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count (messages answered with an error)
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count (connections and messages refused by a limit)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def refuse(self, reason: str, count: int = 1) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + count


def _by_soul(fields: list[Field]) -> dict[str, list[Field]]:
    grouped: dict[str, list[Field]] = {}
    for item in fields:
        grouped.setdefault(item.soul, []).append(item)
    return grouped


def _node_of(soul: str, items: list[Field]) -> dict[str, Any]:
    return wire.node(soul, [(i.key, i.value, i.state) for i in items])


class _GetRead:
    """One get being answered, a page at a time."""

    __slots__ = ("peer", "msg_id", "query", "answered")

    def __init__(self, peer: Peer, msg_id: Any, query: ReadQuery):
        self.peer = peer
        self.msg_id = msg_id
        self.query = query
        self.answered = False  # a page with data was sent


class _PendingPut:
    """One put message waiting for its parts (immediate, deferred) to become durable."""

    __slots__ = ("peer", "msg_id", "errors", "parts", "fence_version")

    def __init__(self, peer: Peer, msg_id: Any):
        self.peer = peer
        self.msg_id = msg_id
        self.errors: list[str] = []
        self.parts = 0
        self.fence_version = -1  # the fence its fields were checked against


class Relay:
    def __init__(
        self,
        store: Store,
        *,
        max_frame_bytes: int = 16 * 1024 * 1024,
        max_skew_ms: float = 120_000,
        max_queue_bytes: int = 32 << 20,
        max_messages_per_s: float = 0.0,
        message_burst: float = 0.0,
        max_fields_per_s: float = 0.0,
        field_burst: float = 0.0,
        clock_ms: Callable[[], float] = wall_clock_ms,
        monotonic: Callable[[], float] = steady_s,
        fence: Fence | None = None,
        clock_settle_s: float = 600.0,
        max_subscriptions: int = 0,
    ):
        self.store = store
        self.fence = fence if fence is not None else Fence()
        # who may acknowledge a reset: set by the reset control (reset_id -> error text or None)
        self.on_reset_ack: Callable[[Peer, Any], str | None] = lambda peer, reset_id: "Unknown reset."
        self.pid = random_pid()
        self.new_id = wire.MessageIds(os.urandom(3).hex())
        self.max_frame_bytes = max_frame_bytes
        self.max_skew_ms = max_skew_ms
        self.max_queue_bytes = max_queue_bytes
        self.max_subscriptions = max_subscriptions  # souls and keys one peer may follow (0: no limit)
        self.max_messages_per_s = max_messages_per_s  # 0: no limit
        self.message_burst = max(message_burst, max_messages_per_s)
        self.max_fields_per_s = max_fields_per_s  # 0: no limit (a field with a SEA check counts SEA_FIELD_COST)
        self.field_burst = max(field_burst, max_fields_per_s)
        self.clock_ms = clock_ms
        self.monotonic = monotonic
        self.clock_watch = ClockWatch(clock_ms(), monotonic(), settle_s=clock_settle_s)
        self.peers: dict[str, Peer] = {}
        self.dup: DupCache[Peer] = DupCache(ttl=9.0, now=monotonic())
        self.subscriptions: Subscriptions[Peer] = Subscriptions()
        self.reads: FairQueue[Peer, _GetRead] = FairQueue()
        self.stats = RelayStats()
        self.fenced_writes = 0
        self._pending_writes: set[asyncio.Future[Any]] = set()
        self._deferred: dict[_PendingPut, asyncio.TimerHandle] = {}

    # -- connections -------------------------------------------------------------------------

    def connect(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        stats = self.stats
        stats.connections += 1
        if len(self.peers) > stats.peak_connections:
            stats.peak_connections = len(self.peers)
        peer.stats = stats
        if self.max_messages_per_s > 0:
            peer.bucket = TokenBucket(self.max_messages_per_s, self.message_burst, self.monotonic())
        if self.max_fields_per_s > 0:
            peer.field_bucket = TokenBucket(self.max_fields_per_s, self.field_burst, self.monotonic())
        peer.enqueue(wire.hello(self.new_id(), self.pid))

    def disconnect(self, peer: Peer) -> None:
        peer.closed = True
        self.peers.pop(peer.id, None)
        self.subscriptions.drop_peer(peer)
        self.reads.drop(peer)  # its queued reads go with it

    def subscription_count(self, peer: Peer) -> int:
        return self.subscriptions.count_of(peer)

    def check_clock(self) -> None:
        """Look for a step of the wall clock (the monitor calls this every few seconds)."""
        jump = self.clock_watch.observe(self.clock_ms(), self.monotonic())
        if jump is not None:
            log.warning(
                "the wall clock jumped %+.1f s; resets, rotations and TTL purges are held for %.0f s",
                jump.size_ms / 1000,
                self.clock_watch.settle_s,
            )

    def keepalive(self) -> None:
        for peer in list(self.peers.values()):
            peer.enqueue(wire.KEEPALIVE)

    # -- incoming ----------------------------------------------------------------------------

    def receive_binary(self, peer: Peer, size: int = 0) -> None:
        self.stats.bytes_in += size
        self.stats.error("binary_frame")
        peer.enqueue(wire.dam_error(self.new_id(), "Binary frames are not GUN messages; send JSON text."))

    def receive(self, peer: Peer, text: str) -> None:
        """Handle one text frame from ``peer``; never raises."""
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        self.stats.bytes_in += size
        if size > self.max_frame_bytes:
            self.stats.error("frame_too_big")
            self.stats.refuse("frame_size")
            peer.enqueue(wire.dam_error(self.new_id(), f"Message too big! The limit is {self.max_frame_bytes} bytes."))
            return
        try:
            raws = wire.parse_frame(text)
        except wire.FrameError as exc:
            self.stats.error("bad_frame")
            peer.enqueue(wire.dam_error(self.new_id(), str(exc)))
            return
        now = self.monotonic()
        bucket = peer.bucket
        if bucket is not None and not bucket.take(len(raws), now):
            self._refuse_flood(peer, raws)
            return
        for raw in raws:
            try:
                self._dispatch(peer, raw, now)
            except wire.MessageError as exc:
                self.stats.error("bad_message")
                if exc.reply_to is not None:
                    peer.enqueue(wire.error(self.new_id(), exc.reply_to, str(exc)))
                else:
                    peer.enqueue(wire.dam_error(self.new_id(), str(exc)))
            except Exception:  # a bug must cost one message, never the connection or the relay
                self.stats.error("internal")
                log.exception("failed to handle a message from %s", peer)
                msg_id = raw.get("#") if type(raw) is dict else None
                if type(msg_id) is str and msg_id:
                    peer.enqueue(wire.error(self.new_id(), msg_id, "Internal relay error; the message was not applied."))

    def _refuse_flood(self, peer: Peer, raws: list[Any]) -> None:
        """Over the peer's message rate: nothing in the frame is applied; each message that can be
        answered gets an error, so a writer's callback hears of it instead of waiting."""
        self.stats.refuse("message_rate", len(raws))
        text = f"Too many messages: the limit is {self.max_messages_per_s:g} a second per connection; nothing was applied."
        answered = False
        for raw in raws:
            msg_id = raw.get("#") if type(raw) is dict else None
            if type(msg_id) is str and msg_id and "dam" not in raw:
                peer.enqueue(wire.error(self.new_id(), msg_id, text))
                answered = True
        if not answered:
            peer.enqueue(wire.dam_error(self.new_id(), text))

    def _dispatch(self, peer: Peer, raw: Any, now: float) -> None:
        message = wire.decode(raw)
        peer.messages_in += 1
        self.stats.messages_in += 1
        msg_id = message.msg_id
        if msg_id is not None and not self.dup.track(str(msg_id), peer, now):
            return  # seen already: GUN drops duplicates silently
        kind = type(message)
        if kind is wire.Put:
            self._on_put(peer, message)  # type: ignore[arg-type]
        elif kind is wire.Get:
            self._on_get(peer, message)  # type: ignore[arg-type]
        elif kind is wire.Dam:
            self._on_dam(peer, message)  # type: ignore[arg-type]
        elif kind is wire.Reply:
            self._route_reply(peer, raw, message.reply_to)  # type: ignore[union-attr]
        # anything else: GunJS floods unknown messages to every peer; a relay has no reason to

    def _on_dam(self, peer: Peer, message: wire.Dam) -> None:
        if message.kind == RESET_ACK:
            problem = self.on_reset_ack(peer, message.raw_reset)
            if message.msg_id is not None:
                peer.enqueue(wire.dam_reply(self.new_id(), RESET_ACK, message.msg_id, problem))
            return
        if message.kind != "?":
            return  # 'hi', '!' and others need nothing from a relay
        pid = message.pid
        if type(pid) is str and len(pid) <= 64 and pid.isprintable():  # shown to operators and in logs
            peer.pid = pid
        if message.reply_to is None and message.msg_id is not None:
            peer.enqueue(wire.hello_answer(self.new_id(), self.pid, message.msg_id))

    def _route_reply(self, peer: Peer, raw: dict[str, Any], reply_to: Any) -> None:
        """A reply to another peer's message goes to that peer only (acks for our pushes end here)."""
        if type(reply_to) is not str:
            return
        origin = self.dup.origin(reply_to)
        if origin is not None and origin is not peer and not origin.closed:
            try:
                text = wire.encode(raw)
            except (TypeError, ValueError, RecursionError):  # nested past what JSON.stringify would write
                self.stats.error("unforwardable_reply")
                return
            origin.enqueue(text)

    # -- get -------------------------------------------------------------------------------

    def _on_get(self, peer: Peer, get: wire.Get) -> None:
        self.stats.gets += 1
        if get.soul is not None:
            key = get.key.exact if get.key is not None else None
            problem = self._cannot_follow(peer, get.soul, key)
            if problem is not None:
                self.stats.refuse("subscriptions")
                if get.msg_id is not None:
                    peer.enqueue(wire.error(self.new_id(), get.msg_id, problem + " This get was not served."))
                return
            self.subscriptions.subscribe(peer, get.soul, key)
        if get.msg_id is None:
            return  # nobody to answer: the subscription was all it asked for
        budget = get.budget
        if budget is None and (get.soul_lex is not None or (get.key is not None and get.key.is_query)):
            budget = reads.DEFAULT_LEX_BUDGET
        query = ReadQuery(
            soul=get.soul, soul_lex=get.soul_lex, key=get.key, budget=budget,
            max_fields=reads.MAX_FIELDS, page_bytes=reads.PAGE_BYTES, scan_limit=reads.PAGE_SCAN,
        )
        started = self.reads.add(peer, _GetRead(peer, get.msg_id, query))
        if started is None:
            self.stats.refuse("reads")
            peer.enqueue(wire.error(self.new_id(), get.msg_id, f"Too many reads waiting: a connection may queue {self.reads.max_queued}."))
            return
        self._start_reads(started)

    def _start_reads(self, started: list[tuple[Peer, _GetRead]]) -> None:
        read_page = self.store.read_page
        for _, read in started:
            read_page(read.query).add_done_callback(functools.partial(self._page_read, read))

    def _page_read(self, read: _GetRead, done: asyncio.Future[ReadPage]) -> None:
        try:
            self._answer_page(read, done)
        except Exception:  # a bug must cost one get, never the reads queued behind it
            self.stats.error("internal")
            log.exception("failed to answer a get from %s", read.peer)
        finally:
            self._start_reads(self.reads.finished())

    def _answer_page(self, read: _GetRead, done: asyncio.Future[ReadPage]) -> None:
        peer = read.peer
        if peer.closed:
            return
        if done.exception() is not None:
            self.stats.error("storage_read")
            peer.enqueue(wire.error(self.new_id(), read.msg_id, "Storage read failed; try again."))
            return
        page = done.result()
        found = page.souls
        if found and self.fence:
            found = self._served_through_fence(found)
        if found:
            read.answered = True
            graph = {
                soul: wire.node(soul, [(key, wire.Fragment(value), state) for key, value, state in rows])
                for soul, rows in found.items()
            }
            peer.enqueue(wire.data_reply(self.new_id(), read.msg_id, graph))
        query = read.query
        if page.resume is not None:
            budget = None if query.budget is None else query.budget - page.spent
            max_fields = query.max_fields - page.fields
            if (budget is None or budget > 0) and max_fields > 0:
                read.query = replace(query, after=page.resume, budget=budget, max_fields=max_fields)
                # the next page once the asker has taken most of this one in (a slow reader
                # makes its own answer wait, not the relay's memory grow)
                if peer.queued_bytes < reads.OUTBOX_ROOM:
                    self._next_page(read)
                else:
                    peer.when_drained(functools.partial(self._next_page, read))
                return
        if not read.answered:
            peer.enqueue(wire.not_found(self.new_id(), read.msg_id))

    def _next_page(self, read: _GetRead) -> None:
        if not read.peer.closed:
            self._start_reads(self.reads.add(read.peer, read, first=True) or [])

    def _cannot_follow(self, peer: Peer, soul: str, key: str | None) -> str | None:
        """Why a get may not subscribe ``peer`` (a get is a subscription), or None."""
        if len(soul) > MAX_FOLLOWED_TEXT or (key is not None and len(key) > MAX_FOLLOWED_TEXT):
            return f"Too long to follow: souls and keys a connection follows are at most {MAX_FOLLOWED_TEXT} characters."
        limit = self.max_subscriptions
        subscriptions = self.subscriptions
        if limit and subscriptions.count_of(peer) >= limit and not subscriptions.covers(peer, soul, key):
            return f"Too many subscriptions: a connection may follow {limit} souls and keys."
        return None

    def _served_through_fence(self, found: dict[str, list[Row]]) -> dict[str, list[Row]]:
        """What a get may serve: nothing fenced, even while a purge is still deleting it."""
        now = self.clock_ms()
        blocks = self.fence.blocks
        kept = {soul: [row for row in rows if blocks(soul, row[2], now, serving=True) is None] for soul, rows in found.items()}
        return {soul: rows for soul, rows in kept.items() if rows}

    # -- put -------------------------------------------------------------------------------

    def _on_put(self, peer: Peer, put: wire.Put) -> None:
        self.stats.puts += 1
        try:
            fields = fields_of_put(put.graph)
        except InvalidGraph as exc:
            self.stats.error("invalid_put")
            raise wire.MessageError(str(exc), put.msg_id) from None
        bucket = peer.field_bucket
        if bucket is not None:
            cost = len(fields) + SEA_FIELD_COST * sum(1 for item in fields if "~" in item.soul)
            if not bucket.take(cost, self.monotonic()):
                self.stats.refuse("put_fields", len(fields))
                raise wire.MessageError(
                    f"Too much to check: this put counts {cost} (a field 1, a signed field {SEA_FIELD_COST + 1}); a connection may "
                    f"put {self.max_fields_per_s:g} a second, {self.field_burst:g} at once. Nothing of it was applied.",
                    put.msg_id,
                )
        pending = _PendingPut(peer, put.msg_id)
        now = self.clock_ms()
        ready: list[Field] = []
        later: list[Field] = []
        blocklisted: list[tuple[Field, list[tuple[str, str]]]] = []
        protected = self.fence.protected
        lookups: list[tuple[str, str]] = []  # write-block entries certificates ask for (rare)
        note_lookup = _recorder(lookups)
        if self.fence:  # refuse at once what is fenced now (a read-only scope refuses even future states)
            fields = self._through_fence(pending, fields)
        for item in fields:
            if protected.contains(item.soul):
                self.stats.error("system_space")
                pending.errors.append(f"Refused: {item.soul!r} is the relay's system space; only the relay writes there.")
                continue
            timing = ham.timing(item.state, now, self.max_skew_ms)
            if timing is ham.Verdict.TOO_FAR:
                self.stats.error("future_state")
                pending.errors.append(
                    f"State {item.state} of {item.soul!r}.{item.key!r} is {item.state - now:.0f} ms ahead of the relay's "
                    f"clock (limit {self.max_skew_ms} ms); check the writer's clock."
                )
                continue
            asked = len(lookups)
            problem = sea.check_field(item.soul, item.key, item.value, item.state, now, note_lookup)
            if problem is None and len(lookups) > asked:
                blocklisted.append((item, lookups[asked:]))  # a certificate with a write-block list: look it up first
                continue
            if problem is not None:
                self.stats.error("sea")
                pending.errors.append(problem)
                continue
            (later if timing is ham.Verdict.DEFER else ready).append(item)
        if put.reply_to is not None and (ready or later):
            self._pass_on(peer, put, ready + later)
        if ready:
            self._merge(pending, ready)
        if later:
            self._defer(pending, later, now)
        if blocklisted:
            self._check_blocklists(pending, blocklisted, now)
        if pending.parts == 0:
            self._reply(pending)

    def _pass_on(self, peer: Peer, put: wire.Put, passed: list[Field]) -> None:
        """A put answering another peer's message goes on to that peer at once, with only the fields
        that passed the checks made on arrival (never the system space, bad signatures, fenced
        fields). Fields waiting for a certificate's block list are not passed on; fields waiting
        for their future state go now, as GunJS would pass them."""
        origin = self.dup.origin(str(put.reply_to))
        if origin is None or origin is peer or origin.closed:
            return
        graph = {soul: _node_of(soul, items) for soul, items in _by_soul(passed).items()}
        msg_id = put.msg_id if put.msg_id is not None else self.new_id()
        origin.enqueue(wire.encode({"#": msg_id, "@": put.reply_to, "put": graph}))

    def _defer(self, pending: _PendingPut, fields: list[Field], now: float) -> None:
        pending.parts += 1
        delay_s = (max(item.state for item in fields) - now) / 1000.0
        self._deferred[pending] = asyncio.get_running_loop().call_later(delay_s, self._apply_deferred, pending, fields)

    def _check_blocklists(self, pending: _PendingPut, items: list[tuple[Field, list[tuple[str, str]]]], now: float) -> None:
        """Certificates naming a write-block list: read the lists' entries, then check again with them."""
        wanted = sorted({lookup for _, lookups in items for lookup in lookups})
        reads = [self.store.read(ReadQuery(soul=soul, key=lexmod.Lex(exact=writer))) for soul, writer in wanted]
        pending.parts += 1

        def decide(done: asyncio.Future[list[dict[str, list[Row]]]]) -> None:
            pending.parts -= 1
            if done.exception() is not None:
                self.stats.error("storage_read")
                pending.errors.append("Storage read failed while checking a certificate's write-block list.")
            else:
                blocked = {
                    (soul, writer): any(sea.is_block_entry(decode_value(value)) for rows in found.values() for _, value, _ in rows)
                    for (soul, writer), found in zip(wanted, done.result())
                }
                ready: list[Field] = []
                later: list[Field] = []
                for item, _ in items:
                    problem = sea.check_field(
                        item.soul, item.key, item.value, item.state, now, lambda soul, writer: blocked.get((soul, writer), False)
                    )
                    if problem is None:
                        (later if item.state > now else ready).append(item)
                    else:
                        self.stats.error("sea")
                        pending.errors.append(problem)
                if ready:
                    self._merge(pending, ready)
                if later:
                    self._defer(pending, later, now)
            if pending.parts == 0:
                self._reply(pending)

        asyncio.gather(*reads).add_done_callback(decide)

    def _apply_deferred(self, pending: _PendingPut, fields: list[Field]) -> None:
        del self._deferred[pending]
        pending.parts -= 1
        self._merge(pending, fields)
        if pending.parts == 0:
            self._reply(pending)

    def _merge(self, pending: _PendingPut, fields: list[Field]) -> None:
        # every path to storage passes here (fresh, deferred, certificate-checked writes): check
        # again if the fence changed since the put was checked (a reset issued in between)
        if self.fence and pending.fence_version != self.fence.version:
            fields = self._through_fence(pending, fields)
            if not fields:
                return
        pending.parts += 1
        future = self.store.merge(fields)
        self._pending_writes.add(future)
        future.add_done_callback(lambda done: self._merged(pending, done))

    def _through_fence(self, pending: _PendingPut, fields: list[Field]) -> list[Field]:
        fence = self.fence
        now = self.clock_ms()
        ceiling = fence.ceiling(now)
        pending.fence_version = fence.version
        passed = []
        refused = 0
        for item in fields:
            if item.state > ceiling:  # newer than every watermark: no rule can refuse it
                passed.append(item)
                continue
            rule = fence.blocks(item.soul, item.state, now)
            if rule is None:
                passed.append(item)
                continue
            refused += 1
            pending.errors.append(fence_error(rule, item.state, now))
            if refused == 1:
                example = item.soul
        if refused:
            self.stats.error("fenced")
            self.fenced_writes += refused
            peer = pending.peer
            log.info("fenced %d stale field(s) from peer %s at %s (pid %s), e.g. %r", refused, peer.id, peer.address, peer.pid, example)
        return passed

    def _merged(self, pending: _PendingPut, done: asyncio.Future[list[Field]]) -> None:
        self._pending_writes.discard(done)
        pending.parts -= 1
        exc = done.exception()
        if exc is not None:
            self.stats.error("storage_write")
            why = str(exc) if isinstance(exc, StorageFailure) else type(exc).__name__
            pending.errors.append(f"Storage write failed ({why}); nothing of it was acknowledged, send it again later.")
        else:
            self._fan_out(pending.peer, done.result())
        if pending.parts == 0:
            self._reply(pending)

    def _reply(self, pending: _PendingPut) -> None:
        if pending.msg_id is None or pending.peer.closed:
            return
        if pending.errors:
            text = pending.errors[0] if len(pending.errors) == 1 else "; ".join(dict.fromkeys(pending.errors))
            pending.peer.enqueue(wire.error(self.new_id(), pending.msg_id, text))
        else:
            self.stats.acks += 1
            pending.peer.enqueue(wire.ack(self.new_id(), pending.msg_id))

    def _fan_out(self, writer: Peer | None, accepted: list[Field]) -> None:
        if not accepted:
            return
        now = self.monotonic()
        for soul, items in _by_soul(accepted).items():
            whole: str | None = None
            for peer, keys in self.subscriptions.audience(soul, (item.key for item in items)):
                if peer.closed:
                    continue
                if keys is None:
                    if whole is None:
                        whole = self._push_message(soul, items, now)
                    peer.enqueue(whole)
                else:
                    peer.enqueue(self._push_message(soul, [i for i in items if i.key in keys], now))

    def _push_message(self, soul: str, items: list[Field], now: float) -> str:
        msg_id = self.new_id()
        self.dup.track(msg_id, None, now)  # our own: drop it if a peer echoes it back
        return wire.push(msg_id, {soul: _node_of(soul, items)})

    # -- the relay's own writes ------------------------------------------------------------

    async def publish(self, fields: list[Field]) -> list[Field]:
        """Write the relay's own fields (records it signed, legacy nodes): no peer checks, but
        durable before returning and pushed to subscribers like any accepted write."""
        accepted = await self.store.merge(fields)
        self._fan_out(None, accepted)
        return accepted

    # -- shutdown --------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait for every write already submitted to storage (deferred writes not yet due are dropped unacked)."""
        for handle in self._deferred.values():
            handle.cancel()
        self._deferred.clear()
        if self._pending_writes:
            await asyncio.gather(*list(self._pending_writes), return_exceptions=True)
