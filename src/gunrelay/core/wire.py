"""GUN's wire format: JSON text frames <-> typed messages.

A frame is one JSON object (a message) or an array of them (a batch; ``[]`` is a keepalive).
Messages are told apart by their fields: ``dam`` (per-link control), ``get``, ``put``, and replies
carrying ``@``. GUN's one-character keys (``#`` id, ``@`` reply-to, ``.`` key, ``%`` budget,
``><`` peers) are read and written here and in ``graph``; the rest of gunrelay uses names.

Parsing uses orjson and falls back to the standard library for what orjson refuses but
``JSON.parse`` accepts (lone surrogates, integers beyond 64 bits); NaN and Infinity are refused
as ``JSON.parse`` refuses them.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Union

import orjson

from . import lex as lexmod
from .errors import RemoteError
from .jsjson import stringify

Fragment = orjson.Fragment


class FrameError(RemoteError):
    """The frame is not a JSON object or array of objects."""


class MessageError(RemoteError):
    """A message GunJS would not understand; ``reply_to`` is its id when it had one."""

    def __init__(self, text: str, reply_to: Any = None):
        super().__init__(text)
        self.reply_to = reply_to


@dataclass(frozen=True, slots=True)
class Get:
    msg_id: Any
    soul: str | None  # exact soul, or None when ``soul_lex`` is a query over souls
    soul_lex: lexmod.Lex | None
    key: lexmod.Lex | None  # None: the whole node
    budget: int | None


@dataclass(frozen=True, slots=True)
class Put:
    msg_id: Any
    reply_to: Any  # set when the put answers a get
    graph: Any  # raw wire graph, validated by graph.fields_of_put


@dataclass(frozen=True, slots=True)
class Dam:
    msg_id: Any
    kind: Any
    pid: Any
    reply_to: Any
    raw_reset: Any = None  # gunrelay's own 'reset-ack' carries the reset id it acknowledges
    mesh: Any = None  # a relay of the mesh greets with {"dam": "?", "pid": ..., "mesh": 1, "relay": <its SEA pub>}
    relay_pub: Any = None
    since: Any = None  # {"dam": "changes", "since": n}: a relay of the mesh asks for our change stream after n


@dataclass(frozen=True, slots=True)
class Reply:
    """An ack or error from a peer (``@`` with ``ok`` or ``err``, no ``put``)."""

    msg_id: Any
    reply_to: Any


@dataclass(frozen=True, slots=True)
class Other:
    """Anything else GUN would flood (unknown fields); gunrelay does not forward these."""

    msg_id: Any


Message = Union[Get, Put, Dam, Reply, Other]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"DAM JSON parse error: {str(exc)[:120]}") from None


def relation_targets(value_json: str) -> list[str]:
    """Souls a stored value (its JSON text) points to: a relation ``{"#": soul}``, or a relation
    inside a SEA-signed string ``{":": {"#": soul}, "~": signature}``."""
    if value_json[:5] == '{"#":':
        target = loads(value_json)
        return [target["#"]] if type(target) is dict and type(target.get("#")) is str else []
    if value_json[:1] == '"' and '\\"#\\"' in value_json:
        try:
            inner = loads(loads(value_json))
        except (FrameError, TypeError):
            return []
        if type(inner) is dict and type(inner.get(":")) is dict and type(inner[":"].get("#")) is str:
            return [inner[":"]["#"]]
    return []


def parse_frame(text: str | bytes) -> list[Any]:
    """The raw messages of a frame (each should be a dict; the caller checks)."""
    data = loads(text)
    if type(data) is dict:
        return [data]
    if type(data) is list:
        return data
    raise FrameError("DAM frame must be a JSON object or an array of objects.")


def message_id(raw: dict[str, Any]) -> Any:
    msg_id = raw.get("#")
    if msg_id == "":
        return None  # GunJS treats an empty id as none (and gives the message a fresh one)
    if msg_id is None or type(msg_id) is str or (type(msg_id) in (int, float)):
        return msg_id
    raise MessageError("Message id '#' must be a string.")


def id_of(raw: Any) -> str | None:
    """The id of a raw message, if it has one that can be answered (a non-empty string)."""
    msg_id = raw.get("#") if type(raw) is dict else None
    return msg_id if type(msg_id) is str and msg_id else None


def is_dam(raw: Any) -> bool:
    """A per-link control message (answered by the link itself, never acknowledged)."""
    return type(raw) is dict and "dam" in raw


def decode(raw: Any) -> Message:
    """Classify one raw message; raise MessageError for shapes GunJS would not understand."""
    if type(raw) is not dict:
        raise MessageError("Each message must be a JSON object.")
    msg_id = message_id(raw)
    if "dam" in raw:
        return Dam(msg_id, raw["dam"], raw.get("pid"), raw.get("@"), raw.get("reset"), raw.get("mesh"), raw.get("relay"), raw.get("since"))
    if "get" in raw:
        return _decode_get(msg_id, raw)
    if "put" in raw:
        return Put(msg_id, raw.get("@"), raw["put"])
    if "@" in raw:
        return Reply(msg_id, raw["@"])
    return Other(msg_id)


def _decode_get(msg_id: Any, raw: dict[str, Any]) -> Get:
    spec = raw["get"]
    if type(spec) is not dict:
        raise MessageError("Invalid get: 'get' must be an object {'#': soul, '.': key?}.", msg_id)
    soul_spec = spec.get("#")
    reverse = spec.get("-") is True
    soul: str | None
    soul_lex: lexmod.Lex | None
    try:
        if type(soul_spec) is str:
            if not soul_spec:
                raise MessageError("Invalid get: empty soul.", msg_id)
            soul, soul_lex = soul_spec, None
        elif type(soul_spec) is dict:
            soul_lex = lexmod.parse(soul_spec, reverse)
            soul = soul_lex.exact
            if soul is not None:
                soul_lex = None
        else:
            raise MessageError("Invalid get: '#' must be a soul string or a lex object.", msg_id)
        key_spec = spec.get(".")
        key = None if key_spec is None else lexmod.parse(key_spec, reverse)
    except lexmod.InvalidLex as exc:
        raise MessageError(f"Invalid get: {exc}.", msg_id) from None
    budget = spec.get("%", raw.get("%"))
    if budget is not None:
        if type(budget) not in (int, float) or budget != budget:
            raise MessageError("Invalid get: '%' must be a number of bytes.", msg_id)
        # as RAD reads it: at least one item; beyond 2**31 (infinities included) no budget at all
        budget = None if budget >= 2**31 else 1 if budget < 1 else int(budget)
    return Get(msg_id, soul, soul_lex, key, budget)


# ---------------------------------------------------------------------------------------------
# Outgoing messages

class MessageIds:
    """Fresh message ids: a random prefix (given) and a counter, ending in a letter so that no id
    is another id followed by digits (GunJS uses ``<id><n>`` internally, see protocol notes 2.2)."""

    __slots__ = ("prefix", "_counter")

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self._counter):x}z"


def _fallback_default(obj: Any) -> Any:
    raise TypeError


def encode(message: dict[str, Any]) -> str:
    try:
        return orjson.dumps(message).decode()
    except TypeError:
        # lone surrogates, which orjson will not write but JSON.stringify does (escaped)
        return stringify(_unfragment(message))


def _unfragment(obj: Any) -> Any:
    if isinstance(obj, Fragment):  # stored JSON text: orjson writes a Fragment back as it was
        return json.loads(orjson.dumps(obj))
    if type(obj) is dict:
        return {k: _unfragment(v) for k, v in obj.items()}
    return obj


def node(soul: str, items: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """A wire node from (key, value, state) items; value may be a Fragment of stored JSON."""
    states: dict[str, Any] = {}
    out: dict[str, Any] = {"_": {"#": soul, ">": states}}
    for key, value, state in items:
        states[key] = state
        out[key] = value
    return out


def ack(msg_id: str, reply_to: Any) -> str:
    return encode({"#": msg_id, "@": reply_to, "ok": True})


def error(msg_id: str, reply_to: Any, text: str) -> str:
    return encode({"#": msg_id, "@": reply_to, "err": text})


def dam_error(msg_id: str, text: str) -> str:
    return encode({"#": msg_id, "dam": "!", "err": text})


def not_found(msg_id: str, reply_to: Any) -> str:
    return encode({"#": msg_id, "@": reply_to})


def data_reply(msg_id: str, reply_to: Any, graph: dict[str, Any]) -> str:
    return encode({"#": msg_id, "@": reply_to, "put": graph})


def push(msg_id: str, graph: dict[str, Any]) -> str:
    return encode({"#": msg_id, "put": graph})


def dam_reply(msg_id: str, kind: str, reply_to: Any, problem: str | None) -> str:
    if problem is None:
        return encode({"#": msg_id, "dam": kind, "@": reply_to, "ok": True})
    return encode({"#": msg_id, "dam": kind, "@": reply_to, "err": problem})


def hello(msg_id: str, pid: str, clock_ms: float | None = None) -> str:
    """The relay's greeting; ``clock`` (its state clock, ms) lets a client date its first contact
    by the relay's clock rather than its own (the JS plugin's install mark)."""
    if clock_ms is None:
        return encode({"#": msg_id, "dam": "?", "pid": pid})
    return encode({"#": msg_id, "dam": "?", "pid": pid, "clock": clock_ms})


def relay_hello(msg_id: str, pid: str, relay_pub: str) -> str:
    """The greeting on a link this relay dialled: the peer learns that a relay of the mesh is on
    the other side, and which (its SEA pub); GunJS reads only ``pid`` and ignores the rest."""
    return encode({"#": msg_id, "dam": "?", "pid": pid, "mesh": MESH_VERSION, "relay": relay_pub})


def relay_hello_answer(msg_id: str, pid: str, reply_to: Any, relay_pub: str) -> str:
    return encode({"#": msg_id, "dam": "?", "pid": pid, "mesh": MESH_VERSION, "relay": relay_pub, "@": reply_to})


MESH_VERSION = 1
CHANGES = "changes"


def changes_request(msg_id: str, since: int) -> str:
    """Ask a relay of the mesh for its change stream after ``since`` (one page comes back)."""
    return encode({"#": msg_id, "dam": CHANGES, "since": since})


def changes_page(msg_id: str, reply_to: Any, graph: dict[str, Any] | None, cursor: int, done: bool) -> str:
    """One page of our change stream: its fields as a put answering the request, the cursor to
    ask from next, and whether more was waiting."""
    message: dict[str, Any] = {"#": msg_id, "@": reply_to, CHANGES: {"cursor": cursor, "done": done}}
    if graph:
        message["put"] = graph
    return encode(message)


def changes_of(raw: dict[str, Any]) -> tuple[int, bool] | None:
    """The (cursor, done) a page of a change stream carries, or None if it carries none that makes sense."""
    info = raw.get(CHANGES)
    if type(info) is not dict:
        return None
    cursor, done = info.get("cursor"), info.get("done")
    if type(cursor) is not int or cursor < 0 or type(done) is not bool:
        return None
    return cursor, done


def hello_answer(msg_id: str, pid: str, reply_to: Any, clock_ms: float | None = None) -> str:
    if clock_ms is None:
        return encode({"#": msg_id, "dam": "?", "pid": pid, "@": reply_to})
    return encode({"#": msg_id, "dam": "?", "pid": pid, "@": reply_to, "clock": clock_ms})


def batch(encoded: list[str]) -> str:
    """One frame from encoded messages: the message itself, or a JSON array of them."""
    if len(encoded) == 1:
        return encoded[0]
    return "[" + ",".join(encoded) + "]"


KEEPALIVE = "[]"


# ---------------------------------------------------------------------------------------------
# A peer's side of the conversation (gunrelay.client): what a GUN peer sends to a relay, and how
# it reads the answers. The relay's encoders above stay as they are; these are the other half.

HELLO = "?"  # {"dam": "?", "pid": ...}: a relay greets with it; a peer answers with its own pid
HI = "hi"  # {"dam": "hi"}: a peer says it is ready
DAM_ERROR = "!"  # {"dam": "!", "err": ...}: a problem with a frame, not with one message
RESET_ACK = "reset-ack"  # {"dam": "reset-ack", "reset": <reset_id>}: a peer says it cleared itself


def get_request(msg_id: str, soul: str, key: str | None = None) -> str:
    """Ask for a node, or one key of it (GunJS's ``gun.get(soul)`` / ``.get(key)``); a relay also
    subscribes the asker to what it asked for."""
    spec = {"#": soul} if key is None else {"#": soul, ".": key}
    return encode({"#": msg_id, "get": spec})


def put_request(msg_id: str, graph: dict[str, Any]) -> str:
    """Write a graph ``{soul: node}`` (the shape of ``push``, sent by the writer)."""
    return encode({"#": msg_id, "put": graph})


def hi(msg_id: str) -> str:
    return encode({"#": msg_id, "dam": HI})


def reset_ack_request(msg_id: str, reset_id: str) -> str:
    """A peer's acknowledgement that it applied reset ``reset_id`` (answered with ``dam_reply``)."""
    return encode({"#": msg_id, "dam": RESET_ACK, "reset": reset_id})


@dataclass(frozen=True, slots=True)
class Answer:
    """What a message says about the message it answers, as a peer reads it.

    ``settled``: it carries ``ok`` or ``err`` (an ack or a refusal: a put, a reset-ack); ``ok``:
    settled without an error; ``more``: a get's reply that says more replies follow (``%``)."""

    reply_to: Any  # the id answered ('@'), None when the message answers nothing
    settled: bool
    ok: bool
    err: str | None
    more: bool


def answer_of(raw: dict[str, Any]) -> Answer:
    """Read the answer part of a raw message (any kind: replies, dam replies, data replies)."""
    err = raw.get("err")
    settled = "ok" in raw or "err" in raw
    return Answer(
        reply_to=raw.get("@"),
        settled=settled,
        ok=settled and err is None,
        err=None if err is None else str(err),
        more=bool(raw.get("%")),
    )
