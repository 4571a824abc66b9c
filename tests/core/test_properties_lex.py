"""Property-based tests of lex queries and the ``%`` budget (gunrelay.core.lex).

Reference model: JavaScript strings are sequences of UTF-16 code units, and RAD (storage) reads a
lex as: exact string or ``=`` (equality), ``*`` (prefix), ``>``/``<`` (inclusive bounds), all in
UTF-16 code-unit order; an empty lex matches everything; ``-`` changes the order of a reply,
never what matches. ``Lex.lower_bound`` feeds SQL scans in code-point order, so everything that
matches must sort at or after it by code point.

For the budget, protocol notes 4.1 and gun/lib/store.js: RAD counts ``(value||'').length || 9``
per item and stops once the count reaches the limit, the crossing item included. Answering more
than the reference is safe (clients filter again), less is not.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gunrelay.core.lex import NON_STRING_COST, Budget, InvalidLex, Lex, cost, parse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def units(text: str) -> tuple[int, ...]:
    """The UTF-16 code units JavaScript sees for a (JSON-parsed) Python string."""
    raw = text.encode("utf-16-be", "surrogatepass")
    return tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))


def pair_surrogates(text: str) -> str:
    """Strings reach the relay from JSON, where adjacent surrogates are one character."""
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


def reference_matches(spec: dict[str, str | None], text: str) -> bool:
    t = units(text)
    if spec.get("exact") is not None:
        return t == units(spec["exact"])  # type: ignore[arg-type]
    if spec.get("=") is not None:
        return t == units(spec["="])  # type: ignore[arg-type]
    if spec.get("*") is not None:
        p = units(spec["*"])  # type: ignore[arg-type]
        if t[: len(p)] != p:
            return False
    if spec.get(">") is not None and t < units(spec[">"]):  # type: ignore[arg-type]
        return False
    if spec.get("<") is not None and t > units(spec["<"]):  # type: ignore[arg-type]
        return False
    return True


# Characters around the places where UTF-16 order and code-point order part: surrogates (lone
# and paired), astral characters, U+E000..U+FFFF; plus ordinary ones and the empty string.
chars = st.sampled_from(["a", "b", "c", "ab", "/", "~", "\x00", "\ud7ff", "\ue000", "\uffff", "\U0001f600", "\U00010000",
                         "\ud83d", "\ude00", "\ud800", "\udfff", "é"])
strings = st.one_of(st.lists(chars, max_size=4).map("".join), st.text(max_size=4)).map(pair_surrogates)
optional = st.one_of(st.none(), strings)


def ends_in_a_lone_high_surrogate(text: str) -> bool:
    return bool(text) and "\ud800" <= text[-1] <= "\udbff"


@st.composite
def lex_specs(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 4)) == 0:
        return {"exact": draw(strings)}
    spec = {"=": draw(st.one_of(st.none(), st.none(), strings)), "*": draw(optional), ">": draw(optional),
            "<": draw(optional), "-": draw(st.booleans())}
    if all(spec[name] is None for name in ("=", "*", ">", "<")):
        spec["*"] = ""  # a lex object names at least one bound; the empty prefix matches everything
    return spec


def build(spec: dict[str, Any]) -> Lex:
    if "exact" in spec:
        return parse(spec["exact"], reverse=spec.get("-", False))
    return parse({k: v for k, v in spec.items() if v is not None})


@given(spec=lex_specs(), text=strings)
@SETTINGS
@example(spec={"*": "ab", "=": None, ">": None, "<": None, "-": False}, text="abc")
@example(spec={"=": None, "*": None, ">": "\ue000", "<": None, "-": False}, text="\U0001f600")
@example(spec={"=": None, "*": None, ">": None, "<": "\ue000", "-": False}, text="\U0001f600")
@example(spec={"=": None, "*": None, ">": "b", "<": "a", "-": True}, text="b")
def test_matches_agrees_with_the_utf16_reference(spec: dict[str, Any], text: str) -> None:
    # a '*' prefix ending in a lone high surrogate is pinned as a known bug below
    prefix = spec.get("*")
    if prefix is not None and ends_in_a_lone_high_surrogate(prefix):
        return
    lex = build(spec)
    assert lex.matches(text) == reference_matches(spec, text)
    # the order flag never changes what matches
    flipped = Lex(lex.exact, lex.eq, lex.prefix, lex.start, lex.end, not lex.reverse)
    assert flipped.matches(text) == lex.matches(text)


@given(spec=lex_specs(), text=strings)
@SETTINGS
@example(spec={"=": None, "*": "room/", ">": "room/b", "<": None, "-": False}, text="room/c")
@example(spec={"=": None, "*": None, ">": "\ue000", "<": None, "-": False}, text="\U0001f600")
@example(spec={"=": None, "*": "\U0001f600", ">": "\ue000", "<": None, "-": False}, text="\U0001f600")
def test_lower_bound_never_skips_a_match(spec: dict[str, Any], text: str) -> None:
    """An ordered scan from lower_bound() (code-point order, as SQLite compares text) sees every match."""
    lex = build(spec)
    bound = lex.lower_bound()
    if lex.matches(text) and bound is not None:
        assert text >= bound, (bound, text)


@given(spec=lex_specs(), text=strings)
@SETTINGS
@example(spec={"=": None, "*": "room/", ">": None, "<": None, "-": False}, text="room/\U0001f600")
@example(spec={"=": None, "*": "a\ud7ff", ">": None, "<": None, "-": False}, text="a\ud7ff\ue000")
@example(spec={"=": None, "*": None, ">": None, "<": "\ue000", "-": False}, text="\U0001f600")
def test_upper_bound_never_skips_a_match(spec: dict[str, Any], text: str) -> None:
    """An ordered scan up to upper_bound() (code-point order, inclusive) sees every match, and the
    bound is never a lone surrogate (SQLite could not take it)."""
    prefix = spec.get("*")
    if prefix is not None and ends_in_a_lone_high_surrogate(prefix):
        return  # the pinned known bug below
    lex = build(spec)
    bound = lex.upper_bound()
    if bound is not None and lex.is_query:
        assert not any("\ud800" <= c <= "\udfff" for c in bound[-1:]) or bound == lex.end
    if lex.matches(text) and bound is not None:
        assert text <= bound, (bound, text)


@given(spec=st.dictionaries(st.sampled_from(["=", "*", ">", "<", "-", "#", "x"]),
                            st.one_of(st.none(), strings, st.integers(), st.booleans(), st.lists(st.none(), max_size=1), st.just({})),
                            max_size=5),
       reverse=st.booleans())
@SETTINGS
def test_parse_takes_strings_and_refuses_anything_else(spec: dict[str, Any], reverse: bool) -> None:
    lexed = [name for name in ("=", "*", ">", "<") if name in spec]
    if not lexed or any(type(spec[name]) is not str for name in lexed):  # {}, {"x": 1}, {"=": null}: not a query
        with pytest.raises(InvalidLex):
            parse(spec, reverse)
        return
    lex = parse(spec, reverse)
    assert (lex.eq, lex.prefix, lex.start, lex.end) == tuple(spec.get(n) for n in ("=", "*", ">", "<"))
    assert lex.exact is None
    assert lex.reverse == (reverse or spec.get("-") is True)


@given(spec=st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.lists(strings, max_size=2)), reverse=st.booleans())
@settings(max_examples=50, deadline=None)
def test_parse_refuses_what_is_neither_string_nor_object(spec: Any, reverse: bool) -> None:
    with pytest.raises(InvalidLex):
        parse(spec, reverse)


# ---------------------------------------------------------------------------------------------
# the budget

budget_values = st.one_of(st.text(max_size=12), strings, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                          st.builds(lambda s: {"#": s}, st.text(min_size=1, max_size=4)))


def rad_cost(value: Any) -> int:
    """gun/lib/store.js: ``((va||'').length || 9)``, JavaScript lengths in UTF-16 code units."""
    if isinstance(value, str) and value:
        return len(units(value))
    return NON_STRING_COST


@given(value=budget_values, other=budget_values)
@SETTINGS
def test_cost_is_never_more_than_rads(value: Any, other: Any) -> None:
    """So a budget never cuts a reply shorter than the reference relay would."""
    assert 0 <= cost(value) <= rad_cost(value)
    if type(value) is not str:
        assert cost(value) == NON_STRING_COST
    if type(value) is str and type(other) is str:
        assert cost(value + other) == cost(value) + cost(other)  # additive, hence monotone in the text
        if value:
            assert cost(value) == len(value)


def served(values: list[Any], limit: int | None, weigh: Any) -> int:
    """How many items a reply carries, gunrelay's way (storage/query.py) with ``weigh`` as the cost."""
    budget = Budget(limit)
    count = 0
    for value in values:
        if budget.exhausted:
            break
        count += 1
        if limit is not None:
            budget.spend(weigh(value))
    return count


def served_by_rad(values: list[Any], limit: int) -> int:
    """gun/lib/store.js ``each``: stop before an item once the running count has reached the limit."""
    count = total = 0
    for value in values:
        if limit <= total:
            break
        count += 1
        total += rad_cost(value)
    return count


@given(values=st.lists(budget_values, max_size=12), limit=st.one_of(st.none(), st.integers(1, 80)))
@SETTINGS
def test_budget_serves_at_least_what_rad_serves(values: list[Any], limit: int | None) -> None:
    n = served(values, limit, cost)
    if limit is None:
        assert n == len(values)
        return
    assert n >= served_by_rad(values, limit)
    # the item that reaches the budget is included, and nothing after it
    before_last = sum(cost(v) for v in values[: max(n - 1, 0)])
    assert before_last < limit
    if n < len(values):
        assert sum(cost(v) for v in values[:n]) >= limit
    # with RAD's own weights, the same loop serves exactly what RAD serves
    assert served(values, limit, rad_cost) == served_by_rad(values, limit)


# ---------------------------------------------------------------------------------------------
# Known bug (strict xfail: when fixed, it passes and the marker must go)


@pytest.mark.xfail(strict=True, reason="BUG (minor): Lex.matches tests a '*' prefix with str.startswith (code points), "
                                       "not in UTF-16 code units as RAD does: a prefix ending in a lone high surrogate "
                                       "such as {'*': '\\ud83d'} does not match '\U0001f600' (\\ud83d\\ude00), so storage "
                                       "answers less than a GunJS relay would")
def test_known_bug_prefix_ending_in_a_lone_high_surrogate() -> None:
    assert reference_matches({"*": "\ud83d"}, "\U0001f600")
    assert parse({"*": "\ud83d"}).matches("\U0001f600")
