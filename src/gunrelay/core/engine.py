"""The relay engine: GUN's relay protocol with no I/O, as h11 and python-websockets keep theirs.

Theory of operation. The engine is told what happens -- a connection opened (``connect``), a
frame arrived on it (``receive``), the store answered a read (``page_read``, ``looked_up``) or a
write (``merged``), a deferred write is due (``due``), the relay wrote fields of its own
(``published``) -- always with the time (``Now``). It answers by queueing effects (``take``):
``Send`` a frame's text to a link, ``Read`` a page, ``Merge`` fields, ``Defer`` fields until a
time, ``LookUp`` write-block entries, ``ReadWhenRoom`` (the next page once the asker has room),
``Fenced`` (stale fields refused: for the log), ``Failed`` (a bug cost one message: for the log).
The server (``server.relay``) carries them out over sockets, the store and timers and reports
back; the engine never blocks, sleeps, or reads a clock.

The rules, in the order a frame meets them:

- A frame over ``max_frame_bytes``, or not JSON, gets a ``dam`` error. A connection over its
  message rate gets an error for each message and nothing is applied.
- Every message is deduplicated by id (``core.dup``), which also remembers the link each id came
  from, so that a reply (``@``) is routed to that link only.
- A get subscribes the link to the soul or key (``core.subscriptions``) and is answered only to
  the link that asked, from the store a page at a time (``core.reads``: lex queries without
  ``%`` get RAD's budget, pages are bounded, connections take turns, a connection that goes
  away takes its queued reads with it): a reply with ``put`` per page with data, or one reply
  without ``put`` when there is none, so ``once()`` always completes. Fenced rows are never
  served, even before a purge deletes them.
- A put is validated as a whole (``core.graph``) and charged against the link's field budget (a
  field in user space weighs ``SEA_FIELD_COST`` more, for its signature check); each field then
  goes through admission (``core.admission``: fence, system space, HAM's timing, SEA). What
  passes is merged by the store (HAM against the stored state), at once or when its state is
  reached; a write that reaches the store later is judged by the fence again if it changed.
  Once every part is durable the writer gets one reply: ``ok`` (also when HAM kept the stored
  value, so callbacks never hang) or ``err`` naming what was refused; and the fields that changed
  the store are pushed to their subscribers (the writer only if it subscribed). A put answering
  another peer's get goes on to that peer at once, with only the fields that passed.
- ``{"dam": "?"}`` is answered with the relay's pid and its state clock (``clock``, also in the
  greeting: clients date their first contact by it); ``{"dam": "reset-ack"}`` asks
  ``acknowledge`` (the reset control's) and is answered ``ok`` or ``err``.

The fence is read through the ``FenceView`` given at construction; only its owner changes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from . import admission as admit
from . import reads, wire
from .admission import Admission, Lookup
from .dup import DupCache
from .fence import FenceView
from .graph import Field, InvalidGraph, fields_of_put
from .limits import TokenBucket
from .link import Link
from .reads import FairQueue, ReadPage, ReadQuery, Row
from .subscriptions import MAX_FOLLOWED_TEXT, Subscriptions

# What a field in user space ('~' souls: a SEA signature to verify, about 130 us) costs against a
# connection's field budget beyond the 1 every field costs (about 5 us of validation and checks).
SEA_FIELD_COST = 25

RESET_ACK = "reset-ack"  # {"dam": "reset-ack", "reset": <reset_id>}: a client says it has cleared itself


class Now(NamedTuple):
    """The time, as the engine is told it: the state clock (ms since the epoch, for HAM, SEA and
    the fence) and a steady clock (seconds that only go forward, for rates and dedup)."""

    wall_ms: float
    steady_s: float


@dataclass
class Limits:
    max_frame_bytes: int = 16 * 1024 * 1024
    max_skew_ms: float = 120_000
    max_messages_per_s: float = 0.0  # 0: no limit
    message_burst: float = 0.0
    max_fields_per_s: float = 0.0  # 0: no limit (a field with a SEA check counts 1 + SEA_FIELD_COST)
    field_burst: float = 0.0
    max_subscriptions: int = 0  # souls and keys one link may follow (0: no limit)

    def __post_init__(self) -> None:
        self.message_burst = max(self.message_burst, self.max_messages_per_s)
        self.field_burst = max(self.field_burst, self.max_fields_per_s)


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
    open_links: int = 0
    peak_connections: int = 0
    fenced_writes: int = 0  # fields refused by a reset's fence, a rotation or a TTL rule
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count (messages answered with an error)
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count (connections and messages refused by a limit)

    def error(self, kind: str, count: int = 1) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + count

    def refuse(self, reason: str, count: int = 1) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + count


# -- jobs: what the engine waits for ----------------------------------------------------------


class GetRead:
    """One get being answered, a page at a time."""

    __slots__ = ("link", "msg_id", "query", "answered")

    def __init__(self, link: Link, msg_id: Any, query: ReadQuery):
        self.link = link
        self.msg_id = msg_id
        self.query = query
        self.answered = False  # a page with data was sent


class PutJob:
    """One put message waiting for its parts (now, deferred, certificate-checked) to be durable."""

    __slots__ = ("link", "msg_id", "errors", "parts", "fence_version")

    def __init__(self, link: Link | None, msg_id: Any):
        self.link = link
        self.msg_id = msg_id
        self.errors: list[str] = []
        self.parts = 0
        self.fence_version = -1  # the fence its fields were judged against


# -- effects: what the engine asks to be done -------------------------------------------------


@dataclass(slots=True)
class Send:
    link: Link
    text: str


@dataclass(slots=True)
class Read:
    """Read one page of ``job.query``; report with ``page_read``."""

    job: GetRead


@dataclass(slots=True)
class ReadWhenRoom:
    """Call ``next_page(job)`` once the asker's outbox has room for another page."""

    job: GetRead


@dataclass(slots=True)
class Merge:
    """Merge ``fields`` by HAM, durably; report with ``merged``."""

    job: PutJob
    fields: list[Field]


@dataclass(slots=True)
class Defer:
    """Call ``due(job, fields)`` once the state clock reaches ``at_ms``."""

    job: PutJob
    fields: list[Field]
    at_ms: float


@dataclass(slots=True)
class LookUp:
    """Read the fields ``(soul, key)`` of ``wanted``; report with ``looked_up``."""

    job: PutJob
    waiting: list[tuple[Field, list[Lookup]]]
    wanted: list[Lookup]


@dataclass(slots=True)
class Fenced:
    """Stale fields from ``link`` were refused by the fence (for the log)."""

    link: Link
    count: int
    example: str


@dataclass(slots=True)
class Failed:
    """Handling a message from ``link`` raised: a bug, which cost that message only (for the log)."""

    link: Link
    error: BaseException


Effect = Send | Read | ReadWhenRoom | Merge | Defer | LookUp | Fenced | Failed


def _by_soul(fields: list[Field]) -> dict[str, list[Field]]:
    grouped: dict[str, list[Field]] = {}
    for item in fields:
        grouped.setdefault(item.soul, []).append(item)
    return grouped


def _node_of(soul: str, items: list[Field]) -> dict[str, Any]:
    return wire.node(soul, [(i.key, i.value, i.state) for i in items])


def _no_acks(link: Link, reset_id: Any) -> str | None:
    return "Unknown reset."


class RelayEngine:
    def __init__(
        self,
        fence: FenceView,
        *,
        pid: str,
        new_id: Callable[[], str],
        limits: Limits | None = None,
        acknowledge: Callable[[Link, Any], str | None] | None = None,
        now: Now = Now(0.0, 0.0),
        stats: RelayStats | None = None,
    ):
        self.fence = fence
        self.pid = pid
        self.new_id = new_id
        self.limits = limits or Limits()
        # (link, reset_id) -> why the acknowledgement is refused, or None: the reset control's (none: no resets known)
        self.acknowledge = acknowledge if acknowledge is not None else _no_acks
        self.stats = stats or RelayStats()
        self.dup: DupCache[Link] = DupCache(ttl=9.0, now=now.steady_s)
        self.subscriptions: Subscriptions[Link] = Subscriptions()
        self.reads: FairQueue[Link, GetRead] = FairQueue()
        self._effects: list[Effect] = []

    def take(self) -> list[Effect]:
        """The effects queued since the last call, in order."""
        effects, self._effects = self._effects, []
        return effects

    def _send(self, link: Link, text: str) -> None:
        self._effects.append(Send(link, text))

    # -- connections -------------------------------------------------------------------------

    def connect(self, link: Link, now: Now) -> None:
        stats = self.stats
        stats.connections += 1
        stats.open_links += 1
        if stats.open_links > stats.peak_connections:
            stats.peak_connections = stats.open_links
        self._send(link, wire.hello(self.new_id(), self.pid, now.wall_ms))

    def disconnect(self, link: Link) -> None:
        if not link.closed:
            link.closed = True
        self.stats.open_links -= 1
        self.subscriptions.drop_peer(link)
        self.reads.drop(link)  # its queued reads go with it

    def keepalive(self, links: list[Link]) -> None:
        for link in links:
            self._send(link, wire.KEEPALIVE)

    # -- incoming ----------------------------------------------------------------------------

    def receive_binary(self, link: Link, size: int) -> None:
        self.stats.bytes_in += size
        self.stats.error("binary_frame")
        self._send(link, wire.dam_error(self.new_id(), "Binary frames are not GUN messages; send JSON text."))

    def receive(self, link: Link, text: str, now: Now) -> None:
        """One text frame from ``link``; never raises."""
        stats = self.stats
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        stats.bytes_in += size
        limit = self.limits.max_frame_bytes
        if size > limit:
            stats.error("frame_too_big")
            stats.refuse("frame_size")
            self._send(link, wire.dam_error(self.new_id(), f"Message too big! The limit is {limit} bytes."))
            return
        try:
            raws = wire.parse_frame(text)
        except wire.FrameError as exc:
            stats.error("bad_frame")
            self._send(link, wire.dam_error(self.new_id(), str(exc)))
            return
        bucket = link.bucket
        if bucket is None and self.limits.max_messages_per_s > 0:  # made on first use: idle links stay small
            limits = self.limits
            bucket = link.bucket = TokenBucket(limits.max_messages_per_s, limits.message_burst, now.steady_s)
        if bucket is not None and not bucket.take(len(raws), now.steady_s):
            self._refuse_flood(link, raws)
            return
        for raw in raws:
            try:
                self._dispatch(link, raw, now)
            except wire.MessageError as exc:
                stats.error("bad_message")
                if exc.reply_to is not None:
                    self._send(link, wire.error(self.new_id(), exc.reply_to, str(exc)))
                else:
                    self._send(link, wire.dam_error(self.new_id(), str(exc)))
            except Exception as exc:  # a bug must cost one message, never the connection or the relay
                stats.error("internal")
                self._effects.append(Failed(link, exc))
                msg_id = wire.id_of(raw)
                if msg_id is not None:
                    self._send(link, wire.error(self.new_id(), msg_id, "Internal relay error; the message was not applied."))

    def _refuse_flood(self, link: Link, raws: list[Any]) -> None:
        """Over the link's message rate: nothing in the frame is applied; each message that can be
        answered gets an error, so a writer's callback hears of it instead of waiting."""
        self.stats.refuse("message_rate", len(raws))
        text = f"Too many messages: the limit is {self.limits.max_messages_per_s:g} a second per connection; nothing was applied."
        answered = False
        for raw in raws:
            msg_id = wire.id_of(raw)
            if msg_id is not None and not wire.is_dam(raw):
                self._send(link, wire.error(self.new_id(), msg_id, text))
                answered = True
        if not answered:
            self._send(link, wire.dam_error(self.new_id(), text))

    def _dispatch(self, link: Link, raw: Any, now: Now) -> None:
        message = wire.decode(raw)
        link.messages_in += 1
        self.stats.messages_in += 1
        msg_id = message.msg_id
        if msg_id is not None and not self.dup.track(str(msg_id), link, now.steady_s):
            return  # seen already: GUN drops duplicates silently
        kind = type(message)
        if kind is wire.Put:
            self._on_put(link, message, now)  # type: ignore[arg-type]
        elif kind is wire.Get:
            self._on_get(link, message)  # type: ignore[arg-type]
        elif kind is wire.Dam:
            self._on_dam(link, message, now)  # type: ignore[arg-type]
        elif kind is wire.Reply:
            self._route_reply(link, raw, message.reply_to)  # type: ignore[union-attr]
        # anything else: GunJS floods unknown messages to every peer; a relay has no reason to

    def _on_dam(self, link: Link, message: wire.Dam, now: Now) -> None:
        if message.kind == RESET_ACK:
            problem = self.acknowledge(link, message.raw_reset)
            if message.msg_id is not None:
                self._send(link, wire.dam_reply(self.new_id(), RESET_ACK, message.msg_id, problem))
            return
        if message.kind != "?":
            return  # 'hi', '!' and others need nothing from a relay
        pid = message.pid
        if type(pid) is str and len(pid) <= 64 and pid.isprintable():  # shown to operators and in logs
            link.pid = pid
        if message.reply_to is None and message.msg_id is not None:
            self._send(link, wire.hello_answer(self.new_id(), self.pid, message.msg_id, now.wall_ms))

    def _route_reply(self, link: Link, raw: dict[str, Any], reply_to: Any) -> None:
        """A reply to another link's message goes to that link only (acks for our pushes end here)."""
        if type(reply_to) is not str:
            return
        origin = self.dup.origin(reply_to)
        if origin is not None and origin is not link and not origin.closed:
            try:
                text = wire.encode(raw)
            except (TypeError, ValueError, RecursionError):  # nested past what JSON.stringify would write
                self.stats.error("unforwardable_reply")
                return
            self._send(origin, text)

    # -- get -------------------------------------------------------------------------------

    def _on_get(self, link: Link, get: wire.Get) -> None:
        self.stats.gets += 1
        if get.soul is not None:
            key = get.key.exact if get.key is not None else None
            problem = self._cannot_follow(link, get.soul, key)
            if problem is not None:
                self.stats.refuse("subscriptions")
                if get.msg_id is not None:
                    self._send(link, wire.error(self.new_id(), get.msg_id, problem + " This get was not served."))
                return
            self.subscriptions.subscribe(link, get.soul, key)
        if get.msg_id is None:
            return  # nobody to answer: the subscription was all it asked for
        budget = get.budget
        if budget is None and (get.soul_lex is not None or (get.key is not None and get.key.is_query)):
            budget = reads.DEFAULT_LEX_BUDGET
        query = ReadQuery(
            soul=get.soul, soul_lex=get.soul_lex, key=get.key, budget=budget,
            max_fields=reads.MAX_FIELDS, page_bytes=reads.PAGE_BYTES, scan_limit=reads.PAGE_SCAN,
        )
        started = self.reads.add(link, GetRead(link, get.msg_id, query))
        if started is None:
            self.stats.refuse("reads")
            self._send(link, wire.error(self.new_id(), get.msg_id, f"Too many reads waiting: a connection may queue {self.reads.max_queued}."))
            return
        self._start_reads(started)

    def _start_reads(self, started: list[tuple[Link, GetRead]]) -> None:
        effects = self._effects
        for _, job in started:
            effects.append(Read(job))

    def _cannot_follow(self, link: Link, soul: str, key: str | None) -> str | None:
        """Why a get may not subscribe ``link`` (a get is a subscription), or None."""
        if len(soul) > MAX_FOLLOWED_TEXT or (key is not None and len(key) > MAX_FOLLOWED_TEXT):
            return f"Too long to follow: souls and keys a connection follows are at most {MAX_FOLLOWED_TEXT} characters."
        limit = self.limits.max_subscriptions
        subscriptions = self.subscriptions
        if limit and subscriptions.count_of(link) >= limit and not subscriptions.covers(link, soul, key):
            return f"Too many subscriptions: a connection may follow {limit} souls and keys."
        return None

    def page_read(self, job: GetRead, page: ReadPage | None, now: Now) -> None:
        """The store answered one page of ``job`` (None: the read failed)."""
        try:
            self._answer_page(job, page, now)
        finally:
            self._start_reads(self.reads.finished())

    def _answer_page(self, job: GetRead, page: ReadPage | None, now: Now) -> None:
        link = job.link
        if link.closed:
            return
        if page is None:
            self.stats.error("storage_read")
            self._send(link, wire.error(self.new_id(), job.msg_id, "Storage read failed; try again."))
            return
        found = page.souls
        if found and self.fence:
            found = self._served_through_fence(found, now.wall_ms)
        if found:
            job.answered = True
            graph = {
                soul: wire.node(soul, [(key, wire.Fragment(value), state) for key, value, state in rows])
                for soul, rows in found.items()
            }
            self._send(link, wire.data_reply(self.new_id(), job.msg_id, graph))
        query = job.query
        if page.resume is not None:
            budget = None if query.budget is None else query.budget - page.spent
            max_fields = query.max_fields - page.fields
            if (budget is None or budget > 0) and max_fields > 0:
                # the next page once the asker has taken most of this one in (a slow reader
                # makes its own answer wait, not the relay's memory grow)
                job.query = replace(query, after=page.resume, budget=budget, max_fields=max_fields)
                self._effects.append(ReadWhenRoom(job))
                return
        if not job.answered:
            self._send(link, wire.not_found(self.new_id(), job.msg_id))

    def next_page(self, job: GetRead) -> None:
        """The asker has room: queue the next page of ``job`` ahead of its other reads."""
        if not job.link.closed:
            self._start_reads(self.reads.add(job.link, job, first=True) or [])

    def _served_through_fence(self, found: dict[str, list[Row]], now_ms: float) -> dict[str, list[Row]]:
        """What a get may serve: nothing fenced, even while a purge is still deleting it."""
        blocks = self.fence.blocks
        kept = {soul: [row for row in rows if blocks(soul, row[2], now_ms, serving=True) is None] for soul, rows in found.items()}
        return {soul: rows for soul, rows in kept.items() if rows}

    # -- put -------------------------------------------------------------------------------

    def _on_put(self, link: Link, put: wire.Put, now: Now) -> None:
        stats = self.stats
        stats.puts += 1
        try:
            fields = fields_of_put(put.graph)
        except InvalidGraph as exc:
            stats.error("invalid_put")
            raise wire.MessageError(str(exc), put.msg_id) from None
        bucket = link.field_bucket
        if bucket is None and self.limits.max_fields_per_s > 0:
            limits = self.limits
            bucket = link.field_bucket = TokenBucket(limits.max_fields_per_s, limits.field_burst, now.steady_s)
        if bucket is not None:
            cost = len(fields) + SEA_FIELD_COST * sum(1 for item in fields if "~" in item.soul)
            if not bucket.take(cost, now.steady_s):
                stats.refuse("put_fields", len(fields))
                limits = self.limits
                raise wire.MessageError(
                    f"Too much to check: this put counts {cost} (a field 1, a signed field {SEA_FIELD_COST + 1}); a connection may "
                    f"put {limits.max_fields_per_s:g} a second, {limits.field_burst:g} at once. Nothing of it was applied.",
                    put.msg_id,
                )
        job = PutJob(link, put.msg_id)
        job.fence_version = self.fence.version
        judged = admit.admit(fields, now.wall_ms, self.fence, self.limits.max_skew_ms)
        self._note_refusals(job, judged)
        if put.reply_to is not None and (judged.ready or judged.later):
            self._pass_on(link, put, judged.passed)
        self._carry_on(job, judged, now)
        if job.parts == 0:
            self._reply(job)

    def _note_refusals(self, job: PutJob, judged: Admission) -> None:
        if not judged.refused:
            return
        stats = self.stats
        for kind, text in judged.refused:
            stats.error(kind)
            job.errors.append(text)
        if judged.fenced:
            stats.fenced_writes += len(judged.fenced)
            if job.link is not None:
                self._effects.append(Fenced(job.link, len(judged.fenced), judged.fenced[0].soul))

    def _carry_on(self, job: PutJob, judged: Admission, now: Now) -> None:
        """Merge what is ready, defer what waits for its state, look up what a certificate needs."""
        if judged.ready:
            self._merge(job, judged.ready, now)
        if judged.later:
            job.parts += 1
            self._effects.append(Defer(job, judged.later, max(item.state for item in judged.later)))
        if judged.lookups:
            job.parts += 1
            self._effects.append(LookUp(job, judged.lookups, admit.wanted_lookups(judged.lookups)))

    def _pass_on(self, link: Link, put: wire.Put, passed: list[Field]) -> None:
        """A put answering another link's message goes on to that link at once, with only the
        fields that passed the checks made on arrival (never the system space, bad signatures,
        fenced fields). Fields waiting for a certificate's block list are not passed on; fields
        waiting for their future state go now, as GunJS would pass them."""
        origin = self.dup.origin(str(put.reply_to))
        if origin is None or origin is link or origin.closed:
            return
        graph = {soul: _node_of(soul, items) for soul, items in _by_soul(passed).items()}
        msg_id = put.msg_id if put.msg_id is not None else self.new_id()
        self._send(origin, wire.data_reply(msg_id, put.reply_to, graph))

    def looked_up(self, job: PutJob, effect: LookUp, found: list[dict[str, list[Row]]] | None, now: Now) -> None:
        """The write-block entries ``effect`` asked for (one result per wanted entry; None: the
        read failed): judge the waiting fields again."""
        job.parts -= 1
        if found is None:
            self.stats.error("storage_read")
            job.errors.append("Storage read failed while checking a certificate's write-block list.")
        else:
            judged = admit.recheck(effect.waiting, admit.blocked(effect.wanted, found), now.wall_ms)
            self._note_refusals(job, judged)
            self._carry_on(job, judged, now)
        if job.parts == 0:
            self._reply(job)

    def due(self, job: PutJob, fields: list[Field], now: Now) -> None:
        """The state of deferred ``fields`` is reached: merge them."""
        job.parts -= 1
        self._merge(job, fields, now)
        if job.parts == 0:
            self._reply(job)

    def _merge(self, job: PutJob, fields: list[Field], now: Now) -> None:
        # every path to storage passes here (fresh, deferred, certificate-checked writes): judge
        # again if the fence changed since the put was judged (a reset issued in between)
        fence = self.fence
        if fence and job.fence_version != fence.version:
            job.fence_version = fence.version
            judged = Admission()
            fields = admit.through_fence(fields, fence, now.wall_ms, judged)
            self._note_refusals(job, judged)
            if not fields:
                return
        job.parts += 1
        self._effects.append(Merge(job, fields))

    def merged(self, job: PutJob, accepted: list[Field] | None, now: Now, failure: str = "") -> None:
        """The store made ``accepted`` durable (the fields that changed it), or failed (None, why)."""
        job.parts -= 1
        if accepted is None:
            self.stats.error("storage_write")
            job.errors.append(f"Storage write failed ({failure}); nothing of it was acknowledged, send it again later.")
        else:
            self._fan_out(accepted, now.steady_s)
        if job.parts == 0:
            self._reply(job)

    def _reply(self, job: PutJob) -> None:
        link = job.link
        if job.msg_id is None or link is None or link.closed:
            return
        if job.errors:
            errors = job.errors
            text = errors[0] if len(errors) == 1 else "; ".join(dict.fromkeys(errors))
            self._send(link, wire.error(self.new_id(), job.msg_id, text))
        else:
            self.stats.acks += 1
            self._send(link, wire.ack(self.new_id(), job.msg_id))

    def _fan_out(self, accepted: list[Field], now_s: float) -> None:
        if not accepted:
            return
        for soul, items in _by_soul(accepted).items():
            whole: str | None = None
            for link, keys in self.subscriptions.audience(soul, (item.key for item in items)):
                if link.closed:
                    continue
                if keys is None:
                    if whole is None:
                        whole = self._push_message(soul, items, now_s)
                    self._send(link, whole)
                else:
                    self._send(link, self._push_message(soul, [i for i in items if i.key in keys], now_s))

    def _push_message(self, soul: str, items: list[Field], now_s: float) -> str:
        msg_id = self.new_id()
        self.dup.track(msg_id, None, now_s)  # our own: drop it if a peer echoes it back
        return wire.push(msg_id, {soul: _node_of(soul, items)})

    # -- the relay's own writes ------------------------------------------------------------

    def published(self, accepted: list[Field], now: Now) -> None:
        """The relay wrote ``accepted`` itself (records it signed, legacy nodes): push them to
        their subscribers like any accepted write."""
        self._fan_out(accepted, now.steady_s)
