"""GUN's lexical queries on keys and souls, and the ``%`` byte budget.

A lex is a plain string (exact), ``{"=": s}`` (exact), ``{"*": prefix}``, or a range
``{">": from, "<": to}`` (inclusive; either bound may be missing), with ``"-": true`` for reverse
order. Matching follows GunJS's ``String.match`` including its quirk that a ``>`` bound also
matches every string that starts with it.

The budget ``%`` limits a reply by size: each value counts its string length (9 for anything
that is not a string) and the item that reaches the budget is still included, as RAD does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NON_STRING_COST = 9


class InvalidLex(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Lex:
    exact: str | None = None
    prefix: str | None = None
    start: str | None = None  # inclusive lower bound ('>')
    end: str | None = None  # inclusive upper bound ('<')
    reverse: bool = False

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def matches(self, text: str) -> bool:
        if self.exact is not None:
            return text == self.exact
        if self.prefix is not None:
            return text.startswith(self.prefix)
        start, end = self.start, self.end
        if start is not None and text.startswith(start):
            return True
        if start is not None and end is not None:
            return start <= text <= end
        if start is not None:
            return text >= start
        if end is not None:
            return text <= end
        return True  # an empty lex object matches everything

    def lower_bound(self) -> str | None:
        """The smallest string that can match (for ordered scans), or None for no bound."""
        if self.exact is not None:
            return self.exact
        if self.prefix is not None:
            return self.prefix
        return self.start


def _string(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not str:
        raise InvalidLex(f"lex '{name}' must be a string")
    return value


def parse(spec: Any, reverse: bool = False) -> Lex:
    """Parse a wire lex (the value of ``get['#']`` or ``get['.']``)."""
    if type(spec) is str:
        return Lex(exact=spec, reverse=reverse)
    if type(spec) is not dict:
        raise InvalidLex("a lex must be a string or an object")
    reverse = reverse or spec.get("-") is True
    exact = _string(spec, "=")
    if exact is not None:
        return Lex(exact=exact, reverse=reverse)
    prefix = _string(spec, "*")
    if prefix is not None:
        return Lex(prefix=prefix, reverse=reverse)
    return Lex(start=_string(spec, ">"), end=_string(spec, "<"), reverse=reverse)


def cost(value: Any) -> int:
    """What one item counts against the ``%`` budget."""
    return len(value) if type(value) is str else NON_STRING_COST


class Budget:
    """Counts items against a ``%`` budget; ``None`` means unlimited."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None):
        self.limit = limit
        self.used = 0

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    def spend(self, value: Any) -> None:
        self.used += cost(value)
