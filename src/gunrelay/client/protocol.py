"""GUN's protocol as one peer speaks it to a relay, without I/O.

Theory of operation. ``PeerProtocol`` is the state a GUN peer keeps about its conversation, and
nothing else: it opens no socket, touches no store, starts no task and reads only the clocks it
is given. The connection (``connection.Connection``) carries its texts; the peer
(``peer.GunPeer``) acts on what it reads. The wire format is ``core.wire``'s and the graph's
rules are ``core.graph``'s and ``core.admission``'s: the relay's own, not a copy.

- Out: every message gets a fresh id (``new_id``: random, ending with a letter, so no id is
  another id followed by digits, GunJS's internal ``<id><n>``, protocol notes 2.2), remembered
  in the dedup cache so that an echo of our own message is dropped. A get the peer waits on, a
  put, and a reset acknowledgement are remembered by id until answered (``ask``, ``put``,
  ``acknowledge``); the caller's waiter (any object) comes back with the answer.
- In: ``receive`` decodes a raw message (``core.wire.decode``), drops one whose id was seen in
  the last 9-18 s, and says what the peer must do (``Event``s): send an answer (the relay's
  ``{"dam": "?"}`` is answered with our pid), take a graph in (a push, or a get's reply), answer
  a get a relay passes on, settle a put (``ok``/``err``), or end the wait for a get (the reply
  that says nothing more follows). A relay's answer to a reset acknowledgement is noted here.
- Admission: an incoming graph is validated (``graph.fields_of_put``) and each field judged by
  ``admission.admit`` -- the client fence, HAM's timing, SEA -- as the relay judges a put. Local
  puts are judged the same way without the timing bound (their states come from our own clock).
  A peer takes the relay's writes into the protected space (its records): only its fence treats
  those souls apart (no reset of ``*`` covers them), so they are not refused here.
- On connect (``opened``): a ``hi``, then what a GUN peer sends again on every connection: a get
  for every soul (or key) it follows (``resubscriptions``). What the previous connection left
  unanswered is ended by ``lost``: puts stay in the outbox and go again, gets are unanswered.
"""

from __future__ import annotations

import logging
import math
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import admission, wire
from ..core.admission import Admission
from ..core.dup import DupCache
from ..core.fence import FenceView
from ..core.graph import Field, InvalidGraph, fields_of_put
from .nodes import random_text

log = logging.getLogger("gunrelay.client")


def new_id() -> str:
    """A random message id that ends with a letter (never ``<another id><digits>``)."""
    return random_text(8) + secrets.choice(string.ascii_letters)


# -- what the peer must do about a message it received ---------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``text`` (an answer the protocol owes the relay)."""

    text: str


@dataclass(frozen=True, slots=True)
class Graph:
    """Data arrived (a push, or a reply to a get): admit it (``PeerProtocol.admit``) and merge."""

    graph: Any


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A get that a relay passes on from another peer: answer it from the local copy."""

    get: wire.Get


@dataclass(frozen=True, slots=True)
class Settled:
    """The relay answered a put: it leaves the outbox; ``waiter`` (if any) gets ``raw``."""

    entry_id: int
    waiter: Any
    answer: wire.Answer
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answered:
    """The relay answered a get the peer waits on (the last of its replies)."""

    waiter: Any


Event = Send | Graph | Forwarded | Settled | Answered


@dataclass(slots=True)
class PendingPut:
    entry_id: int
    connection: int  # which connection it went out on (``PeerProtocol.connections``)
    waiter: Any = None


@dataclass(slots=True)
class Lost:
    """What a dropped connection left unanswered."""

    puts: list[Any] = field(default_factory=list)  # waiters of puts (still in the outbox)
    gets: list[Any] = field(default_factory=list)  # waiters of gets


class PeerProtocol:
    def __init__(
        self,
        fence: FenceView,
        *,
        steady: Callable[[], float],
        max_skew_ms: float = 120_000,
        answer_gets: bool = True,
        pid: str | None = None,
    ):
        self.fence = fence  # the client fence (its owner, ``resets.ResetKeeper``, changes it)
        self.steady = steady  # seconds that only go forward, for dedup
        self.max_skew_ms = max_skew_ms
        self.answer_gets = answer_gets
        self.pid = pid or random_text(9)
        self.relay_pid: str | None = None
        self.connections = 0  # how many times a connection was established
        self.acknowledged: set[str] = set()  # reset ids the relay confirmed, on any connection
        self._dup: DupCache[None] = DupCache(ttl=9.0, now=steady())
        self._sent: dict[str, PendingPut] = {}  # put message id -> its outbox entry
        self._asked: dict[str, Any] = {}  # get message id -> waiter
        self._acking: dict[str, str] = {}  # reset-ack message id -> reset id
        self._acked_here: set[str] = set()  # reset ids acknowledged on this connection
        self._followed: dict[tuple[str, str | None], int] = {}  # (soul, key) -> subscribers

    # -- out ---------------------------------------------------------------------------------

    def _next_id(self) -> str:
        msg_id = new_id()
        self._dup.track(msg_id, None, self.steady())  # our own message echoed back is dropped
        return msg_id

    def hi(self) -> str:
        return wire.hi(self._next_id())

    def ask(self, soul: str, key: str | None, waiter: Any) -> tuple[str, str]:
        """A get whose answer ``waiter`` waits for: (message id, text); ``forget`` it when done."""
        msg_id = self._next_id()
        self._asked[msg_id] = waiter
        return msg_id, wire.get_request(msg_id, soul, key)

    def forget(self, msg_id: str) -> None:
        """Stop waiting for an answer to ``msg_id`` (a get given up on, a put that was not sent)."""
        self._asked.pop(msg_id, None)
        self._sent.pop(msg_id, None)

    def follow(self, soul: str, key: str | None) -> str:
        """Follow a soul (or one key): the get to send now; it is sent again on every connection."""
        self._followed[(soul, key)] = self._followed.get((soul, key), 0) + 1
        return self.get(soul, key)

    def unfollow(self, soul: str, key: str | None) -> None:
        """One subscriber fewer (GUN has no unsubscribe message: the relay may keep pushing)."""
        count = self._followed.get((soul, key), 0) - 1
        if count > 0:
            self._followed[(soul, key)] = count
        else:
            self._followed.pop((soul, key), None)

    def get(self, soul: str, key: str | None) -> str:
        """A get nobody waits on (its reply is taken in like any data)."""
        return wire.get_request(self._next_id(), soul, key)

    def resubscriptions(self) -> list[str]:
        """The gets for everything followed: sent on every connection, and again after a reset."""
        return [self.get(soul, key) for soul, key in self._followed]

    def put(self, entry_id: int, graph: dict[str, Any], waiter: Any = None) -> tuple[str, str]:
        """Send outbox entry ``entry_id``: (message id, text); its answer comes back as ``Settled``."""
        msg_id = self._next_id()
        self._sent[msg_id] = PendingPut(entry_id, self.connections, waiter)
        return msg_id, wire.put_request(msg_id, graph)

    def expire(self, msg_id: str, connected: bool) -> int | None:
        """No answer to put ``msg_id`` in time: the outbox entry to drop if the connection it went
        out on is still up (the relay has it and chose silence, as the Node relay does for a write
        HAM discards); None if it stays queued (it goes again after the next connect)."""
        sent = self._sent.pop(msg_id, None)
        if sent is not None and sent.connection == self.connections and connected:
            return sent.entry_id
        return None

    def in_flight(self) -> set[int]:
        """Outbox entries sent on this connection and not answered yet."""
        return {sent.entry_id for sent in self._sent.values() if sent.connection == self.connections}

    def acknowledge(self, reset_id: str) -> str | None:
        """The reset-ack to send for ``reset_id``, or None if it was sent on this connection."""
        if reset_id in self._acked_here:
            return None
        self._acked_here.add(reset_id)
        msg_id = self._next_id()
        self._acking[msg_id] = reset_id
        return wire.reset_ack_request(msg_id, reset_id)

    def answer_get(self, get: wire.Get, graph: dict[str, Any]) -> str:
        """The reply to a get a relay passed on: what the local copy holds of it."""
        return wire.data_reply(self._next_id(), get.msg_id, graph)

    # -- connections -------------------------------------------------------------------------

    def opened(self) -> None:
        """A connection is up: acknowledgements count per connection on the relay's side."""
        self.connections += 1
        self._acked_here.clear()

    def lost(self) -> Lost:
        """The connection dropped: every put and get still waiting is unanswered."""
        lost = Lost([sent.waiter for sent in self._sent.values() if sent.waiter is not None], list(self._asked.values()))
        self._sent.clear()
        return lost

    # -- in ----------------------------------------------------------------------------------

    def receive(self, raw: Any) -> list[Event]:
        """What to do about one raw message from the relay (nothing for a duplicate)."""
        try:
            message = wire.decode(raw)
        except wire.MessageError as exc:
            log.debug("ignoring a message GunJS would not understand: %s", exc)
            return []
        if message.msg_id is not None and not self._dup.track(str(message.msg_id), None, self.steady()):
            return []
        answer = wire.answer_of(raw)
        if isinstance(message, wire.Dam):
            return self._on_dam(message, answer)
        events: list[Event] = []
        if isinstance(message, wire.Put):
            events.append(Graph(message.graph))
        if answer.reply_to is None:
            if isinstance(message, wire.Get) and self.answer_gets and message.msg_id is not None and message.soul is not None:
                events.append(Forwarded(message))
            return events
        if type(answer.reply_to) is not str:
            return events
        sent = self._sent.get(answer.reply_to)
        if sent is not None:
            if answer.settled:
                del self._sent[answer.reply_to]
                events.append(Settled(sent.entry_id, sent.waiter, answer, raw))
            return events
        if answer.reply_to in self._asked and not answer.more:  # '%': more replies to come
            events.append(Answered(self._asked[answer.reply_to]))
        return events

    def _on_dam(self, message: wire.Dam, answer: wire.Answer) -> list[Event]:
        pid = message.pid if isinstance(message.pid, str) else None
        if message.kind == wire.HELLO:
            if message.reply_to is not None:  # the relay answers a hello of ours
                self.relay_pid = pid
            elif message.msg_id is not None:  # the relay's hello: answer with our pid
                self.relay_pid = pid if pid is not None else self.relay_pid
                return [Send(wire.hello_answer(self._next_id(), self.pid, message.msg_id))]
        elif message.kind == wire.RESET_ACK:
            reset_id = self._acking.pop(str(answer.reply_to), None)
            if reset_id is not None and answer.ok:
                self.acknowledged.add(reset_id)
            elif reset_id is not None:
                log.warning("the relay refused our acknowledgement of %s: %s", reset_id, answer.err)
        elif message.kind == wire.DAM_ERROR:
            log.warning("the relay reports an error: %s", answer.err)
        return []

    # -- admission ---------------------------------------------------------------------------

    def admit(self, graph: Any, now_ms: float) -> Admission | None:
        """Judge an incoming graph as the relay judges a put (None: not a valid graph)."""
        try:
            fields = fields_of_put(graph)
        except InvalidGraph as exc:
            log.warning("ignoring an invalid graph: %s", exc)
            return None
        return admission.admit(fields, now_ms, self.fence, self.max_skew_ms, refuse_protected=False)

    def admit_local(self, fields: list[Field], now_ms: float) -> Admission:
        """Judge the fields of a local put: the fence and SEA, no bound on their (our own) states."""
        return admission.admit(fields, now_ms, self.fence, math.inf, refuse_protected=False)
