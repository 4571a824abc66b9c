"""GUN's lexical queries on keys and souls, and the ``%`` byte budget.

A lex is a plain string (exact), ``{"=": s}`` (exact), ``{"*": prefix}``, or a range
``{">": from, "<": to}`` (inclusive; either bound may be missing), with ``"-": true`` for reverse
order. An object with none of ``=``, ``*``, ``>``, ``<`` (``{}``, ``{"x": 1}``, ``{"_": {}}``), or
with one of them not a string (``{"=": null}``), is not a query at all and is refused. Storage answers them as RAD does (``Lex.matches``); clients filter what they receive with
``String.match`` (``jsloose.string_match``, quirks and all), so answering more than asked is harmless.

The budget ``%`` limits a reply by size: each value counts its string length (9 for anything
that is not a string) and the item that reaches the budget is still included, as RAD does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import RemoteError
from .jsjson import utf16_key

NON_STRING_COST = 9


class InvalidLex(RemoteError):
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

    @property
    def is_query(self) -> bool:
        """A prefix or a range (what RAD budgets), not one exact name."""
        return self.exact is None and self.eq is None

    def upper_bound(self) -> str | None:
        """The largest string that can match, or a string above them all (for ordered scans;
        compare with ``<=``), or None for no bound. Only bounds that order the same in code points
        (SQL) as in UTF-16 (JavaScript) are given."""
        if self.exact is not None:
            return self.exact
        if self.eq is not None:
            return self.eq
        upper = None
        if self.prefix and self.prefix[-1] < "\U0010ffff":
            # every string starting with the prefix sorts below the prefix with its last character
            # raised (past the surrogates, which no stored string holds alone)
            raised = ord(self.prefix[-1]) + 1
            upper = self.prefix[:-1] + chr(0xE000 if 0xD800 <= raised <= 0xDFFF else raised)
        if self.end is not None and (not self.end or max(self.end) < "\ud800"):
            upper = self.end if upper is None else min(upper, self.end)
        return upper

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
    if name not in obj:
        return None
    value = obj[name]
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
    lex = Lex(
        eq=_string(spec, "="), prefix=_string(spec, "*"), start=_string(spec, ">"), end=_string(spec, "<"), reverse=reverse
    )
    if lex.eq is None and lex.prefix is None and lex.start is None and lex.end is None:
        raise InvalidLex("a lex object needs '=', '*', '>' or '<' (a string)")
    return lex


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
