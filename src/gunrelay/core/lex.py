"""GUN's lexical queries on keys and souls, and the ``%`` byte budget.

A lex is a plain string (exact), ``{"=": s}`` (exact), ``{"*": prefix}``, or a range
``{">": from, "<": to}`` (inclusive; either bound may be missing), with ``"-": true`` for reverse
order. Storage answers them as RAD does (``Lex.matches``); clients filter what they receive with
``String.match`` (``jsloose.string_match``, quirks and all), so answering more than asked is harmless.

The budget ``%`` limits a reply by size: each value counts its string length (9 for anything
that is not a string) and the item that reaches the budget is still included, as RAD does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .jsjson import utf16_key

NON_STRING_COST = 9


class InvalidLex(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Lex:
    """A key or soul query as storage answers it (RAD's reading, more permissive than the client's
    ``jsloose.string_match``, which clients apply again to what they receive): a plain string or ``=`` is
    an exact key, ``*`` a prefix (``''``: everything), ``>``/``<`` inclusive bounds, all in
    JavaScript (UTF-16) order; an empty lex matches everything."""

    exact: str | None = None
    eq: str | None = None
    prefix: str | None = None  # '*'
    start: str | None = None  # '>' (inclusive)
    end: str | None = None  # '<' (inclusive)
    reverse: bool = False

    def matches(self, text: str) -> bool:
        if self.exact is not None:
            return text == self.exact
        if self.eq is not None:
            return text == self.eq
        if self.prefix is not None and not text.startswith(self.prefix):
            return False
        if self.start is None and self.end is None:
            return True
        key = utf16_key(text)
        if self.start is not None and key < utf16_key(self.start):
            return False
        return self.end is None or key <= utf16_key(self.end)

    def lower_bound(self) -> str | None:
        """The smallest string that can match (for ordered scans), or None for no bound."""
        if self.exact is not None:
            return self.exact
        if self.eq is not None:
            return self.eq
        lower = self.prefix or None
        # SQL scans in code-point order; a bound with characters from U+D800 up could sort
        # differently in UTF-16 order, so it is then left to ``matches`` alone
        if self.start and max(self.start) < "\ud800":
            lower = self.start if lower is None else max(lower, self.start)
        return lower


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
    return Lex(
        eq=_string(spec, "="), prefix=_string(spec, "*"), start=_string(spec, ">"), end=_string(spec, "<"), reverse=reverse
    )


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

    def spend(self, amount: int) -> None:
        self.used += amount
