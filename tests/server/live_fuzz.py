"""Generated GUN frames for fuzzing a live relay, and the driver that checks every answer.

Shared by ``bench/fuzz_live.py`` (a million frames against ``gunrelay serve`` in a subprocess)
and ``tests/server/test_fuzz_live.py`` (a bounded run against the in-process ``live_relay``).
Nothing here imports gunrelay: the expectations come from reading ``server/relay.py``,
``core/wire.py`` and ``core/graph.py`` and are checked against the relay from the outside.

What the relay answers, and how (the classification every generated message gets):

- ``ack``: a well-formed put with an id gets ``{"@": id, "ok": true}`` once it is durable, also
  when HAM keeps the stored value (a stale state), also a put with an ``@`` nobody asked for.
- ``err``: a put or get with an id that the relay refuses gets ``{"@": id, "err": text}``: an
  invalid graph (``fields_of_put``: not an object, empty, a node that is not an object, no ``_``,
  ``_['#']`` not its soul, no ``>`` map, a key without a numeric finite state, a value that is not
  null/string/bool/finite number/relation, the single-key form, an empty soul, a soul or key
  holding a lone surrogate), a malformed get (``get`` not an object, empty or non-string soul,
  non-string lex parts, non-numeric ``%``), a state further ahead than ``--max-skew-ms``, SEA
  refusals (unsigned user space, alias lists, content-hash souls), the empty key ``""`` ("Empty
  soul or key.") and the relay's system space. An invalid graph refuses the whole put; otherwise
  fields of the same put that passed are still applied (as GunJS does), so a partly refused put
  changes what passed and nothing else.
- ``answer``: a get with an id gets exactly one ``{"@": id}``, with ``put`` when there is data
  (also when the id holds a lone surrogate; a soul or key holding one is never found); a
  ``dam: "?"`` with an id gets the relay's hello answer (a ``pid`` with a lone surrogate or over
  64 characters is not taken as the peer's pid); a ``dam: "reset-ack"`` naming no reset gets
  ``{"dam": "reset-ack", "@": id, "err": ...}``.
- ``dam``: ``{"dam": "!", "err": text}`` (no ``@``) for what cannot be answered by id: a frame
  that is not JSON (bad syntax, truncation, ``NaN``/``Infinity`` literals, unquoted or non-string
  keys, nesting deeper than the parser allows), a frame that is neither an object nor an array, an
  array element that is not an object, an id ``#`` that is not a string or number, a bad put or get
  without an id (or with the id ``""``), a binary frame, a text frame over ``--max-frame-bytes``
  counted in UTF-8 bytes. These are sent in frame order, so they are matched first-in first-out.
- ``close``: a frame over the websocket layer's limit (``max(2 * max_frame_bytes, 1 MiB)``) closes
  that socket with 1009; invalid UTF-8 in a text frame closes it with 1007. Others carry on, and the
  same address reconnects.
- ``silent`` by design (nothing may answer these, and a refused or dropped put changes nothing):
  a message whose ``#`` the relay saw in the last 9-18 s, from any peer (GunJS's dedup: duplicates
  in one frame, re-sent ids, another peer's id, an id the relay used for its own push);
  ``dam`` messages other than ``?`` and ``reset-ack`` (``hi``, ``!``, unknown); a ``dam: "?"``
  that answers the relay's hello (it has ``@``); replies (``@`` without ``put``) to unknown ids,
  to ``""``, to the relay's own pushes, or to the sender's own messages; messages of no known
  type (GunJS floods those; a relay has no one to flood them to); a get or put without an id,
  or with the id ``""``, which is no id (applied, never deduplicated, but there is no id to
  answer: a put's value is checked by reading it back at the end); ``[]``.
- A reply (``@`` with ``ok``/``err``) naming another peer's message id is passed on to that peer
  (the relay routes replies to the connection the id came from); the fuzzer's own forged replies
  carry ``"fz": "forged"`` so the receiving connection counts them instead of mistaking them.
  A put whose ``@`` names another peer's message is checked like any put and answered to its
  sender; that peer gets ``{"#": id, "@": its id, "put": ...}`` with exactly the fields that
  passed every check (none if none passed: then nothing), which the receiving connection checks.

Every wait is bounded: an expectation not met within ``timeout_s`` is a stall (recorded, and the
run goes on); the window of frames in flight per connection is bounded; so is the whole run.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gunrelay.core.subscriptions import MAX_FOLLOWED_TEXT  # a get subscribes; longer souls and keys are not followed

import websockets

try:
    import orjson
except ImportError:  # pragma: no cover - the relay's venv has it
    orjson = None  # type: ignore[assignment]

MiB = 1 << 20
DEBUG = False  # True: note which builder remembered each id and which frames carried it (slow; for hunting a false alarm)
ACK, ERR, ANSWER, HELLO, DAMREPLY, SILENT = "ack", "err", "answer", "hello", "dam-reply", "silent"
SOULS_PER_CONN = 24
SHARED_SOULS = ("__proto__", "constructor", "prototype", "toString", "hasOwnProperty")
SPECIAL_IDS = ("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf", "__defineGetter__")
KEYS = ("k0", "k1", "k2", "k3", "k4", "k5", "0", "1", "10", "2", "#", ".", ">", "<", "*", "@", "__proto__",
        "constructor", "toString", " ", "é", "😀", "a/b", "~", "_x")
SYSTEM_NODE = "_whisperz_system"
SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")  # lone: valid in a JavaScript string, not in UTF-8


def dumps(obj: Any) -> str:
    """Compact JSON, ASCII only (lone surrogates go out escaped, as JSON.stringify writes them)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _refuse(name: str) -> Any:
    raise ValueError(name)


def is_json(text: str) -> bool:
    """Whether JSON.parse (no NaN/Infinity) would accept ``text``, and neither orjson nor json refuses it."""
    try:
        json.loads(text, parse_constant=_refuse)
        return True
    except (ValueError, RecursionError):
        return False


def well_formed(text: str) -> bool:
    """Whether ``text`` is valid Unicode text (no lone surrogate)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def idkey(value: Any) -> str | None:
    """A dictionary key for a message id as it comes back in ``@`` (strings and integral numbers)."""
    if type(value) is str:
        return "s" + value
    if type(value) is int:
        return "n%d" % value
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return "n%d" % int(value)
    return None


def same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if type(a) in (int, float) and type(b) in (int, float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


class Lit:
    """A JSON literal that json.dumps cannot write (``1e400``, a 400-digit integer, deep nesting)."""

    def __init__(self, text: str):
        self.text = text


def encode(obj: Any) -> str:
    """``dumps`` with ``Lit`` placeholders replaced by their literal text."""
    lits: list[str] = []

    def walk(value: Any) -> Any:
        if isinstance(value, Lit):
            lits.append(value.text)
            return f"@@LIT{len(lits) - 1}@@"
        if type(value) is dict:
            return {k: walk(v) for k, v in value.items()}
        if type(value) is list:
            return [walk(v) for v in value]
        return value

    text = dumps(walk(obj))
    for i, lit in enumerate(lits):
        text = text.replace(f'"@@LIT{i}@@"', lit, 1)
    return text


# ---------------------------------------------------------------------------------------------
# What a frame is expected to get


@dataclass(eq=False)
class Msg:
    """One message of a frame whose answer (or silence) is checked by its id."""

    id: Any
    expect: str
    marker: str | None = None  # ERR: text the error must contain
    check: Callable[[dict[str, Any]], str | None] | None = None  # ANSWER: a problem with the answer, or None
    on_reply: Callable[[dict[str, Any]], None] | None = None  # model update once answered as expected
    kind: str = ""


@dataclass(eq=False)
class Frame:
    kind: str
    payload: str | bytes
    msgs: list[Msg] = field(default_factory=list)
    dams: list[str] = field(default_factory=list)  # markers of the dam errors expected, in order
    binary: bool = False
    raw_text: bool = False  # bytes sent as a text frame (invalid UTF-8)
    close_code: int | None = None  # the socket must close with it (sent alone: nothing else in flight)
    extra_wait: float = 0.0  # a deferred write: its ack comes this much later
    messages: int = 1  # GUN messages in the frame (for the figures)
    pending: int = 0
    sent_at: float = 0.0
    holds_slot: bool = False
    failed: bool = False  # some expectation was not met

    @property
    def klass(self) -> str:
        errors = bool(self.dams) or self.close_code is not None or any(m.expect in (ERR, DAMREPLY) for m in self.msgs)
        answers = any(m.expect in (ACK, ANSWER, HELLO) for m in self.msgs)
        if errors and answers:
            return "mixed"
        if errors:
            return "bad"
        if answers:
            return "good"
        return "silent"


@dataclass
class Part:
    """One message inside a frame, as text, with what it should get."""

    text: str
    msg: Msg | None = None
    dam: str | None = None


# ---------------------------------------------------------------------------------------------
# The model of what each connection wrote


class Model:
    """Every write a connection sent that the relay may have applied, by (soul, key) and state.

    States are unique per write, so a state seen in an answer names the write. ``floor`` is the
    highest state the relay acknowledged: an answer sent later must show it or a newer one.
    """

    def __init__(self, ns: str, cid: int, base: int):
        self.ns = ns
        self.cid = cid
        self.base = base
        self.souls = [f"{ns}/c{cid}/s{j}" for j in range(SOULS_PER_CONN)]
        self.hist: dict[tuple[str, str], dict[float, Any]] = {}
        self.floor: dict[tuple[str, str], float] = {}
        self.keys: dict[str, set[str]] = {}
        self.counter = 0
        self.present: dict[tuple[str, str], Any] = {}  # dedicated souls: (soul, key) -> value expected at the end
        self.absent: set[str] = set()  # dedicated souls that must not exist at the end

    def state(self) -> int:
        self.counter += 1
        return self.base + self.counter

    def refused_state(self) -> int:
        """Newer than every accepted write: if a refused or dropped write got through, it would show."""
        self.counter += 1
        return self.base + 500_000_000 + self.counter

    def wrote(self, soul: str, key: str, state: float, value: Any) -> None:
        self.hist.setdefault((soul, key), {})[state] = value
        self.keys.setdefault(soul, set()).add(key)

    def acked(self, fields: list[tuple[str, str, float]]) -> Callable[[dict[str, Any]], None]:
        def update(_reply: dict[str, Any]) -> None:
            for soul, key, state in fields:
                if state > self.floor.get((soul, key), -math.inf):
                    self.floor[(soul, key)] = state

        return update

    def floors(self, soul: str, keys: list[str] | None = None) -> dict[str, float]:
        wanted = self.keys.get(soul, set()) if keys is None else keys
        return {k: self.floor[(soul, k)] for k in wanted if (soul, k) in self.floor}

    def check_node(self, soul: str, node: Any, floors: dict[str, float] | None, only: set[str] | None = None) -> str | None:
        if type(node) is not dict:
            return f"node {soul!r} is not an object"
        meta = node.get("_")
        if type(meta) is not dict or meta.get("#") != soul or type(meta.get(">")) is not dict:
            return f"node {soul!r} has a bad meta {meta!r:.80}"
        states = meta[">"]
        keys = [k for k in node if k != "_"]
        if set(states) != set(keys):
            return f"node {soul!r}: state map keys {sorted(states)!r:.80} differ from its keys"
        for key in keys:
            if only is not None and key not in only:
                return f"node {soul!r}: key {key!r} was not asked for"
            state, value = states[key], node[key]
            written = self.hist.get((soul, key))
            if not written or type(state) not in (int, float) or state not in written:
                return f"{soul!r}.{key!r}: state {state!r} is no write this connection sent as valid (refused data served?)"
            if not same_value(written[state], value):
                return f"{soul!r}.{key!r}: value {value!r:.60} is not the {written[state]!r:.60} written at state {state}"
            if floors is not None and state < floors.get(key, -math.inf):
                return f"{soul!r}.{key!r}: state {state} is older than the acknowledged {floors[key]}"
        if floors is not None:
            missing = [k for k in floors if k not in states]
            if missing:
                return f"{soul!r}: acknowledged keys {missing!r:.80} missing from the answer"
        return None


# ---------------------------------------------------------------------------------------------
# The generator


def random_string(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(FIXED_STRINGS)
    if roll < 0.97:
        alphabet = "abcxyz ABC0129_-/.:#~@é漢😀\"\\\n\t"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
    return "L" * rng.randrange(200, 1000)


FIXED_STRINGS = [
    "", "hello", "with space", 'quote"inside', "back\\slash", "new\nline", "tab\t", "\x00nul", "\x1f", "é", "漢字", "😀",
    "a😀b", "\u2028\u2029", "\ufeffbom", '{":":1}', "null", "0", "#", "\ud800", "a\udfffb", "\udc00\ud800", "SEA{}",
]
FIXED_NUMBERS = [0, 1, -1, 42, 2**31, 2**53, -(2**53), 0.5, -0.25, 1e-7, 123.456, 1e21, 1.5e300, 5e-324,
                 1.7976931348623157e308, 10**25, 2**64, 2**53 + 1, -0.0, 1795575793400.5]


def random_value(rng: random.Random, ns: str) -> Any:
    roll = rng.random()
    if roll < 0.55:
        return random_string(rng)
    if roll < 0.75:
        return rng.choice(FIXED_NUMBERS) if rng.random() < 0.5 else rng.randrange(-10**6, 10**6)
    if roll < 0.82:
        return rng.random() < 0.5
    if roll < 0.9:
        return None
    return {"#": f"{ns}/rel/{rng.randrange(1000)}"}


@dataclass(eq=False)
class PassOn:
    """A put whose ``@`` names another connection's message: what that connection must get."""

    to: int  # the connection whose message it answers
    reply_to: Any  # that message's id
    epoch: int  # that connection's socket when it sent the message (a new socket is another peer)
    asked_at: float  # when it sent it (the relay remembers an id for 9 s at least)
    fields: dict[tuple[str, str], tuple[Any, Any]]  # (soul, key) -> (state, value) that pass; empty: nothing may come
    handled_at: float | None = None  # when the put's sender had its answer (the relay passed it on before)
    seen: bool = False


class Shared:
    """What connections share: ids other connections had answered (for cross-peer collisions),
    and the puts answering another connection's message, which that connection checks."""

    def __init__(self) -> None:
        self.answered: dict[int, deque[tuple[Any, float, int]]] = {}  # cid -> (id, sent at, socket epoch)
        self.pass_on: dict[str, PassOn] = {}  # by the put's id

    def other_message(self, rng: random.Random, cid: int, max_age: float = 3.0) -> tuple[int, Any, float, int] | None:
        """(connection, id, sent at, socket epoch) of a recent message another connection had answered."""
        others = [c for c in self.answered if c != cid and self.answered[c]]
        if not others:
            return None
        other = rng.choice(others)
        ids = self.answered[other]
        msg_id, at, epoch = ids[-1 - rng.randrange(len(ids))]
        return (other, msg_id, at, epoch) if time.monotonic() - at < max_age else None

    def other_answered(self, rng: random.Random, cid: int, max_age: float = 3.0) -> Any:
        found = self.other_message(rng, cid, max_age)
        return found[1] if found is not None else None


class Generator:
    """Frames for one connection: a weighted mix of kinds (KINDS), and a few scheduled big ones."""

    def __init__(self, fuzz: "FuzzConfig", cid: int, rng: random.Random, model: Model, shared: Shared, conn: "Conn"):
        self.cfg = fuzz
        self.cid = cid
        self.rng = rng
        self.model = model
        self.shared = shared
        self.conn = conn
        self.ns = model.ns
        self.n = 0
        self.recent: deque[tuple[Any, float]] = deque(maxlen=64)  # own ids the relay tracked (for dups)
        self.kind_names = [name for name, _ in KINDS]
        self.kind_weights = [weight for _, weight in KINDS]

    # -- ids --------------------------------------------------------------------------------

    def new_id(self) -> str:
        self.n += 1
        return f"{self.ns}.{self.cid}.{self.n}x"  # ends in a letter: id + "0" is never another id

    def numeric_id(self) -> int:
        self.n += 1
        return 10**12 * (self.cid + 1) + self.n

    def tracked(self, msg_id: Any) -> None:
        self.recent.append((msg_id, time.monotonic()))
        if DEBUG:
            import inspect
            self.conn.sent_log.setdefault(idkey(msg_id) or "?", []).append("tracked by " + "/".join(f.function for f in inspect.stack()[1:4]))

    def recent_own(self, max_age: float = 3.0) -> Any:
        if not self.recent:
            return None
        msg_id, at = self.recent[-1 - self.rng.randrange(len(self.recent))]
        return msg_id if time.monotonic() - at < max_age else None

    # -- frames -----------------------------------------------------------------------------

    def frame(self, kind: str | None = None) -> Frame:
        kind = kind or self.rng.choices(self.kind_names, self.kind_weights)[0]
        built = getattr(self, "f_" + kind, None)
        if built is not None:
            frame = built()
        else:
            part = getattr(self, "m_" + kind)()
            frame = self.frame_of(kind, [part])
        frame.kind = kind
        return frame

    def frame_of(self, kind: str, parts: list[Part], batch: bool = False) -> Frame:
        if len(parts) == 1 and not batch:
            text = parts[0].text
        else:
            text = "[" + ",".join(p.text for p in parts) + "]"
        frame = Frame(kind, text, messages=len(parts))
        for part in parts:
            if part.msg is not None:
                part.msg.kind = part.msg.kind or kind
                frame.msgs.append(part.msg)
            if part.dam is not None:
                frame.dams.append(part.dam)
        return frame

    # -- good puts ----------------------------------------------------------------------------

    def put_fields(self, souls: list[str], keys_per_soul: int, refused: bool = False) -> tuple[dict[str, Any], list[tuple[str, str, float]]]:
        """A graph over ``souls`` with fresh states; registered as written unless ``refused``."""
        rng, model = self.rng, self.model
        graph: dict[str, Any] = {}
        fields = []
        for soul in souls:
            keys = rng.sample(KEYS, keys_per_soul)
            state = model.refused_state() if refused else model.state()
            node: dict[str, Any] = {"_": {"#": soul, ">": {k: state for k in keys}}}
            for key in keys:
                value = random_value(rng, self.ns)
                node[key] = value
                if not refused:
                    model.wrote(soul, key, state, value)
                fields.append((soul, key, state))
            graph[soul] = node
        return graph, fields

    def good_put(self, msg_id: Any, souls: list[str] | None = None, keys: int | None = None, **extra: Any) -> Part:
        souls = souls or [self.rng.choice(self.model.souls)]
        graph, fields = self.put_fields(souls, keys or self.rng.randrange(1, 5))
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, **extra, "put": graph}), Msg(msg_id, ACK, on_reply=self.model.acked(fields)))

    def m_put(self) -> Part:
        return self.good_put(self.new_id())

    def m_put_multi(self) -> Part:
        return self.good_put(self.new_id(), self.rng.sample(self.model.souls, self.rng.randrange(2, 4)))

    def m_put_exotic(self) -> Part:
        return self.good_put(self.new_id(), keys=self.rng.randrange(4, 8))

    def m_put_numeric_id(self) -> Part:
        return self.good_put(self.numeric_id())

    def m_put_at_unknown(self) -> Part:
        return self.good_put(self.new_id(), **{"@": "nobody-asked-" + self.new_id()})

    def m_put_stale(self) -> Part:
        """A state older than what was written: acknowledged, never visible."""
        written = [sk for sk in self.model.hist if sk[0] in self.model.souls[:8]]
        if not written:
            return self.m_put()
        soul, key = self.rng.choice(written)
        self.model.counter += 1
        state = self.model.base - 1_000_000 - self.model.counter
        msg_id = self.new_id()
        self.tracked(msg_id)
        graph = {soul: {"_": {"#": soul, ">": {key: state}}, key: "stale-" + msg_id}}
        return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, ACK))

    def m_put_special_names(self) -> Part:
        """Souls and keys named like JavaScript internals (shared souls, keys of this connection)."""
        soul = self.rng.choice(SHARED_SOULS)
        key = f"{self.ns}.c{self.cid}.{self.rng.choice(SHARED_SOULS)}"
        state = self.model.state()
        value = self.rng.choice(["__proto__", {"#": "constructor"}, "prototype", 1])
        self.model.wrote(soul, key, state, value)
        msg_id = self.new_id()
        self.tracked(msg_id)
        graph = {soul: {"_": {"#": soul, ">": {key: state}}, key: value}}
        return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, ACK, on_reply=self.model.acked([(soul, key, state)])))

    def m_put_empty_node(self) -> Part:
        soul = self.rng.choice(self.model.souls)
        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {}}}}}), Msg(msg_id, ACK))

    def m_put_huge_number_value(self) -> Part:
        """Numbers past 2**53 and past 64 bits are values (JavaScript holds the nearest double)."""
        soul = self.rng.choice(self.model.souls)
        key = self.rng.choice(KEYS)
        state = self.model.state()
        value = self.rng.choice([10**25, 2**64 + 1, -(10**30), 123456789012345678901234567890, 10**300, 1e308, -1e308])
        self.model.wrote(soul, key, state, float(value))
        msg_id = self.new_id()
        self.tracked(msg_id)
        graph = {soul: {"_": {"#": soul, ">": {key: state}}, key: value}}
        return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, ACK, on_reply=self.model.acked([(soul, key, state)])))

    def m_put_surrogate_id(self) -> Part:
        return self.good_put(self.new_id() + "\ud800")

    def m_put_deferred(self) -> Part:
        """A state slightly ahead of the relay's clock: it waits, then it is applied and acknowledged."""
        soul = f"{self.ns}/c{self.cid}/def{self.n}"
        ahead = self.rng.uniform(0.2, 1.5)
        state = time.time() * 1000 + ahead * 1000
        self.model.present[(soul, "k")] = "later"
        msg_id = self.new_id()
        self.tracked(msg_id)
        part = Part(encode({"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {"k": state}}, "k": "later"}}}), Msg(msg_id, ACK))
        return part

    def f_put_deferred(self) -> Frame:
        frame = self.frame_of("put_deferred", [self.m_put_deferred()])
        frame.extra_wait = 2.0
        return frame

    # -- good gets ------------------------------------------------------------------------------

    def get_node(self, msg_id: Any, soul: str | None = None) -> Part:
        model = self.model
        soul = soul or self.rng.choice(model.souls)
        floors = model.floors(soul)

        def check(reply: dict[str, Any]) -> str | None:
            put = reply.get("put")
            if put is None:
                return "not found, though writes were acknowledged" if floors else None
            if type(put) is not dict or list(put) != [soul]:
                return f"answer for {soul!r} carries souls {list(put)!r:.80}"
            return model.check_node(soul, put[soul], floors)

        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "get": {"#": soul}}), Msg(msg_id, ANSWER, check=check))

    def m_get_node(self) -> Part:
        return self.get_node(self.new_id())

    def m_get_numeric_id(self) -> Part:
        return self.get_node(self.numeric_id())

    def m_get_key(self) -> Part:
        model = self.model
        if self.rng.random() < 0.15:
            soul = self.rng.choice(SHARED_SOULS)
            key = f"{self.ns}.c{self.cid}.{self.rng.choice(SHARED_SOULS)}"
        else:
            soul = self.rng.choice(model.souls)
            key = self.rng.choice(KEYS)
        floors = model.floors(soul, [key])

        def check(reply: dict[str, Any]) -> str | None:
            put = reply.get("put")
            if put is None:
                return "not found, though the key's write was acknowledged" if floors else None
            if type(put) is not dict or list(put) != [soul]:
                return f"answer for {soul!r}.{key!r} carries souls {list(put)!r:.80}"
            return model.check_node(soul, put[soul], floors, only={key})

        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "get": {"#": soul, ".": key}}), Msg(msg_id, ANSWER, check=check))

    def m_get_missing(self) -> Part:
        msg_id = self.new_id()
        self.tracked(msg_id)
        # a get subscribes its connection to the soul, and a connection may follow --max-subscriptions
        # souls (default 50,000): past 40,000 new ones, ask again for souls already followed
        self.conn.followed += 1
        n = self.n if self.conn.followed < 40_000 else self.n % 1000
        soul = f"{self.ns}/c{self.cid}/missing/{n}"
        return Part(encode({"#": msg_id, "get": {"#": soul}}), Msg(msg_id, ANSWER, check=lambda r: "put" in r and "data for a soul never written" or None))

    def m_get_lex(self) -> Part:
        """A key prefix with a byte budget: whatever comes back must match and be a real write."""
        model = self.model
        soul = self.rng.choice(model.souls)
        prefix = self.rng.choice(["k", "", "1", "_", "é"])
        budget = self.rng.choice([1, 50, 5000, 100000])

        def check(reply: dict[str, Any]) -> str | None:
            put = reply.get("put")
            if put is None:
                return None
            if type(put) is not dict or list(put) != [soul]:
                return f"lex answer carries souls {list(put)!r:.80}"
            node = put[soul]
            if any(not k.startswith(prefix) for k in node if k != "_"):
                return f"lex answer has keys outside the prefix {prefix!r}"
            return model.check_node(soul, node, None)

        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "get": {"#": soul, ".": {"*": prefix}, "%": budget}}), Msg(msg_id, ANSWER, check=check))

    def m_get_soul_lex(self) -> Part:
        model = self.model
        prefix = f"{self.ns}/c{self.cid}/s1"

        def check(reply: dict[str, Any]) -> str | None:
            put = reply.get("put")
            if put is None:
                return None
            for soul, node in put.items():
                if not soul.startswith(prefix) or soul not in model.keys:
                    return f"soul lex answer has soul {soul!r}"
                problem = model.check_node(soul, node, None)
                if problem:
                    return problem
            return None

        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "get": {"#": {"*": prefix}, "%": 2000}}), Msg(msg_id, ANSWER, check=check))

    def m_get_lex_no_budget(self) -> Part:
        """A lex query with no '%' (a soul prefix or range, a key prefix or range): answered with at
        most its first match, as RAD does (the relay's default budget), never a scan of the store."""
        model = self.model
        soul = self.rng.choice(model.souls)
        spec = self.rng.choice([
            {"#": {"*": ""}}, {"#": {"*": f"{self.ns}/"}}, {"#": {">": ""}}, {"#": {"<": "\uffff"}},
            {"#": {">": "a", "<": "z"}}, {"#": {"*": "", "-": True}},
            {"#": soul, ".": {"*": ""}}, {"#": soul, ".": {">": ""}}, {"#": soul, ".": {"<": "~"}},
        ])

        def check(reply: dict[str, Any]) -> str | None:
            put = reply.get("put")
            if put is None:
                return None
            # a budget of 1 is crossed by the first value that costs anything (an empty string costs
            # nothing here, 9 in RAD: the relay may answer more, never a scan)
            costly = sum(1 for node in put.values() for key, value in node.items() if key != "_" and value != "")
            return None if costly <= 1 else f"a lex query without '%' was answered with {costly} non-empty fields (RAD: 1)"

        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "get": spec}), Msg(msg_id, ANSWER, check=check))

    def f_many_gets(self) -> Frame:
        """One frame of many gets, budget-less lex queries and malformed lex objects mixed: each is
        answered (the malformed ones with an error) and the relay keeps serving everyone."""
        parts = []
        for _ in range(self.rng.randrange(20, 200)):
            if self.rng.random() < 0.5:
                parts.append(self.m_get_lex_no_budget())
            else:
                parts.append(self.bad({"get": {"#": self.rng.choice([{}, {"x": 1}, {"=": None}, {"_": {}}, {"-": True}])}}, "Invalid get"))
        return self.frame_of("many_gets", parts)

    def m_get_huge_budget(self) -> Part:
        """'%' past 2**31 (or 1e400, Infinity to JSON.parse) means no budget."""
        part = self.get_node(self.new_id())
        obj = json.loads(part.text)
        obj["get"]["%"] = Lit(self.rng.choice(["1e400", "1" + "0" * 30, "2147483648", "1e300"]))
        part.text = encode(obj)
        return part

    # -- DAM and other messages ------------------------------------------------------------------

    def m_dam_hello(self) -> Part:
        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "dam": "?", "pid": f"fz{self.cid}"}), Msg(msg_id, HELLO))

    def m_dam_hello_odd_pid(self) -> Part:
        """A pid with a lone surrogate or over 64 characters is not taken (the peers API shows pids),
        and the hello is answered all the same; checked at the end through GET /-/api/peers."""
        msg_id = self.new_id()
        self.tracked(msg_id)
        rng = self.rng
        pid = rng.choice([
            lambda: "pid" + rng.choice(SURROGATES),
            lambda: rng.choice(SURROGATES) + f"fz{self.cid}",
            lambda: "\udc00\ud800",
            lambda: "p" * rng.randrange(65, 300),
            lambda: "é" * 65,
            lambda: "q" * 64,  # the longest pid taken
            lambda: "",
        ])()
        return Part(encode({"#": msg_id, "dam": "?", "pid": pid}), Msg(msg_id, HELLO))

    def m_reset_ack_unknown(self) -> Part:
        msg_id = self.new_id()
        self.tracked(msg_id)
        reset = self.rng.choice(["no-such-reset", 5, None, {"x": 1}, "\ud800"])
        return Part(encode({"#": msg_id, "dam": "reset-ack", "reset": reset}), Msg(msg_id, DAMREPLY, marker="Unknown reset"))

    def silent(self, obj: dict[str, Any]) -> Part:
        msg_id = obj.get("#")
        return Part(encode(obj), Msg(msg_id, SILENT) if idkey(msg_id) is not None else None)

    def m_dam_other(self) -> Part:
        msg_id = self.new_id()
        obj = self.rng.choice([
            {"#": msg_id, "dam": "hi"},
            {"#": msg_id, "dam": "!", "err": "a peer's error notice"},
            {"#": msg_id, "dam": "mob", "mob": 5, "peers": {}},
            {"#": msg_id, "dam": "zzz"},
            {"#": msg_id, "dam": 5},
            {"#": msg_id, "dam": {"x": [1, 2]}},
            {"#": msg_id, "dam": None},
            {"#": msg_id, "dam": "?", "pid": "p", "@": "an-old-hello"},  # an answer to a hello: nothing to say
            {"dam": "?", "pid": "no-id"},  # a hello without an id cannot be answered
        ])
        if "#" in obj:
            self.tracked(msg_id)
        return self.silent(obj)

    def m_other_message(self) -> Part:
        msg_id = self.new_id()
        self.tracked(msg_id)
        return self.silent(self.rng.choice([{"#": msg_id, "ping": 1}, {"#": msg_id}, {"#": msg_id, "hi": {"gun": 1}}, {"#": msg_id, "><": "a,b"}]))

    def m_reply_unknown(self) -> Part:
        msg_id = self.new_id()
        self.tracked(msg_id)
        reply_to = self.rng.choice(["nobody-" + msg_id, 5, None, {"x": 1}, ["a"], "\ud800", ""])  # '' is nobody's id
        return self.silent({"#": msg_id, "@": reply_to, "ok": True} if self.rng.random() < 0.5 else {"#": msg_id, "@": reply_to, "err": "x"})

    def m_get_no_id(self) -> Part:
        soul = self.rng.choice(self.model.souls)
        return Part(encode(self.rng.choice([{"get": {"#": soul}}, {"#": None, "get": {"#": soul}}])))

    def m_put_no_id(self) -> Part:
        """Applied, but there is no id to answer: checked at the end by reading it back."""
        soul = f"{self.ns}/c{self.cid}/noid{self.n}"
        self.n += 1
        value = random_value(self.rng, self.ns)
        self.model.present[(soul, "k")] = value
        graph = {soul: {"_": {"#": soul, ">": {"k": 1}}, "k": value}}
        return Part(encode(self.rng.choice([{"put": graph}, {"#": None, "put": graph}])))

    def f_keepalive(self) -> Frame:
        return Frame("keepalive", "[]", messages=0)

    # -- ids that collide --------------------------------------------------------------------------

    def refused_write(self, msg_id: Any, soul: str | None = None) -> Part:
        """A put newer than everything on a watched soul, expected to be dropped: if it were applied, it would show."""
        soul = soul or self.rng.choice(self.model.souls)
        graph, _ = self.put_fields([soul], self.rng.randrange(1, 3), refused=True)
        return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, SILENT) if idkey(msg_id) else None)

    def m_reuse_hello_id(self) -> Part:
        """The relay does not remember its hello's id, so a message reusing it is served (once)."""
        hello = self.conn.hello_id
        if hello is None or self.conn.hello_reused:
            return self.m_get_node()
        self.conn.hello_reused = True
        return self.get_node(hello)

    def m_reuse_push_id(self) -> Part:
        """The relay remembers its pushes' ids (echo suppression): reusing one is a duplicate, dropped."""
        push = self.conn.recent_push()
        if push is None:
            return self.m_get_node()
        return self.refused_write(push)

    def m_reply_to_push(self) -> Part:
        push = self.conn.recent_push()
        if push is None:
            return self.m_reply_unknown()
        return self.silent({"#": self.new_id(), "@": push, "ok": True})

    def m_reuse_ack_id(self) -> Part:
        """The relay's reply ids are not remembered: a message reusing one is served (once)."""
        used = self.conn.take_reply_id()
        if used is None:
            return self.m_get_node()
        return self.get_node(used)

    def m_gun_internal_suffix(self) -> Part:
        """GunJS keeps '<putId><n>' for itself; the relay has no such ids, so it serves them."""
        own = self.recent_own()
        if type(own) is not str or not own.endswith("x"):
            return self.m_get_node()
        self.n += 1
        return self.get_node(own + str(self.n))

    def m_reply_to_own(self) -> Part:
        own = self.recent_own()
        if own is None:
            return self.m_reply_unknown()
        return self.silent({"#": self.new_id(), "@": own, "ok": True})

    def m_reply_to_other_peer(self) -> Part:
        other = self.shared.other_answered(self.rng, self.cid)
        if other is None:
            return self.m_reply_unknown()
        return self.silent({"#": self.new_id(), "@": other, "ok": True, "fz": "forged"})

    def m_dup_other_peer(self) -> Part:
        """Another connection's id (answered already, so seen first): a duplicate, dropped."""
        other = self.shared.other_answered(self.rng, self.cid)
        if other is None:
            return self.m_get_node()
        return self.refused_write(other)

    def m_dup_resend(self) -> Part:
        own = self.recent_own()
        if own is None:
            return self.m_put()
        return self.refused_write(own)

    def f_dup_same_frame(self) -> Frame:
        msg_id = self.new_id()
        first = self.good_put(msg_id)
        second = self.refused_write(msg_id)
        second.msg = None  # same id: its answer is the first one's
        frame = self.frame_of("dup_same_frame", [first, second], batch=True)
        return frame

    def empty_id_put(self, soul: str, state: int) -> Part:
        value = random_value(self.rng, self.ns)
        self.model.present[(soul, "k")] = value
        return Part(encode({"#": "", "put": {soul: {"_": {"#": soul, ">": {"k": state}}, "k": value}}}), Msg("", SILENT))

    def m_put_empty_id(self) -> Part:
        soul = f"{self.ns}/c{self.cid}/empty{self.n}"
        self.n += 1
        return self.empty_id_put(soul, 1)

    def f_empty_id(self) -> Frame:
        """'#': '' is no id (as in GunJS): applied, never a duplicate, never answered. Puts on a soul
        of their own, read back at the end (several in one frame: the last one's value)."""
        rng = self.rng
        soul = f"{self.ns}/c{self.cid}/empty{self.n}"
        self.n += 1
        parts = []
        for state in range(1, rng.randrange(2, 5)):
            if rng.random() < 0.3:
                parts.append(Part(encode({"#": "", "get": {"#": rng.choice(self.model.souls)}}), Msg("", SILENT)))
            else:
                parts.append(self.empty_id_put(soul, state))
        return self.frame_of("empty_id", parts, batch=len(parts) > 1 or rng.random() < 0.5)

    # -- batches ---------------------------------------------------------------------------------

    GOOD_PARTS = ("put", "put", "put_multi", "put_exotic", "get_node", "get_key", "get_missing", "dam_hello", "put_numeric_id",
                  "get_surrogate_id", "get_surrogate")
    BAD_PARTS = ("bad_put_graph", "bad_state", "bad_value", "bad_get", "bad_id_type", "non_object", "too_far_future",
                 "sea_refused", "put_empty_key", "dam_other", "other_message", "reply_unknown", "dup_resend", "put_no_id", "get_no_id",
                 "put_surrogate", "put_reply_other", "put_empty_id", "dam_hello_odd_pid")

    def parts(self, names: tuple[str, ...]) -> list[Part]:
        """2-8 messages, fewer when they grow past a quarter of the frame limit (a frame must stay under it)."""
        parts: list[Part] = []
        size = 0
        for _ in range(self.rng.randrange(2, 9)):
            if size > self.cfg.max_frame_bytes // 4:
                break
            parts.append(getattr(self, "m_" + self.rng.choice(names))())
            size += len(parts[-1].text)
        return parts

    def f_batch_good(self) -> Frame:
        return self.frame_of("batch_good", self.parts(self.GOOD_PARTS), batch=True)

    def f_batch_mixed(self) -> Frame:
        return self.frame_of("batch_mixed", self.parts(self.GOOD_PARTS + self.BAD_PARTS), batch=True)

    # -- bad messages (answered by id, or with a dam error when they have none) -----------------

    def bad(self, obj_without_id: dict[str, Any], marker: str, numeric: float = 0.1, no_id: float = 0.15) -> Part:
        roll = self.rng.random()
        if roll < no_id:  # nothing to answer by: a dam error ('' is no id)
            return Part(encode(obj_without_id if roll < no_id * 0.7 else {"#": "", **obj_without_id}), dam=marker)
        msg_id = self.numeric_id() if roll < no_id + numeric else self.new_id()
        if "put" in obj_without_id:  # a put is remembered before its graph is checked; a bad get never is
            self.tracked(msg_id)
        return Part(encode({"#": msg_id, **obj_without_id}), Msg(msg_id, ERR, marker=marker))

    def refused_graph(self) -> dict[str, Any]:
        """A valid node on a watched soul, newer than anything: the whole put must be refused, so it must not show."""
        graph, _ = self.put_fields([self.rng.choice(self.model.souls)], 1, refused=True)
        return graph

    def with_bad_node(self, bad_soul: str, bad_node: Any) -> dict[str, Any]:
        good = self.refused_graph()
        if self.rng.random() < 0.5:
            return {**good, bad_soul: bad_node}
        return {bad_soul: bad_node, **good}

    def m_bad_put_graph(self) -> Part:
        rng = self.rng
        b = f"{self.ns}/c{self.cid}/bad{self.n}"
        st = self.model.refused_state()
        variant = rng.randrange(12)
        if variant == 0:
            graph: Any = rng.choice(["str", 5, [], None, True, [{"_": {}}]])
        elif variant == 1:
            graph = {}
        elif variant == 2:
            graph = self.with_bad_node(b, rng.choice(["x", 5, None, [], True]))
        elif variant == 3:
            graph = self.with_bad_node(b, {"k": 1})
        elif variant == 4:
            graph = self.with_bad_node(b, {"_": rng.choice(["x", [], None, 5]), "k": 1})
        elif variant == 5:
            meta = rng.choice([{"#": b + "-other", ">": {"k": st}}, {">": {"k": st}}, {"#": 5, ">": {"k": st}}, {"#": None, ">": {"k": st}}])
            graph = self.with_bad_node(b, {"_": meta, "k": 1})
        elif variant == 6:
            graph = self.with_bad_node(b, {"_": {"#": b, ">": rng.choice([[], "x", None, 5])}, "k": 1})
        elif variant == 7:
            graph = self.with_bad_node(b, {"_": {"#": b, ">": {"other": st}}, "k": 1})
        elif variant == 8:
            graph = {"#": b, ".": "k", ":": 1, ">": st}  # the single-key form
        elif variant == 9:
            graph = self.with_bad_node("", {"_": {"#": "", ">": {"k": st}}, "k": 1})
        elif variant == 10:
            good = self.refused_graph()
            soul = next(iter(good))
            good[soul]["extra"] = 1  # a key with no state, on the watched node itself
            graph = good
        else:
            graph = self.with_bad_node(b, {"_": {"#": b, ">": {"k": st, "j": st}}, "k": 1, "j": [1]})
        return self.bad({"put": graph}, "Invalid graph")

    def m_bad_state(self) -> Part:
        """States that are not finite numbers: strings, booleans, null, 1e400 (Infinity to JSON.parse)."""
        b = f"{self.ns}/c{self.cid}/bad{self.n}"
        state = self.rng.choice(["1", "NaN", "Infinity", True, False, None, [], {}, Lit("1e400"), Lit("-1e400"), Lit("1E999")])
        return self.bad({"put": self.with_bad_node(b, {"_": {"#": b, ">": {"k": state}}, "k": "v"})}, "Invalid graph")

    def m_bad_value(self) -> Part:
        b = f"{self.ns}/c{self.cid}/bad{self.n}"
        value = self.rng.choice([[], [1], {}, {"#": ""}, {"#": 5}, {"#": "x", "y": 1}, {"a": 1}, {"#": None}, Lit("1e400"), Lit("-1e999")])
        return self.bad({"put": self.with_bad_node(b, {"_": {"#": b, ">": {"k": 1}}, "k": value})}, "Invalid graph")

    def m_too_far_future(self) -> Part:
        """Huge states: further ahead than --max-skew-ms is refused; a valid field beside it is still applied."""
        b = f"{self.ns}/c{self.cid}/far{self.n}"
        state = self.rng.choice([Lit("1" + "0" * 30), 1e300, time.time() * 1000 + 1e9, Lit("1.7976931348623157e308"), 2**64])
        bad_node = {"_": {"#": b, ">": {"k": state}}, "k": "future"}
        msg_id = self.new_id()
        self.tracked(msg_id)
        if self.rng.random() < 0.5:
            graph, fields = self.put_fields([self.rng.choice(self.model.souls)], 1)  # applied although the reply is err
            graph[b] = bad_node
            return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, ERR, marker="ahead of the relay's clock", on_reply=self.model.acked(fields)))
        return Part(encode({"#": msg_id, "put": {b: bad_node}}), Msg(msg_id, ERR, marker="ahead of the relay's clock"))

    def m_sea_refused(self) -> Part:
        """SEA refusals and the relay's system space; a valid field beside them is still applied."""
        rng = self.rng
        choice = rng.randrange(5)
        if choice == 0:
            soul, key, value = f"~fz{self.cid}a{self.n}.b{self.n}", "k", "unsigned"
        elif choice == 1:
            soul, key, value = f"~@fzalias{self.n}", f"~x{self.n}.y", {"#": "~somebody.else"}
        elif choice == 2:
            soul, key, value = f"{self.ns}docs#", f"k{self.n}", "text whose hash is not the key"
        elif choice == 3:
            soul, key, value = SYSTEM_NODE, "reset", "forged"
        else:
            soul, key, value = f"~fz{self.cid}a{self.n}.b{self.n}", "pub", "not-the-pub"
        bad_node = {"_": {"#": soul, ">": {key: 1}}, key: value}
        msg_id = self.new_id()
        self.tracked(msg_id)
        if rng.random() < 0.5:
            graph, fields = self.put_fields([rng.choice(self.model.souls)], 1)
            graph[soul] = bad_node
            return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, ERR, on_reply=self.model.acked(fields)))
        return Part(encode({"#": msg_id, "put": {soul: bad_node}}), Msg(msg_id, ERR))

    def m_put_empty_key(self) -> Part:
        """The key '' is refused field by field ("Empty soul or key."); the put's other fields apply."""
        graph, fields = self.put_fields([self.rng.choice(self.model.souls)], self.rng.randrange(1, 3))
        soul = next(iter(graph))
        state = self.model.refused_state()
        graph[soul]["_"][">"][""] = state
        graph[soul][""] = "empty key"
        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, ERR, marker="Empty soul or key", on_reply=self.model.acked(fields)))

    def m_system_space(self) -> Part:
        msg_id = self.new_id()
        self.tracked(msg_id)
        graph = {SYSTEM_NODE: {"_": {"#": SYSTEM_NODE, ">": {"config": 1}}, "config": "forged"}}
        return Part(encode({"#": msg_id, "put": graph}), Msg(msg_id, ERR, marker="system space"))

    def m_bad_get(self) -> Part:
        soul = self.rng.choice(self.model.souls)
        spec = self.rng.choice([
            "s", 5, [], None, True, {"#": ""}, {"#": 5}, {"#": True}, {"#": []}, {},
            {"#": soul, ".": 5}, {"#": soul, ".": True}, {"#": soul, ".": []}, {"#": soul, ".": {"*": 5}},
            {"#": soul, ".": {">": []}}, {"#": {"*": 5}}, {"#": {"=": None, "<": 1}},
            {"#": soul, "%": "many"}, {"#": soul, "%": True}, {"#": soul, "%": []}, {"#": soul, "%": {}},
            # lex objects that name no bound are not queries (a scan of everything, before)
            {"#": {}}, {"#": {"x": 1}}, {"#": {"=": None}}, {"#": {"_": {}}}, {"#": {"-": True}}, {"#": soul, ".": {}},
        ])
        return self.bad({"get": spec}, "Invalid get")

    def m_bad_id_type(self) -> Part:
        msg_id = self.rng.choice([True, False, {}, [], {"a": 1}, ["x"], [[[]]]])
        body = self.rng.choice([{"get": {"#": "x"}}, {"put": {}}, {"dam": "?"}, {"@": "x", "ok": True}, {}])
        return Part(encode({"#": msg_id, **body}), dam="Message id")

    def m_non_object(self) -> Part:
        return Part(encode(self.rng.choice([1, "x", None, True, [], [{"#": "a"}], 1.5])), dam="Each message must be a JSON object")

    def m_deep_value(self) -> Part:
        depth = self.rng.randrange(2, 900)
        deep = Lit("[" * depth + "]" * depth) if self.rng.random() < 0.5 else Lit('{"a":' * depth + "1" + "}" * depth)
        b = f"{self.ns}/c{self.cid}/deep{self.n}"
        return self.bad({"put": self.with_bad_node(b, {"_": {"#": b, ">": {"k": 1}}, "k": deep})}, "Invalid graph", no_id=0.0)

    def m_deep_get(self) -> Part:
        depth = self.rng.randrange(2, 900)
        soul = self.rng.choice(self.model.souls)
        return self.bad({"get": {"#": soul, ".": Lit('{"*":' * depth + '"k"' + "}" * depth)}}, "Invalid get", no_id=0.0)

    def m_deep_id(self) -> Part:
        depth = self.rng.randrange(2, 900)
        return Part(encode({"#": Lit("[" * depth + "]" * depth), "get": {"#": "x"}}), dam="Message id")

    def m_deep_silent(self) -> Part:
        """Deep nesting where the relay does not look: a dam kind, a reply's ok, an unknown field."""
        depth = self.rng.randrange(2, 900)
        deep = Lit("[" * depth + "]" * depth)
        msg_id = self.new_id()
        self.tracked(msg_id)
        obj = self.rng.choice([{"#": msg_id, "dam": deep}, {"#": msg_id, "@": "nobody-" + msg_id, "ok": deep}, {"#": msg_id, "zz": deep}])
        return Part(encode(obj), Msg(msg_id, SILENT))

    # -- lone surrogates: valid in a JavaScript string, not in UTF-8 text (so not in the store) ----

    def m_get_surrogate(self) -> Part:
        """A soul or key holding a lone surrogate can never be stored, so it is never found: a get
        for one (or a lex prefix holding one) is answered not-found. (None of SURROGATES leads a
        character of a stored key or soul: a prefix ending in such a lead surrogate would match
        it in GunJS, which compares UTF-16 code units; see tests/core/test_properties_lex.py.)"""
        rng = self.rng
        sur = rng.choice(SURROGATES)
        soul = rng.choice(self.model.souls)
        get = rng.choice([
            lambda: {"#": sur},
            lambda: {"#": soul + sur},
            lambda: {"#": sur + soul},
            lambda: {"#": {"=": soul + sur}},
            lambda: {"#": soul, ".": sur},
            lambda: {"#": soul, ".": rng.choice(KEYS) + sur},
            lambda: {"#": soul, ".": {"*": sur}},
            lambda: {"#": {"*": f"{self.ns}/c{self.cid}/s" + sur}, "%": 2000},
        ])()
        msg_id = self.new_id()
        self.tracked(msg_id)
        return Part(encode({"#": msg_id, "get": get}), Msg(msg_id, ANSWER, check=lambda r: "put" in r and "data for a soul or key that cannot be stored" or None))

    def m_put_surrogate(self) -> Part:
        """A soul or key holding a lone surrogate refuses the whole put at validation: nothing of it
        is written, neither a soul of its own nor a watched soul with a state newer than anything."""
        rng = self.rng
        sur = rng.choice(SURROGATES + ("\udc00\ud800",))
        soul = f"{self.ns}/c{self.cid}/sur{self.n}"
        self.n += 1
        self.model.absent.add(soul)
        st = self.model.refused_state()
        if rng.random() < 0.5:
            bad = rng.choice([sur, sur + soul, soul + sur, soul[:3] + sur + soul[3:]])
            bad_node = {"_": {"#": bad, ">": {"k": st}}, "k": random_value(rng, self.ns)}
            graph = self.with_bad_node(bad, bad_node)
            graph[soul] = {"_": {"#": soul, ">": {"a": st}}, "a": "v"}
            marker = "souls must be valid Unicode"
        else:
            key = rng.choice([sur, "k" + sur, sur + "k", "a" + sur + "b"])
            keys = rng.sample(["a", key, "b"], 3)
            node = {"_": {"#": soul, ">": {k: st for k in keys}}, **{k: random_value(rng, self.ns) for k in keys}}
            graph = self.with_bad_node(soul, node)
            marker = "keys must be valid Unicode"
        return self.bad({"put": graph}, marker)

    def m_get_surrogate_id(self) -> Part:
        """An id holding a lone surrogate is answered like any other, data included."""
        rng = self.rng
        with_data = [s for s in self.model.souls if self.model.floors(s)]
        soul = rng.choice(with_data) if with_data and rng.random() < 0.8 else None
        sur = rng.choice(SURROGATES)
        base = self.new_id()
        return self.get_node(rng.choice([base + sur + "x", sur + base, base[:3] + sur + base[3:]]), soul)

    # -- numbers past the doubles' range ------------------------------------------------------------

    def m_huge_int_beyond_double(self) -> Part:
        """An integer literal past the doubles' range is Infinity to JSON.parse: not a value, not a state."""
        huge = Lit(self.rng.choice(["", "-"]) + "1" + "0" * self.rng.randrange(310, 400))
        b = f"{self.ns}/c{self.cid}/huge{self.n}"
        node = {"_": {"#": b, ">": {"k": huge}}, "k": 1} if self.rng.random() < 0.5 else {"_": {"#": b, ">": {"k": 1}}, "k": huge}
        return self.bad({"put": self.with_bad_node(b, node)}, "Invalid graph", numeric=0.3)

    def m_get_infinite_budget(self) -> Part:
        """'%' read as RAD reads it: +Infinity (1e400) or a 400-digit integer is no budget (the whole
        node); below 1 (-Infinity, -5, 0) is one item (only what costs nothing, '' values, may come
        before it)."""
        whole_node = self.rng.random() < 0.5
        budget = self.rng.choice(["1e400", "1" + "0" * 400] if whole_node else ["-1e400", "-1" + "0" * 400, "-5", "0", "0.5"])
        part = self.get_node(self.new_id())
        obj = json.loads(part.text)
        obj["get"]["%"] = Lit(budget)
        part.text = encode(obj)
        msg = part.msg
        assert msg is not None and msg.check is not None
        whole = msg.check
        if whole_node:
            return part

        def check(reply: dict[str, Any]) -> str | None:  # one item: only what is there is checked
            put = reply.get("put")
            if put is None:
                return whole(reply)  # not found: only if nothing was acknowledged
            soul = next(iter(put))
            node = put[soul]
            problem = self.model.check_node(soul, node, None)
            if problem is None and sum(1 for k, v in node.items() if k != "_" and v != "") > 1:
                return f"budget {budget} (one item) served keys {[k for k in node if k != '_']!r:.80}"
            return problem

        msg.check = check
        return part

    # -- a put answering another peer's message --------------------------------------------------

    def m_put_reply_other(self) -> Part:
        """A put whose '@' names another connection's message (as a peer answers a get the relay
        passed it): checked like any put and answered to its sender, and passed on to that
        connection with exactly the fields that passed every check (nothing when none did)."""
        rng, model = self.rng, self.model
        other = self.shared.other_message(rng, self.cid)
        if other is None:
            return self.m_put()
        to, reply_to, asked_at, epoch = other
        msg_id = self.numeric_id() if rng.random() < 0.15 else self.new_id()
        self.tracked(msg_id)
        if rng.random() < 0.15:  # an invalid graph: refused whole, nothing passed on
            graph = self.refused_graph()
            bad = rng.choice(SURROGATES) + f"{self.ns}/c{self.cid}/bad{self.n}"
            graph[bad] = {"_": {"#": bad, ">": {"k": 1}}, "k": "x"} if rng.random() < 0.5 else "not a node"
            entry = PassOn(to, reply_to, epoch, asked_at, {})
            self.shared.pass_on[idkey(msg_id)] = entry  # type: ignore[index]
            msg = Msg(msg_id, ERR, marker="Invalid graph", on_reply=lambda _r: setattr(entry, "handled_at", time.monotonic()))
            return Part(encode({"#": msg_id, "@": reply_to, "put": graph}), msg)
        souls = rng.sample(model.souls, rng.choice([0, 1, 1, 2, 3]))
        graph, fields = self.put_fields(souls, rng.randrange(1, 4)) if souls else ({}, [])
        passing = {(soul, key): (state, graph[soul][key]) for soul, key, state in fields}
        refusals = rng.sample(["system", "future", "empty_key", "unsigned"], rng.choice([0, 0, 1, 1, 2]) if souls else rng.choice([1, 2]))
        markers: list[str] = []
        self.n += 1
        for refusal in refusals:
            if refusal == "system":
                graph[SYSTEM_NODE] = {"_": {"#": SYSTEM_NODE, ">": {"reset": 1}}, "reset": "forged"}
                markers.append("system space")
            elif refusal == "future":
                far = f"{self.ns}/c{self.cid}/far{self.n}"
                model.absent.add(far)
                graph[far] = {"_": {"#": far, ">": {"k": time.time() * 1000 + 1e9}}, "k": "future"}
                markers.append("ahead of the relay's clock")
            elif refusal == "empty_key" and souls:
                node = graph[souls[0]]
                node["_"][">"][""] = model.refused_state()
                node[""] = "empty key"
                markers.append("Empty soul or key")
            else:
                user = f"~fz{self.cid}p{self.n}.q{self.n}"
                model.absent.add(user)
                graph[user] = {"_": {"#": user, ">": {"k": 1}}, "k": "unsigned"}
        entry = PassOn(to, reply_to, epoch, asked_at, passing)
        self.shared.pass_on[idkey(msg_id)] = entry  # type: ignore[index]
        acked = model.acked(fields)

        def handled(reply: dict[str, Any]) -> None:
            entry.handled_at = time.monotonic()
            acked(reply)

        expect = Msg(msg_id, ERR, marker=markers[0] if markers else None, on_reply=handled) if refusals else Msg(msg_id, ACK, on_reply=handled)
        return Part(encode({"#": msg_id, "@": reply_to, "put": graph}), expect)

    # -- bad frames ------------------------------------------------------------------------------

    def dam_frame(self, kind: str, text: str | bytes, marker: str, **kw: Any) -> Frame:
        return Frame(kind, text, dams=[marker], **kw)

    def good_text(self) -> str:
        """Valid message text that is never sent as is (nothing registered, no id remembered)."""
        soul = self.rng.choice(self.model.souls)
        return self.rng.choice([
            lambda: encode({"#": self.new_id(), "get": {"#": soul}}),
            lambda: encode({"#": self.new_id(), "put": self.refused_graph()}),
            lambda: encode([{"#": self.new_id(), "get": {"#": soul, ".": "k1"}}, {"#": self.new_id(), "put": self.refused_graph()}]),
        ])()

    def f_invalid_json(self) -> Frame:
        rng = self.rng
        for _ in range(20):
            text = rng.choice([
                lambda: "".join(rng.choice('{}[]",:0123456789abcnulltrue \\') for _ in range(rng.randrange(1, 40))),
                lambda: self.good_text() + rng.choice(["x", "{", "]", ",", "}", '"']),
                lambda: self.good_text()[:-1] + ",}",
                lambda: self.good_text().replace('"', "'", 2),
                lambda: "{'#':'x','get':{'#':'s'}}",
                lambda: '{"#":"x",}',
                lambda: '{"#":"x" "get":{}}',
                lambda: "// comment\n{}",
                lambda: '{"#":undefined}',
                lambda: "",
                lambda: "   ",
                lambda: "}{",
                lambda: "{}{}",
                lambda: "\ufeff{}",
                lambda: '{"#":"\\x41"}',
                lambda: '{"#":"\\u12"}',
                lambda: '{"#":"tab\there"}',
                lambda: '{"#":01}',
                lambda: '{"#":+1}',
                lambda: '{"#":.5}',
                lambda: '{"#":0x10}',
            ])()
            if not is_json(text):
                return self.dam_frame("invalid_json", text, "parse error")
        return self.dam_frame("invalid_json", "{", "parse error")

    def f_truncated(self) -> Frame:
        """Any proper prefix of an object or array is invalid JSON; the put in it must not apply."""
        text = self.good_text()
        cut = self.rng.randrange(1, len(text))
        return self.dam_frame("truncated", text[:cut], "parse error")

    def f_nan_infinity_literal(self) -> Frame:
        literal = self.rng.choice(["NaN", "Infinity", "-Infinity", "nan", "inf", "undefined"])
        b = f"{self.ns}/c{self.cid}/nan{self.n}"
        self.n += 1
        text = self.rng.choice([
            '{"#":"%s","put":{"%s":{"_":{"#":"%s",">":{"k":%s}},"k":1}}}' % (self.new_id(), b, b, literal),
            '{"#":"%s","put":{"%s":{"_":{"#":"%s",">":{"k":1}},"k":%s}}}' % (self.new_id(), b, b, literal),
            '{"#":"%s","get":{"#":"%s","%%":%s}}' % (self.new_id(), b, literal),
            '{"#":%s,"get":{"#":"%s"}}' % (literal, b),
            "[%s]" % literal,
            literal,
        ])
        return self.dam_frame("nan_infinity_literal", text, "parse error")

    def f_non_string_keys(self) -> Frame:
        text = self.rng.choice([
            '{1:"x"}', '{#:"x"}', '{null:1}', '{true:1}', '{[1]:1}', '{{}:1}',
            '{"#":"%s","get":{#:"s"}}' % self.new_id(),
            '{"#":"%s","put":{s:{"_":{"#":"s",">":{"k":1}},"k":1}}}' % self.new_id(),
            '{"#":"%s","put":{"s":{"_":{"#":"s",">":{1:1}},"1":1}}}' % self.new_id(),
        ])
        return self.dam_frame("non_string_keys", text, "parse error")

    def f_scalar_frame(self) -> Frame:
        text = self.rng.choice(["5", "-1", '"x"', "true", "false", "null", "1e400", "-1e400", "0.5", '"\\ud800"', "1" + "0" * 50])
        return self.dam_frame("scalar_frame", text, "must be a JSON object or an array")

    def f_non_object_messages(self) -> Frame:
        parts = [self.m_non_object() for _ in range(self.rng.randrange(1, 6))]
        if self.rng.random() < 0.5:
            parts.insert(self.rng.randrange(len(parts) + 1), self.m_get_missing())
        return self.frame_of("non_object_messages", parts, batch=True)

    def f_deep_nesting(self) -> Frame:
        """Past the parser's depth (orjson: 1024, json: the recursion limit): a parse error. Within
        it, an array of arrays is one message that is not an object; an object of objects is a
        message of no known type (silent)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            opener, closer = rng.choice([("[", "]"), ('{"a":', "}"), ('{"#":', "}"), ('{"put":', "}")])
            most = (self.cfg.max_frame_bytes - 10) // (len(opener) + len(closer))  # under the frame limit
            depth = min(rng.choice([1100, 2000, 5000, 100_000]), most)
            text = opener * depth + ("1" + closer * depth if rng.random() < 0.5 else "")
            return self.dam_frame("deep_nesting", text, "parse error")
        depth = rng.randrange(2, 1000)
        if roll < 0.8:
            return self.dam_frame("deep_nesting", "[" * (depth + 1) + "]" * (depth + 1), "Each message must be a JSON object")
        return Frame("deep_nesting", '{"a":' * depth + "1" + "}" * depth)

    def f_binary(self) -> Frame:
        rng = self.rng
        payload = rng.choice([
            lambda: self.good_text().encode(),  # valid JSON, but binary: not read (nothing remembered)
            lambda: b"",
            lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
            lambda: b"\x00\x01binary",
            lambda: "[]".encode(),
        ])()
        return self.dam_frame("binary", payload, "Binary", binary=True)

    def f_oversize(self) -> Frame:
        """Over max_frame_bytes, within the websocket layer's limit: an error reply, the socket stays."""
        limit = self.cfg.max_frame_bytes
        size = self.rng.randrange(limit + 1, min(2 * limit, self.cfg.ws_max_bytes) + 1)
        msg_id = self.new_id()
        shape = self.rng.random()
        if shape < 0.4:
            text = '{"#":"%s","get":{"#":"%s"}}' % (msg_id, "s" * (size - 30 - len(msg_id)))
        elif shape < 0.7:
            text = "[" + " " * (size - 2) + "]"
        else:
            text = ("{" * size)[:size]
        frame = self.dam_frame("oversize", text, "too big")
        frame.msgs.append(Msg(msg_id, SILENT, kind="oversize"))
        return frame

    def f_close_big(self) -> Frame:
        size = self.cfg.ws_max_bytes + self.rng.randrange(1, 1 << 16)
        return Frame("close_big", "[" + " " * (size - 2) + "]", close_code=1009)

    def f_huge_100mb(self) -> Frame:
        return Frame("huge_100mb", "x" * 100_000_000, close_code=1009)

    def f_invalid_utf8(self) -> Frame:
        payload = self.rng.choice([b'{"#":"\xff\xfe"}', b"\xc3\x28", b"\xed\xa0\x80", b'{"#":"a","get":{"#":"\xf0\x28\x8c\x28"}}'])
        return Frame("invalid_utf8", payload, raw_text=True, close_code=1007)

    def f_multibyte(self) -> Frame:
        """The frame limit counts UTF-8 bytes: a frame of multi-byte characters over it (with fewer
        characters than the limit) gets "too big" and nothing of it is applied; one of exactly
        the limit, or just under it, is served."""
        rng, model = self.rng, self.model
        limit = self.cfg.max_frame_bytes
        char = rng.choice(["é", "€", "漢", "😀"])
        width = len(char.encode())
        over = rng.random() < 0.7
        if not over:
            size = limit - rng.choice([0, 0, 1, 3, 1000])
        elif rng.random() < 0.3:
            size = limit + rng.randrange(1, 4 * width + 1)  # just over
        else:  # within the websocket layer's limit
            size = rng.randrange(limit + 1, min(2 * limit, self.cfg.ws_max_bytes) + 1)
        msg_id = self.new_id()
        soul = f"{self.ns}/c{self.cid}/mb{self.n}"
        state = model.state()
        put = rng.random() < 0.5

        def text_of(filler: str) -> str:
            obj = {"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {"k": state}}, "k": filler}}} if put else {"#": msg_id, "get": {"#": soul + filler}}
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

        room = size - len(text_of("").encode())
        filler = char * (room // width) + "a" * (room % width)
        text = text_of(filler)
        assert len(text.encode()) == size and (not over or len(text) < limit), (size, len(text))
        if over:
            frame = Frame("multibyte", text, dams=["too big"])
            frame.msgs.append(Msg(msg_id, SILENT, kind="multibyte"))
            if put:
                model.absent.add(soul)
            return frame
        self.tracked(msg_id)
        if put:
            model.present[(soul, "k")] = filler
            return Frame("multibyte", text, [Msg(msg_id, ACK, kind="multibyte")])
        if len(soul + filler) > MAX_FOLLOWED_TEXT:  # a get subscribes: a soul this long is not followed
            return Frame("multibyte", text, [Msg(msg_id, ERR, marker="Too long to follow", kind="multibyte")])
        return Frame("multibyte", text, [Msg(msg_id, ANSWER, check=lambda r: "put" in r and "data for a soul never written" or None, kind="multibyte")])


# (kind, weight) -- frame kinds "f_<kind>" or single-message kinds "m_<kind>"
KINDS: list[tuple[str, float]] = [
    ("put", 14), ("put_multi", 4), ("put_stale", 2), ("put_exotic", 4),
    ("put_special_names", 1), ("put_numeric_id", 1), ("put_at_unknown", 1),
    ("put_empty_node", 0.5), ("put_huge_number_value", 0.5), ("put_surrogate_id", 0.3),
    ("put_deferred", 0.1),
    ("get_node", 8), ("get_key", 5), ("get_missing", 3), ("get_lex", 2),
    ("get_soul_lex", 0.5), ("get_numeric_id", 0.5), ("get_huge_budget", 0.3), ("get_lex_no_budget", 0.5), ("many_gets", 0.05),
    ("dam_hello", 1), ("reset_ack_unknown", 0.3), ("dam_hello_odd_pid", 0.2),
    ("dam_other", 1), ("other_message", 0.5), ("reply_unknown", 0.5), ("get_no_id", 0.5),
    ("put_no_id", 0.5), ("keepalive", 0.3),
    ("reuse_hello_id", 0.2), ("reuse_push_id", 0.5), ("reply_to_push", 0.5),
    ("reuse_ack_id", 0.5), ("gun_internal_suffix", 0.5), ("reply_to_own", 0.3),
    ("reply_to_other_peer", 0.3), ("dup_other_peer", 0.3), ("put_reply_other", 0.5),
    ("dup_same_frame", 1), ("dup_resend", 1), ("empty_id", 0.5),
    ("batch_good", 4), ("batch_mixed", 5),
    ("invalid_json", 3), ("truncated", 2), ("nan_infinity_literal", 2), ("non_string_keys", 1),
    ("scalar_frame", 1), ("non_object_messages", 1), ("deep_nesting", 1.5), ("binary", 1.5),
    ("bad_put_graph", 6), ("bad_state", 2), ("too_far_future", 1), ("bad_value", 2),
    ("bad_get", 3), ("bad_id_type", 1), ("deep_value", 0.5), ("deep_get", 0.3),
    ("deep_id", 0.3), ("deep_silent", 0.3), ("sea_refused", 1.5), ("system_space", 0.5), ("put_empty_key", 0.5),
    ("get_surrogate", 0.3), ("put_surrogate", 0.3), ("get_surrogate_id", 0.3),
    ("huge_int_beyond_double", 0.3), ("get_infinite_budget", 0.3),
]
SCHEDULED = ("oversize", "close_big", "huge_100mb", "invalid_utf8", "multibyte")  # counts set in FuzzConfig


# ---------------------------------------------------------------------------------------------
# The driver


@dataclass
class FuzzConfig:
    ws_url: str
    http_url: str
    frames: int = 20_000
    conns: int = 4
    window: int = 32  # frames in flight per connection
    seed: int = 1
    timeout_s: float = 10.0  # no answer within this long is a stall
    max_frame_bytes: int = 64 * 1024  # the relay's --max-frame-bytes
    ws_max_bytes: int = 0  # the websocket layer's limit; 0: max(2 * max_frame_bytes, 1 MiB)
    oversize: int = 20  # frames over max_frame_bytes (dam error)
    close_big: int = 4  # frames over the websocket limit (closed 1009)
    huge_100mb: int = 0  # 100 MB frames (closed 1009)
    invalid_utf8: int = 4  # invalid UTF-8 text frames (closed 1007)
    multibyte: int = 8  # frames of multi-byte text around max_frame_bytes (most over it in bytes, under it in characters)
    admin_token: str | None = None  # to check GET /-/api/peers at the end
    max_seconds: float = 3600.0  # the whole run, a guard
    progress: Callable[[dict[str, Any]], None] | None = None
    progress_every_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.ws_max_bytes:
            self.ws_max_bytes = max(2 * self.max_frame_bytes, MiB)


class Report:
    def __init__(self) -> None:
        self.frames = Counter()  # by kind
        self.classes = Counter()  # good / bad / mixed / silent
        self.messages = 0
        self.replies = Counter()
        self.violations = Counter()  # (category, kind) -> count
        self.examples: dict[tuple[str, str], list[str]] = {}
        self.stalls = Counter()  # kind -> count
        self.expected_errors = 0
        self.errors_as_expected = 0
        self.frames_ok = Counter()  # by class: every expectation met
        self.frames_failed = Counter()  # by class: some expectation not met (or not yet, when counted)
        self.closes = Counter()
        self.reconnects = 0
        self.unexpected_closes = 0
        self.latency_ms: list[float] = []  # a sample
        self.max_latency_ms = 0.0
        self._lat_seen = 0

    def violation(self, category: str, kind: str, detail: str) -> None:
        key = (category, kind)
        self.violations[key] += 1
        examples = self.examples.setdefault(key, [])
        if len(examples) < 5:
            examples.append(detail[:400])

    def latency(self, ms: float) -> None:
        self._lat_seen += 1
        if ms > self.max_latency_ms:
            self.max_latency_ms = ms
        if len(self.latency_ms) < 20000:
            self.latency_ms.append(ms)
        elif random.random() < 20000 / self._lat_seen:
            self.latency_ms[random.randrange(20000)] = ms


def passed_fields_problem(put: Any, expected: dict[tuple[str, str], tuple[Any, Any]]) -> str | None:
    """What is wrong with a passed-on graph that should carry exactly ``expected`` (state, value by (soul, key))."""
    if type(put) is not dict:
        return "'put' is not an object"
    got: dict[tuple[str, str], tuple[Any, Any]] = {}
    for soul, node in put.items():
        meta = node.get("_") if type(node) is dict else None
        if type(meta) is not dict or meta.get("#") != soul or type(meta.get(">")) is not dict:
            return f"node {soul!r} is not a node with its meta"
        states = meta[">"]
        keys = [k for k in node if k != "_"]
        if set(states) != set(keys):
            return f"node {soul!r}: state map keys differ from its keys"
        for key in keys:
            got[(soul, key)] = (states[key], node[key])
    if set(got) != set(expected):
        extra, missing = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
        return f"fields refused or never sent {extra!r:.120} / fields that passed missing {missing!r:.120}"
    for field_, (state, value) in expected.items():
        got_state, got_value = got[field_]
        if type(got_state) not in (int, float) or float(got_state) != float(state) or not same_value(got_value, value):
            return f"{field_!r} is ({got_state!r}, {got_value!r:.60}), not ({state!r}, {value!r:.60}) as sent"
    return None


def _snippet(payload: str | bytes) -> str:
    text = payload if isinstance(payload, str) else repr(payload)
    return text[:160] + (f"...({len(text)} chars)" if len(text) > 160 else "")


class Conn:
    """One websocket connection: sends its generator's frames with a bounded window and checks
    every reply against what was expected, as it arrives."""

    def __init__(self, fuzz: "Fuzz", cid: int, quota: int, schedule: dict[int, str], script: list[Frame] | None = None):
        self.fuzz = fuzz
        self.cfg = fuzz.cfg
        self.report = fuzz.report
        self.cid = cid
        self.quota = quota
        self.schedule = schedule
        self.script = list(script or [])
        self.model = Model(fuzz.ns, cid, fuzz.base)
        self.gen = Generator(self.cfg, cid, random.Random(f"{self.cfg.seed}-{cid}"), self.model, fuzz.shared, self)
        self.ws: Any = None
        self.receiver: asyncio.Task[None] | None = None
        self.expect: dict[str, tuple[Msg, Frame, float]] = {}
        self.silent: dict[str, str] = {"s": "empty_id"}  # id key -> kind ('#': '' is no id: never answered)
        self.sent_log: dict[str, list[str]] = {}  # debugging: id key -> frames that carried it
        self.dam_fifo: deque[tuple[str, Frame, float]] = deque()
        self.slots = asyncio.Semaphore(self.cfg.window)
        self.inflight = 0  # frames whose expectations are not all settled
        self.idle = asyncio.Event()  # no frame in flight
        self.idle.set()
        self.hello_id: str | None = None
        self.hello_reused = False
        self.pushes: deque[tuple[str, float]] = deque(maxlen=32)
        self.reply_ids: deque[str] = deque(maxlen=32)
        self.expected_close: int | None = None
        self.closed = asyncio.Event()
        self.epoch = 0  # sockets opened so far (a new socket is a new peer to the relay)
        self.followed = 0
        self.sent = 0

    # -- helpers the generator uses -----------------------------------------------------------

    def recent_push(self) -> str | None:
        while self.pushes:
            push, at = self.pushes.popleft()
            if time.monotonic() - at < 3.0:  # the relay forgets ids after 9-18 s
                return push
        return None

    def take_reply_id(self) -> str | None:
        return self.reply_ids.popleft() if self.reply_ids else None

    # -- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.cfg.ws_url, max_size=None, compression=None, ping_interval=None, open_timeout=10, close_timeout=5
        )
        self.epoch += 1
        self.hello_id = None
        self.hello_reused = False
        self.followed = 0  # souls this socket asked for that nobody writes (each a subscription)
        self.closed = asyncio.Event()
        self.receiver = asyncio.create_task(self.receive(self.ws))

    async def receive(self, ws: Any) -> None:
        try:
            async for data in ws:
                try:
                    self.on_frame(data)
                except Exception as exc:  # a fuzzer bug must show, not hang the run
                    self.report.violation("fuzzer-error", "receive", f"{type(exc).__name__}: {exc}; frame {_snippet(data)}")
        except websockets.ConnectionClosed:
            pass
        finally:
            code = ws.close_code
            if self.expected_close is not None and code == self.expected_close:
                self.report.closes[code] += 1
            elif not self.fuzz.stopping:
                self.report.unexpected_closes += 1
                self.report.violation("unexpected-close", "connection", f"connection {self.cid} closed with {code} (expected {self.expected_close})")
            self.closed.set()

    async def reconnect(self) -> None:
        for _attempt in range(50):
            try:
                await self.connect()
                self.report.reconnects += 1
                return
            except (OSError, websockets.InvalidHandshake, asyncio.TimeoutError) as exc:
                last = exc
                await asyncio.sleep(0.2)
        raise RuntimeError(f"connection {self.cid} could not reconnect: {last!r}")

    # -- sending -----------------------------------------------------------------------------

    def register(self, frame: Frame) -> None:
        now = time.monotonic()
        frame.sent_at = now
        deadline = now + self.cfg.timeout_s + frame.extra_wait
        for msg in frame.msgs:
            key = idkey(msg.id)
            if key is None:
                continue
            if DEBUG:
                self.sent_log.setdefault(key, []).append(_snippet(frame.payload))
            if msg.expect == SILENT:
                self.silent[key] = msg.kind
                continue
            if key in self.expect:
                self.report.violation("fuzzer-error", frame.kind, f"id {msg.id!r} reused while in flight")
                continue
            self.expect[key] = (msg, frame, deadline)
            frame.pending += 1
            if msg.expect in (ERR, DAMREPLY):
                self.report.expected_errors += 1
        for marker in frame.dams:
            self.dam_fifo.append((marker, frame, deadline))
            frame.pending += 1
            self.report.expected_errors += 1

    def settled(self, frame: Frame) -> None:
        """One expectation of ``frame`` met or given up; when none is left, its slot is free."""
        frame.pending -= 1
        if frame.pending == 0:
            self.finish(frame)

    def finish(self, frame: Frame) -> None:
        (self.report.frames_failed if frame.failed else self.report.frames_ok)[frame.klass] += 1
        if frame.holds_slot:
            frame.holds_slot = False
            self.slots.release()
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    def fail(self, frame: Frame | None, category: str, kind: str, detail: str) -> None:
        if frame is not None:
            frame.failed = True
        self.report.violation(category, kind, detail)

    async def drain(self, limit: float) -> None:
        """Until nothing is in flight (or ``limit`` s have passed)."""
        try:
            await asyncio.wait_for(self.idle.wait(), limit)
        except asyncio.TimeoutError:
            pass  # the sweeper records stalls; the run goes on

    async def send(self, frame: Frame) -> None:
        report = self.report
        report.frames[frame.kind] += 1
        report.classes[frame.klass] += 1
        report.messages += frame.messages
        self.sent += 1
        if frame.close_code is not None:  # what is in flight would be lost with the socket: until nothing is
            await self.drain(self.cfg.timeout_s * 2)
        else:
            await self.slots.acquire()
            frame.holds_slot = True
        self.inflight += 1
        self.idle.clear()
        self.register(frame)
        if frame.pending == 0:
            self.finish(frame)
        if frame.close_code is not None:
            await self.send_closing(frame)
            return
        try:
            if frame.binary:
                await self.ws.send(frame.payload, text=False)
            elif frame.raw_text:
                await self.ws.send(frame.payload, text=True)
            else:
                await self.ws.send(frame.payload)
        except websockets.ConnectionClosed:
            await self.closed.wait()
            self.lost_connection()
            await self.reconnect()

    async def send_closing(self, frame: Frame) -> None:
        self.expected_close = frame.close_code
        try:
            await asyncio.wait_for(self.ws.send(frame.payload, text=True), self.cfg.timeout_s * 3)
        except websockets.ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            self.fail(frame, "stall", frame.kind, f"sending {len(frame.payload)} bytes did not finish")
        try:
            await asyncio.wait_for(self.closed.wait(), self.cfg.timeout_s)
        except asyncio.TimeoutError:
            self.fail(frame, "stall", frame.kind, f"connection not closed after a {len(frame.payload)}-byte frame (expected {frame.close_code})")
            await self.ws.close()
            await self.closed.wait()
        if self.ws.close_code != frame.close_code:
            self.fail(frame, "wrong-close", frame.kind, f"closed with {self.ws.close_code}, expected {frame.close_code}")
        self.expected_close = None
        self.lost_connection()
        await self.reconnect()

    def lost_connection(self) -> None:
        """Expectations of a closed connection will never be met (there should be none left)."""
        now = time.monotonic()
        for key, (msg, frame, _) in list(self.expect.items()):
            del self.expect[key]
            self.fail(frame, "lost-on-close", msg.kind, f"no answer to {msg.id!r} in {now - frame.sent_at:.1f} s, before the connection closed")
            self.settled(frame)
        while self.dam_fifo:
            marker, frame, _ = self.dam_fifo.popleft()
            self.fail(frame, "lost-on-close", frame.kind, f"no dam error {marker!r} before the connection closed")
            self.settled(frame)

    async def run(self, connected: bool = False) -> None:
        if not connected:
            await self.connect()
        index = 0
        while self.script:
            await self.send(self.script.pop(0))
        while index < self.quota and not self.fuzz.stopping:
            kind = self.schedule.get(index)
            try:
                frame = self.gen.frame(kind)
            except Exception as exc:
                self.report.violation("fuzzer-error", kind or "generate", f"{type(exc).__name__}: {exc}")
                index += 1
                continue
            await self.send(frame)
            index += 1
        await self.drain(self.cfg.timeout_s * 3)

    # -- receiving ---------------------------------------------------------------------------

    def on_frame(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.report.violation("protocol", "binary-from-relay", repr(data[:80]))
            return
        parsed = loads(data)
        for message in parsed if type(parsed) is list else [parsed]:
            self.on_message(message)

    def on_message(self, m: Any) -> None:
        report = self.report
        if m == []:  # a keepalive that left in the same turn as other messages: an element of their batch
            report.replies["keepalive_in_batch"] += 1
            return
        if type(m) is not dict:
            report.violation("protocol", "non-object-from-relay", repr(m)[:200])
            return
        dam = m.get("dam")
        if dam == "!":
            report.replies["dam_error"] += 1
            self.on_dam_error(m)
            return
        if dam is not None:
            if "@" not in m:
                if dam == "?" and self.hello_id is None and type(m.get("#")) is str:
                    self.hello_id = m["#"]
                    report.replies["hello"] += 1
                    return
                report.violation("protocol", "unexpected-dam", repr(m)[:200])
                return
            report.replies["hello_answer" if dam == "?" else "dam_reply"] += 1
            self.on_reply(m)
            return
        if "@" in m:
            if m.get("fz") == "forged":
                report.replies["forwarded_forged_reply"] += 1
                return
            passed = self.fuzz.shared.pass_on.get(idkey(m.get("#"))) if "put" in m else None  # type: ignore[arg-type]
            if passed is not None:
                self.on_passed_on(m, passed)
                return
            if type(m.get("#")) is str:
                self.reply_ids.append(m["#"])
            self.on_reply(m)
            return
        if "put" in m:
            report.replies["push"] += 1
            if type(m.get("#")) is str:
                self.pushes.append((m["#"], time.monotonic()))
            put = m["put"]
            if type(put) is not dict:
                report.violation("push", "push", repr(m)[:200])
                return
            for soul, node in put.items():
                if soul in self.model.keys:
                    problem = self.model.check_node(soul, node, None)
                    if problem:
                        report.violation("push", "push", problem)
            return
        if m == {} or set(m) <= {"#"}:
            report.violation("protocol", "empty-message", repr(m)[:200])
            return
        report.violation("protocol", "unexpected-message", repr(m)[:200])

    def on_passed_on(self, m: dict[str, Any], passed: PassOn) -> None:
        """A put another connection sent in answer to one of ours, passed on by the relay."""
        self.report.replies["passed_on_put"] += 1
        problem: str | None
        if passed.seen:
            problem = "passed on twice"
        elif passed.to != self.cid:
            problem = f"passed on to connection {self.cid}, not to {passed.to} whose message it answers"
        elif not passed.fields:
            problem = "passed on, though no field of it passed the relay's checks"
        elif m.get("@") != passed.reply_to or type(m.get("@")) is not type(passed.reply_to):
            problem = f"'@' is not {passed.reply_to!r}"
        else:
            problem = passed_fields_problem(m.get("put"), passed.fields)
        passed.seen = True
        if problem is not None:
            self.fail(None, "passed-on", "put_reply_other", f"{problem}; connection {self.cid} got {repr(m)[:240]}")

    def on_dam_error(self, m: dict[str, Any]) -> None:
        text = m.get("err")
        if type(text) is not str:
            self.report.violation("protocol", "dam-error-without-text", repr(m)[:200])
            return
        match = next((i for i, (marker, _, _) in enumerate(self.dam_fifo) if marker in text), None)
        if match is None:
            self.report.violation("unexpected-dam-error", "?", text[:200])
            return
        for _ in range(match):  # older expected dam errors that never came
            marker, frame, _ = self.dam_fifo.popleft()
            self.fail(frame, "missing-dam-error", frame.kind, f"no dam error {marker!r} for {_snippet(frame.payload)}")
            self.settled(frame)
        marker, frame, _ = self.dam_fifo.popleft()
        self.report.errors_as_expected += 1
        self.report.latency((time.monotonic() - frame.sent_at) * 1000)
        self.settled(frame)

    def on_reply(self, m: dict[str, Any]) -> None:
        report = self.report
        key = idkey(m["@"])
        entry = self.expect.pop(key, None) if key is not None else None
        if entry is None:
            kind = self.silent.get(key) if key is not None else None
            if kind is not None:
                self.fail(None, "answered-silent", kind, f"{repr(m)[:200]} {self.sent_log.get(key, '')}")
            elif key is not None and key in self.fuzz.late:
                report.replies["late"] += 1
            else:
                self.fail(None, "unexpected-reply", "?", repr(m)[:200])
            return
        msg, frame, _deadline = entry
        report.latency((time.monotonic() - frame.sent_at) * 1000)
        problem = self.judge(msg, m)
        if problem is not None:
            self.fail(frame, "wrong-answer", msg.kind, f"{problem}; reply {repr(m)[:160]}; sent {_snippet(frame.payload)}")
        else:
            if msg.on_reply is not None:
                msg.on_reply(m)
            if msg.expect in (ERR, DAMREPLY):
                report.errors_as_expected += 1
            if msg.expect in (ACK, ANSWER, HELLO, DAMREPLY):  # ids the relay remembers (a bad get's it does not)
                shared = self.fuzz.shared.answered.setdefault(self.cid, deque(maxlen=64))
                shared.append((msg.id, frame.sent_at, self.epoch))
        self.settled(frame)

    def judge(self, msg: Msg, m: dict[str, Any]) -> str | None:
        report = self.report
        err = m.get("err")
        expect = msg.expect
        if err is not None:
            report.replies["err"] += 1
        elif "put" in m:
            report.replies["data"] += 1
        elif m.get("ok") is True:
            report.replies["ok"] += 1
        else:
            report.replies["not_found" if "dam" not in m else "dam_ok"] += 1
        if expect == ACK:
            return None if m.get("ok") is True and err is None else "expected ok"
        if expect == ERR:
            if type(err) is not str:
                return "expected err"
            return None if msg.marker is None or msg.marker in err else f"err text lacks {msg.marker!r}"
        if expect == HELLO:
            return None if m.get("dam") == "?" and type(m.get("pid")) is str else "expected a hello answer"
        if expect == DAMREPLY:
            return None if type(err) is str and (msg.marker is None or msg.marker in err) else "expected a dam reply with err"
        if err is not None:
            return "expected an answer, got err"
        if m.get("ok") is not None:
            return "an answer to a get carries ok"
        return msg.check(m) if msg.check is not None else None

    def sweep(self, now: float) -> None:
        for key, (msg, frame, deadline) in list(self.expect.items()):
            if deadline < now:
                del self.expect[key]
                self.fuzz.late.add(key)
                self.report.stalls[msg.kind] += 1
                self.fail(frame, "stall", msg.kind, f"no answer ({msg.expect}) to {msg.id!r} in {now - frame.sent_at:.1f} s; sent {_snippet(frame.payload)}")
                self.settled(frame)
        while self.dam_fifo and self.dam_fifo[0][2] < now:
            marker, frame, _ = self.dam_fifo.popleft()
            self.report.stalls[frame.kind] += 1
            self.fail(frame, "stall", frame.kind, f"no dam error {marker!r} in {now - frame.sent_at:.1f} s for {_snippet(frame.payload)}")
            self.settled(frame)


class Fuzz:
    def __init__(self, cfg: FuzzConfig):
        self.cfg = cfg
        self.report = Report()
        self.shared = Shared()
        rng = random.Random(cfg.seed)
        self.ns = f"fz{rng.randrange(36**4):04x}"
        self.base = int(time.time() * 1000) - 1_000_000_000  # ~11.6 days ago: every state is in the past
        self.stopping = False
        self.late: set[str] = set()
        self.conns: list[Conn] = []
        self.health: dict[str, Any] = {}

    def schedules(self) -> list[dict[int, str]]:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}-schedule")
        quota = cfg.frames // cfg.conns
        out: list[dict[int, str]] = [{} for _ in range(cfg.conns)]
        for kind in SCHEDULED:
            for i in range(getattr(cfg, kind)):
                conn = i % cfg.conns
                for _ in range(100):
                    index = rng.randrange(1, max(2, quota))
                    if index not in out[conn]:
                        out[conn][index] = kind
                        break
        return out

    def warmup_script(self, conn: Conn) -> list[Frame]:
        """Ids and souls named like JavaScript internals, before anyone else could use them."""
        frames = []
        for special in SPECIAL_IDS:
            soul = special
            key = f"{self.ns}.warmup.{special}"
            state = conn.model.state()
            conn.model.wrote(soul, key, state, special)
            graph = {soul: {"_": {"#": soul, ">": {key: state}}, key: special}}
            frame = Frame("special_ids", encode({"#": special, "put": graph}))
            frame.msgs.append(Msg(special, ACK, on_reply=conn.model.acked([(soul, key, state)]), kind="special_ids"))
            frames.append(frame)
        return frames

    async def sweeper(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for conn in self.conns:
                conn.sweep(now)

    async def progress(self, started: float) -> None:
        while True:
            await asyncio.sleep(self.cfg.progress_every_s)
            if self.cfg.progress is not None:
                sent = sum(c.sent for c in self.conns)
                self.cfg.progress({"frames": sent, "elapsed_s": time.monotonic() - started,
                                   "violations": sum(self.report.violations.values()), "stalls": sum(self.report.stalls.values())})

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.monotonic()
        duration = 0.0
        schedules = self.schedules()
        quota = cfg.frames // cfg.conns
        self.conns = [Conn(self, cid, quota + (1 if cid < cfg.frames % cfg.conns else 0), schedules[cid]) for cid in range(cfg.conns)]
        self.conns[0].script = self.warmup_script(self.conns[0])
        sweeper = asyncio.create_task(self.sweeper())
        ticker = asyncio.create_task(self.progress(started))
        try:
            # the warm-up first, then everyone
            first = self.conns[0]
            await first.connect()
            while first.script:
                await first.send(first.script.pop(0))
            await first.drain(cfg.timeout_s * 2)
            runs = [asyncio.create_task(c.run(connected=c is first)) for c in self.conns]
            done, pending = await asyncio.wait(runs, timeout=cfg.max_seconds)
            for task in pending:
                self.report.violation("stall", "run", "the run did not finish within max_seconds")
                task.cancel()
            for task in done:
                if task.exception() is not None:
                    exc = task.exception()
                    self.report.violation("fuzzer-error", "connection", f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(1.5)  # late answers to silent messages (and late passed-on puts) would show now
            for conn in self.conns:
                conn.sweep(time.monotonic() + cfg.timeout_s * 10)  # whatever is still expected is a stall
            duration = time.monotonic() - started
            self.check_passed_on()
            await self.final_check()
            await self.check_http()
        finally:
            self.stopping = True
            sweeper.cancel()
            ticker.cancel()
            for conn in self.conns:
                if conn.ws is not None:
                    try:
                        await asyncio.wait_for(conn.ws.close(), 5)
                    except Exception:
                        pass
        return self.summary(duration)

    # -- the end: read everything back ------------------------------------------------------

    def check_passed_on(self) -> None:
        """Every put answering another connection's message, with fields that passed, reached that
        connection, unless that connection's socket was replaced meanwhile (the relay passes it
        to the socket the message came from) or the relay may have forgotten its message's id
        (it remembers one for 9 s at least)."""
        figures: Counter[str] = Counter()
        for entry in self.shared.pass_on.values():
            if entry.seen:
                figures["passed_on"] += 1
            elif not entry.fields:
                figures["nothing_passed"] += 1
            elif entry.handled_at is None:
                figures["sender_unanswered"] += 1  # a stall, counted as such
            elif self.conns[entry.to].epoch != entry.epoch:
                figures["asker_reconnected"] += 1
            elif entry.handled_at - entry.asked_at >= 8.0:
                figures["asker_id_maybe_forgotten"] += 1
            else:
                figures["missing"] += 1
                self.report.violation("passed-on", "put_reply_other", f"connection {entry.to} never got the put answering {entry.reply_to!r} "
                                      f"({len(entry.fields)} field(s) passed)")
        self.passed_on = {"sent": len(self.shared.pass_on), **figures}

    async def final_check(self) -> None:
        """Every soul written, read back on a fresh connection: the newest acknowledged write of
        every key, nothing a refused or dropped put carried, every put without an id applied."""
        report = self.report
        queries: list[tuple[dict[str, Any], Callable[[dict[str, Any]], str | None]]] = []
        for conn in self.conns:
            model = conn.model
            for soul in model.keys:
                if soul in SHARED_SOULS:
                    for key in sorted(k for (s, k) in model.hist if s == soul):
                        queries.append(({"#": soul, ".": key}, self.final_node_check(model, soul, {key})))
                else:
                    queries.append(({"#": soul}, self.final_node_check(model, soul, None)))
            for (soul, key), value in model.present.items():
                queries.append(({"#": soul}, self.present_check(soul, key, value)))
            for soul in model.absent:
                queries.append(({"#": soul}, lambda r, soul=soul: f"{soul!r} exists: a refused put wrote it ({repr(r.get('put'))[:120]})" if "put" in r else None))
        self.final = {"queries": len(queries), "mismatches": 0, "unanswered": 0}
        if not queries:
            return
        async with websockets.connect(self.cfg.ws_url, max_size=None, compression=None, ping_interval=None, open_timeout=10) as ws:
            waiting: dict[str, Callable[[dict[str, Any]], str | None]] = {}
            for start in range(0, len(queries), 50):
                batch = []
                for i, (get, check) in enumerate(queries[start : start + 50]):
                    msg_id = f"{self.ns}.final.{start + i}"
                    waiting[msg_id] = check
                    batch.append({"#": msg_id, "get": get})
                await ws.send(dumps(batch))
            deadline = time.monotonic() + self.cfg.timeout_s * 3
            while waiting and time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                parsed = loads(data)
                for m in parsed if type(parsed) is list else [parsed]:
                    check = waiting.pop(m.get("@"), None) if type(m) is dict and type(m.get("@")) is str else None
                    if check is None:
                        continue
                    problem = "error: " + str(m["err"]) if "err" in m else check(m)
                    if problem is not None:
                        self.final["mismatches"] += 1
                        report.violation("final-readback", "readback", problem)
            self.final["unanswered"] = len(waiting)
            for msg_id in list(waiting)[:5]:
                report.violation("stall", "final-readback", f"no answer to the read-back {msg_id}")
            if len(waiting) > 5:
                report.violations[("stall", "final-readback")] += len(waiting) - 5

    @staticmethod
    def final_node_check(model: Model, soul: str, only: set[str] | None) -> Callable[[dict[str, Any]], str | None]:
        def check(reply: dict[str, Any]) -> str | None:
            keys = [k for (s, k) in model.hist if s == soul and (only is None or k in only)]
            put = reply.get("put")
            node = put.get(soul) if type(put) is dict else None
            if node is None:
                return f"{soul!r} not found, though it was written" if any((soul, k) in model.floor for k in keys) else None
            floors = {k: model.floor[(soul, k)] for k in keys if (soul, k) in model.floor}
            problem = model.check_node(soul, node, floors, only)
            if problem:
                return problem
            states = node["_"][">"]
            for key in keys:
                newest = max(model.hist[(soul, key)])
                if key in states and states[key] != newest and model.floor.get((soul, key), -math.inf) >= newest:
                    return f"{soul!r}.{key!r}: state {states[key]} is not the newest acknowledged {newest}"
            return None

        return check

    @staticmethod
    def present_check(soul: str, key: str, value: Any) -> Callable[[dict[str, Any]], str | None]:
        def check(reply: dict[str, Any]) -> str | None:
            put = reply.get("put")
            node = put.get(soul) if type(put) is dict else None
            if type(node) is not dict or key not in node:
                return f"{soul!r}.{key!r} missing: a put without an id (or a deferred one) was not applied"
            if not same_value(node[key], value):
                return f"{soul!r}.{key!r} is {node[key]!r:.60}, not {value!r:.60}"
            return None

        return check

    async def check_http(self) -> None:
        def fetch(path: str, token: str | None = None) -> tuple[int, str]:
            request = urllib.request.Request(self.cfg.http_url + path)
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode("utf-8", "replace")
            except OSError as exc:
                return 0, repr(exc)

        status, body = await asyncio.to_thread(fetch, "/health")
        ok = status == 200 and '"status":"ok"' in body.replace(" ", "")
        self.health = {"status": status, "ok": ok, "body": body[:200]}
        if not ok:
            self.report.violation("health", "health", f"/health answered {status}: {body[:200]}")
        if self.cfg.admin_token:
            if self.conns:  # the latest hello on a connection still open names a pid that is not taken
                conn = self.conns[0]
                hello = Frame("dam_hello_odd_pid", encode({"#": f"{self.ns}.pid", "dam": "?", "pid": "pid\ud800"}))
                hello.msgs.append(Msg(f"{self.ns}.pid", HELLO, kind="dam_hello_odd_pid"))
                await conn.send(hello)
                await conn.drain(self.cfg.timeout_s)
            status, body = await asyncio.to_thread(fetch, "/-/api/peers", self.cfg.admin_token)
            self.health["peers_api"] = status
            if status != 200:
                self.report.violation("peers-api", "peers-api", f"GET /-/api/peers answered {status} with the fuzz connections open: {body[:200]}")
                return
            try:
                peers = json.loads(body)["peers"]
                pids = [p.get("pid") for p in peers]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                self.report.violation("peers-api", "peers-api", f"GET /-/api/peers: {exc!r} in {body[:200]}")
                return
            self.health["peers_listed"] = len(peers)
            taken = [pid for pid in pids if pid is not None and (type(pid) is not str or len(pid) > 64 or not well_formed(pid))]
            if taken:
                self.report.violation("peers-api", "dam_hello_odd_pid", f"pids a peer must not be known by: {taken!r:.200}")

    # -- figures ------------------------------------------------------------------------------

    def summary(self, duration: float) -> dict[str, Any]:
        r = self.report
        frames = sum(r.frames.values())
        lat = sorted(r.latency_ms)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else 0.0

        violations = {f"{c} / {k}": n for (c, k), n in r.violations.items()}
        return {
            "frames": frames,
            "messages": r.messages,
            "duration_s": round(duration, 2),
            "frames_per_s": round(frames / duration, 1) if duration else 0.0,
            "frames_by_class": dict(r.classes),
            "frames_by_kind": dict(sorted(r.frames.items())),
            "replies": dict(r.replies),
            "errors_expected": r.expected_errors,
            "errors_received_as_expected": r.errors_as_expected,
            "frames_all_expectations_met_by_class": dict(r.frames_ok),
            "frames_with_a_failed_expectation_by_class": dict(r.frames_failed),
            "stalls": sum(r.stalls.values()),
            "stalls_by_kind": dict(r.stalls),
            "expected_closes": {str(k): v for k, v in r.closes.items()},
            "reconnects": r.reconnects,
            "unexpected_closes": r.unexpected_closes,
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999), "max": round(r.max_latency_ms, 2)},
            "final_readback": getattr(self, "final", {}),
            "health": self.health,
            "puts_answering_another_peer": getattr(self, "passed_on", {}),
            "violations": violations,
            "examples": {f"{c} / {k}": ex for (c, k), ex in r.examples.items()},
            "ok": not violations and r.unexpected_closes == 0 and bool(self.health.get("ok")),
        }


async def run_fuzz(cfg: FuzzConfig) -> dict[str, Any]:
    return await Fuzz(cfg).run()
