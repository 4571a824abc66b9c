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

The mesh. A relay link (``Link.relay``: a relay this one dialled, or one that greeted with
``"mesh"``) is a peer like any other for everything above, plus:

- a write (a put that answers nothing) goes on to every relay link but the one it came from as
  soon as it is admitted, before it is durable here, with its own id and only the fields that
  passed (as GunJS floods it); fields a certificate check held back go on once checked, with a
  fresh id. The id ends loops: a write that comes back around a ring is a duplicate and dropped,
  and each relay pushes to its own subscribers only what changed its store, so no client sees a
  write twice. The relay's own writes go to relay links once durable. Relay links are not also
  served by their subscriptions;
- a get (from anyone) also goes to every other relay link, with its own id, so a relay that does
  not hold a soul asks the ones that may. Their data answers are admitted like any put (then
  stored and passed on to the asker, ``_pass_on``); their "not found" answers end here. The
  asker's own "not found" waits until every relay link asked has answered or ``PEER_WAIT_S``
  passed (``AwaitPeers``, then ``peers_silent``), so ``once()`` does not settle before the mesh
  has had its say;
- a relay link whose peer turns out to be this relay (its pid is ours), or a second link to a
  relay already linked, is dropped (``Drop``);
- a link this relay dialled carries a whole relay's writes, so the message and field rates do not
  apply to it (the operator chose that peer); the frame size limit and the slow-reader limit do.
  A relay that dialled in is limited like any client;
- catch-up: a gunrelay's greeting names it (its SEA pub); once a relay link is known that way
  (``RelayLinked``) the server asks it for its change stream after the cursor it holds for that
  relay (``ask_changes``: ``{"dam": "changes", "since": n}``). The asked side reads its stream
  (``ReadChanges``, then ``changes_read``) and answers one page: the fields (fenced ones left out)
  as a put answering the request, with the cursor to go on from and whether more was waiting. A
  page is admitted like any put (not held to the field rate: it was asked for, one at a time) and,
  once durable, what changed the store goes on to the other relay links and ``CaughtUp`` tells
  the server to keep the cursor and ask for the next page.

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

# How long a get's "not found" waits for the relays it was forwarded to (a relay link that does
# not answer at all, as an AXE relay without the soul may not, costs the asker this much at most).
PEER_WAIT_S = 1.5

CHANGES_PAGE = 2000  # change stream entries a relay of the mesh gets per page of a catch-up

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

    __slots__ = ("link", "msg_id", "query", "answered", "asked", "read_done")

    def __init__(self, link: Link, msg_id: Any, query: ReadQuery):
        self.link = link
        self.msg_id = msg_id
        self.query = query
        self.answered = False  # a page with data was sent
        self.asked: list[Link] | None = None  # relay links the get went on to that have not answered yet
        self.read_done = False  # the store's pages are all read


class PutJob:
    """One put message waiting for its parts (now, deferred, certificate-checked) to be durable."""

    __slots__ = ("link", "msg_id", "errors", "parts", "fence_version", "catch_up", "stored")

    def __init__(self, link: Link | None, msg_id: Any):
        self.link = link
        self.msg_id = msg_id
        self.errors: list[str] = []
        self.parts = 0
        self.fence_version = -1  # the fence its fields were judged against
        self.catch_up: tuple[int, bool] | None = None  # a page of a relay's change stream: (cursor, done)
        self.stored = True  # no part failed to reach the store


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
class AwaitPeers:
    """Call ``peers_silent(job)`` after ``wait_s`` seconds (the relay links a get went on to)."""

    job: GetRead
    wait_s: float


@dataclass(slots=True)
class RelayLinked:
    """``link`` turned out to be a relay of the mesh (dialled, or greeted with "mesh"): the
    server sends it the reset records this relay holds, before anything else it has to say."""

    link: Link


@dataclass(slots=True)
class ReadChanges:
    """Read our change stream after ``since`` for relay ``link`` (its request ``msg_id``); report with ``changes_read``."""

    link: Link
    msg_id: str
    since: int


@dataclass(slots=True)
class CaughtUp:
    """Relay ``link``'s change stream up to ``cursor`` is durable here; ``done``: nothing more was waiting."""

    link: Link
    cursor: int
    done: bool


@dataclass(slots=True)
class Drop:
    """Close ``link``: it is not wanted (a link to this relay itself, or a second one to a peer)."""

    link: Link
    reason: str


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


Effect = Send | Read | ReadWhenRoom | Merge | Defer | LookUp | AwaitPeers | RelayLinked | ReadChanges | CaughtUp | Drop | Fenced | Failed


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
        relay_pub: str = "",
        limits: Limits | None = None,
        acknowledge: Callable[[Link, Any], str | None] | None = None,
        now: Now = Now(0.0, 0.0),
        stats: RelayStats | None = None,
    ):
        self.fence = fence
        self.pid = pid
        self.relay_pub = relay_pub  # this relay's SEA pub: how relays of the mesh know each other
        self.new_id = new_id
        self.limits = limits or Limits()
        # (link, reset_id) -> why the acknowledgement is refused, or None: the reset control's (none: no resets known)
        self.acknowledge = acknowledge if acknowledge is not None else _no_acks
        self.stats = stats or RelayStats()
        self.dup: DupCache[Link] = DupCache(ttl=9.0, now=now.steady_s)
        self.subscriptions: Subscriptions[Link] = Subscriptions()
        self.reads: FairQueue[Link, GetRead] = FairQueue()
        self.relay_links: list[Link] = []  # open links to relays of the mesh
        self._asked: dict[str, GetRead] = {}  # gets sent on to relay links, by id, until they answer
        self._catching_up: dict[str, Link] = {}  # our requests for a relay's change stream, by id
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
        if link.relay:
            self.relay_links.append(link)
            self._send(link, wire.relay_hello(self.new_id(), self.pid, self.relay_pub))
        else:
            self._send(link, wire.hello(self.new_id(), self.pid, now.wall_ms))

    def disconnect(self, link: Link) -> None:
        if not link.closed:
            link.closed = True
        self.stats.open_links -= 1
        self.subscriptions.drop_peer(link)
        self.reads.drop(link)  # its queued reads go with it
        if link.relay and link in self.relay_links:
            self.relay_links.remove(link)
            for msg_id, job in list(self._asked.items()):  # it will not answer now
                self._peer_answered(msg_id, job, link)
            for msg_id in [m for m, asked in self._catching_up.items() if asked is link]:
                del self._catching_up[msg_id]

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
        if bucket is None and self.limits.max_messages_per_s > 0 and not link.dialled:  # made on first use: idle links stay small
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
            self._on_put(link, message, now, raw)  # type: ignore[arg-type]
        elif kind is wire.Get:
            self._on_get(link, message, raw)  # type: ignore[arg-type]
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
        if message.kind == wire.CHANGES:
            self._on_changes_request(link, message)
            return
        if message.kind != "?":
            return  # 'hi', '!' and others need nothing from a relay
        pid = message.pid
        named = False
        if type(pid) is str and len(pid) <= 64 and pid.isprintable():  # shown to operators and in logs
            link.pid = pid
            if message.mesh is not None:  # a relay of the mesh: one that dialled us, or answers ours
                if not link.relay:
                    link.relay = True
                    self.relay_links.append(link)
                if self._unwanted_relay(link, pid):
                    return
                pub = message.relay_pub
                if link.relay_pub is None and type(pub) is str and 0 < len(pub) <= 200 and pub.isprintable():
                    link.relay_pub = pub
                    named = True
            elif link.relay and self._unwanted_relay(link, pid):
                return
        if message.reply_to is None and message.msg_id is not None:
            if link.relay:
                self._send(link, wire.relay_hello_answer(self.new_id(), self.pid, message.msg_id, self.relay_pub))
            else:
                self._send(link, wire.hello_answer(self.new_id(), self.pid, message.msg_id, now.wall_ms))
        if named:  # after our answer: the peer knows who we are before anything we then ask of it
            self._effects.append(RelayLinked(link))

    # -- catch-up: change streams between relays of the mesh ---------------------------------

    def _on_changes_request(self, link: Link, message: wire.Dam) -> None:
        if message.msg_id is None:
            return
        since = message.since
        if link.relay_pub is None:
            self._send(link, wire.error(self.new_id(), message.msg_id, "Only a relay of the mesh may read the change stream."))
        elif type(since) is not int or since < 0:
            self._send(link, wire.error(self.new_id(), message.msg_id, "'since' must be a whole number from 0."))
        else:
            self._effects.append(ReadChanges(link, str(message.msg_id), since))

    def changes_read(self, effect: ReadChanges, rows: list[tuple[str, str, str, float]] | None, cursor: int, done: bool, now: Now) -> None:
        """The store read a page of our change stream for ``effect`` (None: the read failed):
        (soul, key, value as JSON text, state) rows, the cursor after them, and whether that was all."""
        link = effect.link
        if link.closed:
            return
        if rows is None:
            self.stats.error("storage_read")
            self._send(link, wire.error(self.new_id(), effect.msg_id, "Storage read failed; ask again."))
            return
        found: dict[str, list[Row]] = {}
        for soul, key, value, state in rows:
            found.setdefault(soul, []).append((key, value, state))
        if found and self.fence:
            found = self._served_through_fence(found, now.wall_ms)  # a reset since the read: never sent
        graph = {
            soul: wire.node(soul, [(key, wire.Fragment(value), state) for key, value, state in items]) for soul, items in found.items()
        }
        self._send(link, wire.changes_page(self.new_id(), effect.msg_id, graph, cursor, done))

    def ask_changes(self, link: Link, since: int, now: Now) -> None:
        """Ask relay ``link`` for its change stream after ``since`` (one page; ``CaughtUp`` when it is durable)."""
        if link.closed:
            return
        msg_id = self.new_id()
        self.dup.track(msg_id, None, now.steady_s)
        self._catching_up[msg_id] = link
        self._send(link, wire.changes_request(msg_id, since))

    def _unwanted_relay(self, link: Link, pid: str) -> bool:
        """Drop a relay link that leads back to this relay, or to a relay linked already."""
        if pid == self.pid:
            self._effects.append(Drop(link, "a link to this relay itself"))
            return True
        twin = next((other for other in self.relay_links if other is not link and other.pid == pid and not other.closed), None)
        if twin is None:
            return False
        # two links to one relay (both dialled each other, or two addresses of one peer): both
        # ends keep the same one, the link dialled by the relay whose pid sorts first
        drop = link
        if twin.dialled != link.dialled:
            keep_ours = self.pid < pid  # keep the link this relay dialled
            drop = link if link.dialled != keep_ours else twin
        self._effects.append(Drop(drop, f"a second link to relay {pid}"))
        return drop is link

    def _route_reply(self, link: Link, raw: dict[str, Any], reply_to: Any) -> None:
        """A reply to another link's message goes to that link only (acks for our pushes end here);
        a relay link's "not found" for a get sent on to it ends here too (``_peer_answered``)."""
        if type(reply_to) is not str:
            return
        if link.relay:
            job = self._asked.get(reply_to)
            if job is not None:
                self._peer_answered(reply_to, job, link)
                return
            if self._catching_up.get(reply_to) is link:  # a page of its stream with nothing in it
                del self._catching_up[reply_to]
                page = wire.changes_of(raw)
                if page is not None:
                    self._effects.append(CaughtUp(link, page[0], page[1]))
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

    def _on_get(self, link: Link, get: wire.Get, raw: dict[str, Any]) -> None:
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
        if self.relay_links:
            asked = self._ask_relays(link, raw)
        else:
            asked = None
        if get.msg_id is None:
            return  # nobody to answer: the subscription was all it asked for
        budget = get.budget
        if budget is None and (get.soul_lex is not None or (get.key is not None and get.key.is_query)):
            budget = reads.DEFAULT_LEX_BUDGET
        query = ReadQuery(
            soul=get.soul, soul_lex=get.soul_lex, key=get.key, budget=budget,
            max_fields=reads.MAX_FIELDS, page_bytes=reads.PAGE_BYTES, scan_limit=reads.PAGE_SCAN,
        )
        job = GetRead(link, get.msg_id, query)
        started = self.reads.add(link, job)
        if started is None:
            self.stats.refuse("reads")
            self._send(link, wire.error(self.new_id(), get.msg_id, f"Too many reads waiting: a connection may queue {self.reads.max_queued}."))
            return
        if asked and type(get.msg_id) is str:
            job.asked = asked
            self._asked[get.msg_id] = job
            self._effects.append(AwaitPeers(job, PEER_WAIT_S))
        self._start_reads(started)

    def _ask_relays(self, link: Link, raw: dict[str, Any]) -> list[Link]:
        """Send a get on to every relay link but the one it came from, with its own id (the
        answers come back to the asker through the dedup cache's origins)."""
        targets = [other for other in self.relay_links if other is not link and not other.closed]
        if targets:
            try:
                text = wire.encode(raw)
            except (TypeError, ValueError, RecursionError):
                return []
            for other in targets:
                self._send(other, text)
        return targets

    def _peer_answered(self, msg_id: str, job: GetRead, link: Link) -> None:
        """A relay link answered a get sent on to it (or went away); the last one lets the asker's
        "not found" go, if the store had nothing and nobody else answered."""
        asked = job.asked
        if asked is None or link not in asked:
            return
        asked.remove(link)
        if not asked:
            self._settle(msg_id, job)

    def peers_silent(self, job: GetRead) -> None:
        """``PEER_WAIT_S`` passed since ``job``'s get went on to relay links: stop waiting for them."""
        if job.asked and self._asked.get(job.msg_id) is job:
            job.asked.clear()
            self._settle(job.msg_id, job)

    def _settle(self, msg_id: str, job: GetRead) -> None:
        self._asked.pop(msg_id, None)
        job.asked = None
        if job.read_done and not job.answered and not job.link.closed:
            self._send(job.link, wire.not_found(self.new_id(), job.msg_id))

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
        job.read_done = True
        if not job.answered and not job.asked:
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

    def _on_put(self, link: Link, put: wire.Put, now: Now, raw: dict[str, Any]) -> None:
        stats = self.stats
        stats.puts += 1
        catch_up = None
        if put.reply_to is not None and self._catching_up and self._catching_up.get(put.reply_to) is link:
            del self._catching_up[put.reply_to]  # a page of the stream we asked this relay for
            catch_up = wire.changes_of(raw)
        try:
            fields = fields_of_put(put.graph)
        except InvalidGraph as exc:
            stats.error("invalid_put")
            raise wire.MessageError(str(exc), put.msg_id) from None
        bucket = link.field_bucket
        if bucket is None and self.limits.max_fields_per_s > 0 and not link.dialled:
            limits = self.limits
            bucket = link.field_bucket = TokenBucket(limits.max_fields_per_s, limits.field_burst, now.steady_s)
        if bucket is not None and catch_up is None:  # a page we asked for, one at a time: not held to the rate
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
        job.catch_up = catch_up
        judged = admit.admit(fields, now.wall_ms, self.fence, self.limits.max_skew_ms)
        self._note_refusals(job, judged)
        # (a page of a change stream goes on to the other relays once durable, and only what was new
        # here: ``merged``)
        if put.reply_to is None:
            if self.relay_links and (judged.ready or judged.later):
                self._forward(link, put.msg_id, judged.passed, now.steady_s)
        elif catch_up is None:
            if judged.ready or judged.later:
                self._pass_on(link, put, judged.passed)
            if link.relay:
                asked = self._asked.get(put.reply_to) if type(put.reply_to) is str else None
                if asked is not None:
                    asked.answered = asked.answered or bool(judged.passed)
                    self._peer_answered(put.reply_to, asked, link)
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
            if self.relay_links and job.link is not None and (judged.ready or judged.later):
                self._forward(job.link, None, judged.passed, now.steady_s)
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
            job.stored = False
            job.errors.append(f"Storage write failed ({failure}); nothing of it was acknowledged, send it again later.")
        else:
            self._fan_out(accepted, now.steady_s)
            if job.catch_up is not None and accepted and self.relay_links:
                self._forward(job.link, None, accepted, now.steady_s)
        if job.parts == 0:
            self._reply(job)

    def _reply(self, job: PutJob) -> None:
        link = job.link
        if job.catch_up is not None and job.stored and link is not None and not link.closed:
            self._effects.append(CaughtUp(link, job.catch_up[0], job.catch_up[1]))
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
                if link.closed or link.relay:  # relay links get every write, below
                    continue
                if keys is None:
                    if whole is None:
                        whole = self._push_message(soul, items, now_s)
                    self._send(link, whole)
                else:
                    self._send(link, self._push_message(soul, [i for i in items if i.key in keys], now_s))

    def _forward(self, source: Link | None, msg_id: Any, fields: list[Field], now_s: float, inbound_only: bool = False) -> None:
        """Send a write on to every relay link but ``source`` (or every one that dialled in to
        this relay): with its own id (None: a fresh one)."""
        targets = [link for link in self.relay_links if link is not source and not link.closed and not (inbound_only and link.dialled)]
        if not targets:
            return
        if type(msg_id) is not str:
            msg_id = self.new_id()
            self.dup.track(msg_id, None, now_s)  # our own: dropped if it comes back around
        text = wire.push(msg_id, {soul: _node_of(soul, items) for soul, items in _by_soul(fields).items()})
        for link in targets:
            self._send(link, text)

    def _push_message(self, soul: str, items: list[Field], now_s: float) -> str:
        msg_id = self.new_id()
        self.dup.track(msg_id, None, now_s)  # our own: drop it if a peer echoes it back
        return wire.push(msg_id, {soul: _node_of(soul, items)})

    # -- the relay's own writes ------------------------------------------------------------

    def introduce(self, link: Link, fields: list[Field], now: Now) -> None:
        """Send ``fields`` (stored ones: reset records) to one relay link, as a write with a fresh id."""
        if fields and not link.closed:
            msg_id = self.new_id()
            self.dup.track(msg_id, None, now.steady_s)
            self._send(link, wire.push(msg_id, {soul: _node_of(soul, items) for soul, items in _by_soul(fields).items()}))

    def shared(self, fields: list[Field], now: Now) -> None:
        """Another process of the fleet stored ``fields`` (read from the shared store's change
        stream): push them to this process's subscribers, and send them on to the relays that
        dialled in to this process. That process answered its writer and sent the write on to its
        own relay links: the ``--peer`` relays, which every process of a fleet dials itself, and
        the relays that dialled in to it (each such link lands on one process of the fleet, so
        only this one can tell them). What the fence here covers is left out, as for a get."""
        blocks = self.fence.blocks
        served = [f for f in fields if blocks(f.soul, f.state, now.wall_ms, serving=True) is None]
        self._fan_out(served, now.steady_s)
        if self.relay_links and served:
            self._forward(None, None, served, now.steady_s, inbound_only=True)

    def published(self, accepted: list[Field], now: Now) -> None:
        """The relay wrote ``accepted`` itself (records it signed, legacy nodes): push them to
        their subscribers like any accepted write."""
        self._fan_out(accepted, now.steady_s)
        if self.relay_links:
            self._forward(None, None, accepted, now.steady_s)
