"""GUN's graph: fields, values and the validation of a put's graph.

A put carries ``{soul: node}`` where a node is ``{"_": {"#": soul, ">": {key: state}}, key: value}``.
We flatten it into ``Field`` rows (soul, key, value, state), the unit that HAM, SEA, the fence and
storage work on. Validation follows GunJS 0.2020.1241 (src/root.js ``put`` and src/valid.js): a
single bad node makes the whole message invalid. Unlike GunJS, which drops such a message
silently, we return an error text the relay sends back to the peer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

from .errors import RemoteError

Value = Union[None, str, bool, int, float, dict[str, str]]
State = Union[int, float]

MAX_SAFE_INTEGER = 2**53


@dataclass(frozen=True, slots=True)
class Field:
    soul: str
    key: str
    value: Value
    state: State


class InvalidGraph(RemoteError):
    """A put graph GunJS would refuse; the message explains which node or key and why."""


def _cut(text: object) -> str:
    shown = str(text)
    return repr(shown[:40] + ("..." if len(shown) > 40 else ""))


def normalize_number(number: int | float) -> int | float:
    """JavaScript has only doubles: an integer beyond 2**53 is the double nearest to it, and one
    beyond the doubles' range is an infinity (as JSON.parse reads it; not a valid GUN number)."""
    if type(number) is int and not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        try:
            return float(number)
        except OverflowError:
            return math.inf if number > 0 else -math.inf
    return number


def well_formed(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (JavaScript strings may; UTF-8 text, so the
    store, may not)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_value(value: Any) -> str | None:
    """None if ``value`` is a valid GUN value, else why not."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return None
    if kind is int:
        return None
    if kind is float:
        return None if math.isfinite(value) else "numbers must be finite"
    if kind is dict:
        if len(value) == 1:
            link = value.get("#")
            if type(link) is str and link:
                return None if well_formed(link) else "a relation must name a soul of valid Unicode text"
        return "objects must be relations {'#': soul} (nested objects become their own nodes)"
    if kind is list:
        return "arrays are not GUN values"
    return f"unsupported value type {kind.__name__}"


def relation_target(value: Value) -> str | None:
    if type(value) is dict:
        return value.get("#")
    return None


def fields_of_put(graph: Any) -> list[Field]:
    """Flatten a wire ``put`` graph into fields, or raise InvalidGraph."""
    if type(graph) is not dict:
        raise InvalidGraph("Invalid graph: 'put' must be an object of {soul: node}.")
    if not graph:
        raise InvalidGraph("Invalid graph: 'put' is empty.")
    if "#" in graph and "." in graph:
        raise InvalidGraph(
            "Invalid graph: the single-key put form {'#','.',':','>'} is not supported by GunJS "
            "0.2020.1241; send {soul: {'_': {'#': soul, '>': {key: state}}, key: value}}."
        )
    fields: list[Field] = []
    append = fields.append
    for soul, node in graph.items():
        if not soul:
            raise InvalidGraph("Invalid graph: empty soul.")
        if not soul.isascii() and not well_formed(soul):
            raise InvalidGraph(f"Invalid graph: soul {_cut(soul)} holds a lone surrogate; souls must be valid Unicode text.")
        if type(node) is not dict:
            raise InvalidGraph(f"Invalid graph: node {_cut(soul)} is not an object.")
        meta = node.get("_")
        if type(meta) is not dict:
            raise InvalidGraph(f"Invalid graph: node {_cut(soul)} has no meta '_'.")
        if meta.get("#") != soul:
            raise InvalidGraph(f"Invalid graph: node {_cut(soul)} has meta '#' {_cut(meta.get('#'))}, not its soul.")
        states = meta.get(">")
        if type(states) is not dict:
            raise InvalidGraph(f"Invalid graph: node {_cut(soul)} has no state map '_'.'>'.")
        for key, value in node.items():
            if key == "_":
                continue
            if not key.isascii() and not well_formed(key):  # the call only for non-ASCII keys
                raise InvalidGraph(f"Invalid graph: key {_cut(key)} on {_cut(soul)} holds a lone surrogate; keys must be valid Unicode text.")
            state: Any = states.get(key)
            state_type = type(state)
            if state_type is not int and state_type is not float:
                if state is None:
                    raise InvalidGraph(f"Invalid graph: key {_cut(key)} on {_cut(soul)} has no state.")
                raise InvalidGraph(f"Invalid graph: key {_cut(key)} on {_cut(soul)} has a non-numeric state.")
            if state_type is int:  # as a double first: one beyond the doubles' range is an infinity
                state = normalize_number(state)
            if type(value) is int:
                value = normalize_number(value)
            if type(state) is float and not math.isfinite(state):
                raise InvalidGraph(f"Invalid graph: key {_cut(key)} on {_cut(soul)} has a non-finite state.")
            problem = check_value(value)
            if problem is not None:
                raise InvalidGraph(f"Invalid graph: bad value for key {_cut(key)} on {_cut(soul)}: {problem}.")
            append(Field(soul, key, value, state))
    return fields


# -- nodes and relations, for those who build graphs (the Python client) -----------------------

NODE_META = "_"  # a node's meta entry ({'#': soul, '>': {key: state}}): never a key of its data


def relation(soul: str) -> dict[str, str]:
    """The value that points to the node ``soul`` (GUN's relation ``{'#': soul}``)."""
    return {"#": soul}


def is_relation(value: Any) -> bool:
    """True for a relation to a non-empty soul: exactly ``{'#': soul}``."""
    return type(value) is dict and len(value) == 1 and type(value.get("#")) is str and bool(value["#"])


def node_states(node: dict[str, Any]) -> dict[str, State]:
    """The state of each key of a wire node (one ``fields_of_put`` accepted): ``{key: state}``."""
    return node["_"][">"]  # type: ignore[no-any-return]
