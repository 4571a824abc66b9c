"""From application data to GUN graphs and back.

Writing: ``put(soul, {"a": 1, "link": {"x": 2}})`` becomes one wire graph in which every field
carries the same state, as ``gun.get(soul).put(...)`` sends it: the nested object is its own node
and the parent holds a relation to it. Its soul is the one the parent already links to at that
key (so a second nested put updates the same child, as GunJS's chain does), else GunJS's
convention ``<parent soul>/<key>``. A dict ``{"#": soul}`` is a relation, written as is.

Reading: stored rows become ``{key: value}`` dicts; relations stay ``{"#": soul}`` unless a
caller asks ``load`` to follow them.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.graph import State, Value, check_value, normalize_number, relation_target

LinkLookup = Callable[[str, str], Awaitable[Value]]

_ALPHABET = string.digits + string.ascii_uppercase.replace("Y", "") + string.ascii_lowercase


def random_text(length: int) -> str:
    """GunJS's ``String.random``: digits and letters (no ``Y``)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def random_soul(state: State) -> str:
    """A ``set()`` item's soul as GunJS makes it: the state in base 36 without its dot + 12 random characters."""
    whole = int(state)
    digits = ""
    while True:
        whole, rest = divmod(whole, 36)
        digits = (string.digits + string.ascii_lowercase)[rest] + digits
        if not whole:
            break
    return digits + random_text(12)


def is_relation(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get("#")) is str and bool(value["#"])


async def graph_of(soul: str, data: dict[str, Any], state: State, link_of: LinkLookup) -> dict[str, Any]:
    """The wire graph ``{soul: node, child soul: node, ...}`` for one ``put``; raises ValueError."""
    if not isinstance(soul, str) or not soul:
        raise ValueError("a soul must be a non-empty string")
    if type(data) is not dict:
        raise ValueError("put takes a dict of {key: value}")
    graph: dict[str, Any] = {}
    await _add_node(graph, soul, data, state, link_of, depth=0)
    return graph


async def _add_node(graph: dict[str, Any], soul: str, data: dict[str, Any], state: State, link_of: LinkLookup, depth: int) -> None:
    if depth > 64:
        raise ValueError("nested too deep (a cycle?)")
    if soul in graph:
        raise ValueError(f"soul {soul!r} appears twice in one put")
    states: dict[str, State] = {}
    node: dict[str, Any] = {"_": {"#": soul, ">": states}}
    graph[soul] = node
    for key, value in data.items():
        if not isinstance(key, str) or key == "_":
            raise ValueError(f"bad key {key!r}: keys are strings other than '_'")
        if type(value) is dict and not is_relation(value):
            existing = relation_target(await link_of(soul, key))
            child = existing or f"{soul}/{key}"
            await _add_node(graph, child, value, state, link_of, depth + 1)
            value = {"#": child}
        problem = check_value(value)
        if problem is not None:
            raise ValueError(f"bad value for {key!r}: {problem}")
        if type(value) is int:
            value = normalize_number(value)  # JavaScript has doubles only
        states[key] = state
        node[key] = value


def node_of(rows: list[tuple[str, Value, State]]) -> dict[str, Value]:
    return {key: value for key, value, _ in rows}
