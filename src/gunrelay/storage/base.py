"""The storage contract every backend meets (tests/storage runs one suite against each).

A store holds fields (soul, key, value as JSON text, state). Two operations carry the relay:

- ``merge(fields)``: apply HAM (``core.ham.compare``) against the *stored* state of each field
  and write the winners, durably. The returned awaitable resolves only once the winners are
  durable, with the list of fields that changed the store (the ones to push to subscribers).
  Fields of one call are applied in order, so a later field in the same call sees an earlier one.
- ``read(query)``: the stored fields matching a get, grouped by soul, in key order (reversed when
  the lex asks), cut by the ``%`` budget.

Both return awaitables without blocking the event loop; a backend may batch calls together.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable
from dataclasses import dataclass

import orjson

from ..core import ham
from ..core.graph import Field, State, Value
from ..core.jsjson import stringify
from ..core.lex import Lex, cost
from ..core.wire import loads

Row = tuple[str, str, State]  # (key, value as JSON text, state)


@dataclass(frozen=True, slots=True)
class ReadQuery:
    soul: str | None  # exact soul
    soul_lex: Lex | None = None  # or a query over souls
    key: Lex | None = None  # None: every key
    budget: int | None = None  # '%' in bytes, None: unlimited
    max_fields: int = 100_000  # hard cap per reply set, whatever the budget


@dataclass(frozen=True, slots=True)
class StoreStats:
    souls: int
    fields: int
    bytes: int


def encode_value(value: Value) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # lone surrogates: escape them as JSON.stringify does
        return stringify(value)


def decode_value(value_json: str) -> Value:
    return loads(value_json)  # type: ignore[no-any-return]


def value_cost(value_json: str) -> int:
    if value_json[:1] == '"':
        return cost(decode_value(value_json))
    return cost(None)


def ham_tie_wins(incoming_json: str, current_json: str) -> bool:
    """At equal states: does the incoming value (JSON text) beat the current one by HAM's tie rule?"""
    return ham.compare(0, decode_value(incoming_json), 0, decode_value(current_json)) is ham.Verdict.INCOMING


def ham_wins(field: Field, current: tuple[str, State] | None) -> bool:
    """True when ``field`` should replace ``current`` (value JSON, state) by HAM."""
    if current is None:
        return True
    value_json, state = current
    if field.state != state:
        return field.state > state
    return ham.compare(field.state, field.value, state, decode_value(value_json)) is ham.Verdict.INCOMING


def as_state(number: float) -> State:
    """States come back from storage as floats; integral ones go on the wire as integers."""
    if number.is_integer() and -(2**53) <= number <= 2**53:
        return int(number)
    return number


class Store(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes, then release resources."""

    @abc.abstractmethod
    def merge(self, fields: list[Field]) -> Awaitable[list[Field]]: ...

    @abc.abstractmethod
    def read(self, query: ReadQuery) -> Awaitable[dict[str, list[Row]]]: ...

    @abc.abstractmethod
    async def stats(self) -> StoreStats: ...
