"""From application data to GUN graphs and back.

Writing: ``put(soul, {"a": 1, "link": {"x": 2}})`` becomes one wire graph in which every field
carries the same state, as ``gun.get(soul).put(...)`` sends it: the nested object is its own node
and the parent holds a relation to it. Its soul is the one the parent already links to at that
key (so a second nested put updates the same child, as GunJS's chain does), else GunJS's
convention ``<parent soul>/<key>``. A relation (``core.graph.relation``) is written as is.
Nodes are built by ``core.wire.node`` and relations by ``core.graph``, as the relay builds its own.

Reading: stored rows become ``{key: value}`` dicts; relations stay relations unless a caller
asks ``load`` to follow them.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from typing import Any

from ..core import wire
from ..core.graph import NODE_META, State, Value, check_value, is_relation, normalize_number, relation, relation_target

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
    graph[soul] = {}  # its place: a parent comes before its children
    items: list[tuple[str, Value, State]] = []
    for key, value in data.items():
        if not isinstance(key, str) or key == NODE_META:
            raise ValueError(f"bad key {key!r}: keys are strings other than {NODE_META!r}")
        if type(value) is dict and not is_relation(value):
            existing = relation_target(await link_of(soul, key))
            child = existing or f"{soul}/{key}"
            await _add_node(graph, child, value, state, link_of, depth + 1)
            value = relation(child)
        problem = check_value(value)
        if problem is not None:
            raise ValueError(f"bad value for {key!r}: {problem}")
        if type(value) is int:
            value = normalize_number(value)  # JavaScript has doubles only
        items.append((key, value, state))
    graph[soul] = wire.node(soul, items)

