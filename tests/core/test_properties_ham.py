"""Property-based tests of HAM (gunrelay.core.ham): convergence, antisymmetry, the timing step,
and agreement with GunJS's recorded decisions (tests/vectors/ham.json) and with JSON.stringify
texts recorded from Node (tests/vectors/jsjson.json) for the equal-state tie-break.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunrelay.core.graph import check_value, normalize_number
from gunrelay.core.ham import Verdict, compare, decide, timing
from gunrelay.core.jsjson import stringify, utf16_key

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
HAM = json.loads((VECTORS / "ham.json").read_text("utf-8"))
JSJSON = json.loads((VECTORS / "jsjson.json").read_text("utf-8"))

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# every distinct value GunJS was recorded deciding on
RECORDED_VALUES = sorted(
    {_canonical(v[k]) for v in HAM for k in ("incoming_value", "current_value")}
)
recorded_values = st.sampled_from(RECORDED_VALUES).map(json.loads)
# GUN values as they leave fields_of_put (integers beyond 2**53 already the double JS holds)
tricky_text = st.lists(st.sampled_from(["a", "b", '"', "\\", "\ud800", "\udc00", "\U0001f600", "\ue000", "\uffff", "\x00", "1", "{"]),
                       max_size=4).map("".join)
gun_values = st.one_of(
    recorded_values,
    st.none(), st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60).map(normalize_number),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4), tricky_text,
    st.builds(lambda s: {"#": s}, st.one_of(st.text(min_size=1, max_size=3), tricky_text.filter(bool))),
)
# few distinct states, so that ties are common
states = st.one_of(st.sampled_from([0, 1, 1.5, 1795575722649, 1795575722649.001, -1]),
                   st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53))


def js_text(value: Any) -> bytes:
    return utf16_key(stringify(value))


# ---------------------------------------------------------------------------------------------
# compare


@given(a=gun_values, b=gun_values, s=states, t=states)
@SETTINGS
def test_compare_orders_by_state_first(a: Any, b: Any, s: float, t: float) -> None:
    got = compare(s, a, t, b)
    if s > t:
        assert got is Verdict.INCOMING
    elif s < t:
        assert got is Verdict.HISTORICAL
    else:
        assert got in (Verdict.INCOMING, Verdict.CURRENT)
    assert compare(s, a, None, b) is Verdict.INCOMING  # nothing held: any write is taken


@given(a=gun_values, b=gun_values, s=states)
@SETTINGS
def test_equal_state_tie_break_is_antisymmetric(a: Any, b: Any, s: float) -> None:
    """At equal states exactly one of two values with different JSON texts wins, whichever is held;
    values with the same JSON text (the same value to JavaScript) never displace each other."""
    forward, backward = compare(s, a, s, b), compare(s, b, s, a)
    if js_text(a) == js_text(b):
        assert forward is Verdict.CURRENT and backward is Verdict.CURRENT
    else:
        assert {forward, backward} == {Verdict.INCOMING, Verdict.CURRENT}
        assert (forward is Verdict.INCOMING) == (js_text(a) > js_text(b))
    assert compare(s, a, s, a) is Verdict.CURRENT  # a replayed write is never taken again


def merge(writes: list[tuple[float, Any]]) -> tuple[float, Any] | None:
    held: tuple[float, Any] | None = None
    for state, value in writes:
        verdict = compare(state, value, None if held is None else held[0], None if held is None else held[1])
        if verdict is Verdict.INCOMING:
            held = (state, value)
    return held


@given(writes=st.lists(st.tuples(states, gun_values), min_size=1, max_size=6), data=st.data())
@SETTINGS
def test_merge_converges_whatever_the_arrival_order(writes: list[tuple[float, Any]], data: st.DataObject) -> None:
    """Peers that see the same writes in different orders hold the same field afterwards: the write
    with the highest state, ties broken by the greatest JSON text in UTF-16 order."""
    order = data.draw(st.permutations(writes))
    first, second = merge(writes), merge(order)
    assert first is not None and second is not None
    assert first[0] == second[0] and js_text(first[1]) == js_text(second[1])
    best_state = max(s for s, _ in writes)
    assert first[0] == best_state
    assert js_text(first[1]) == max(js_text(v) for s, v in writes if s == best_state)
    # merging again (every write re-delivered, as happens on reconnect) changes nothing
    again = merge([first] + list(order))
    assert again is not None and again[0] == first[0] and js_text(again[1]) == js_text(first[1])


@given(writes=st.lists(st.tuples(st.sampled_from([1, 2]), recorded_values), min_size=2, max_size=5))
@settings(max_examples=60, deadline=None)
def test_merge_converges_over_every_order(writes: list[tuple[float, Any]]) -> None:
    results = {(s, js_text(v)) for s, v in (merge(list(p)) for p in itertools.permutations(writes))}  # type: ignore[misc]
    assert len(results) == 1


# ---------------------------------------------------------------------------------------------
# timing and decide

@given(state=states, now=states, skew=st.one_of(st.floats(min_value=0, allow_nan=False), st.just(math.inf)),
       value=gun_values, current=st.one_of(st.none(), st.tuples(states, gun_values)))
@SETTINGS
def test_timing_and_decide(state: float, now: float, skew: float, value: Any, current: tuple[float, Any] | None) -> None:
    early = timing(state, now, skew)
    if state <= now:
        assert early is None
    elif state - now > skew:
        assert early is Verdict.TOO_FAR
    else:
        assert early is Verdict.DEFER
    cur_state, cur_value = current if current is not None else (None, None)
    verdict = decide(state, value, cur_state, cur_value, now, skew)
    assert verdict is (early if early is not None else compare(state, value, cur_state, cur_value))
    # GunJS's own behaviour (no skew bound) never refuses, it only defers
    assert decide(state, value, cur_state, cur_value, now) is not Verdict.TOO_FAR


# ---------------------------------------------------------------------------------------------
# agreement with GunJS


def _expected(result: str) -> Verdict:
    return Verdict(result)


def test_recorded_decisions_swapped() -> None:
    """Swap incoming and current in each recorded (non-deferred) decision: the verdict follows."""
    cases = [c for c in HAM if c["result"] != "defer" and not c.get("current_absent")]
    assert len(cases) > 1000
    wrong = []
    for case in cases:
        got = compare(case["current_state"], case["current_value"], case["incoming_state"], case["incoming_value"])
        recorded = _expected(case["result"])
        if case["incoming_state"] != case["current_state"]:
            want = Verdict.HISTORICAL if recorded is Verdict.INCOMING else Verdict.INCOMING
        elif recorded is Verdict.INCOMING:
            want = Verdict.CURRENT
        else:
            # GunJS kept the current value: the same JSON text, or the current one is greater
            same = js_text(case["current_value"]) == js_text(case["incoming_value"])
            want = Verdict.CURRENT if same else Verdict.INCOMING
        if got is not want:
            wrong.append((case, got))
    assert not wrong, wrong[:5]


@functools.cache
def _node_texts() -> list[tuple[Any, str]]:
    """(GUN value, JSON.stringify text recorded from Node) for every jsjson vector that is a GUN value."""
    out = []
    for v in JSJSON:
        value = json.loads(v["input_json"])
        if type(value) is int:
            try:
                value = normalize_number(value)
            except OverflowError:
                continue  # beyond the double range: Infinity, not a GUN value
        if type(value) is float and not math.isfinite(value):
            continue
        if check_value(value) is None:
            out.append((value, v["stringify"]))
    return out


def test_node_texts_are_plenty() -> None:
    assert len(_node_texts()) > 300


@given(data=st.data())
@settings(max_examples=200, deadline=None)
def test_tie_break_agrees_with_node_json_stringify(data: st.DataObject) -> None:
    """The tie-break against texts JSON.stringify produced in Node (not against our stringify)."""
    texts = _node_texts()
    (a, text_a), (b, text_b) = data.draw(st.sampled_from(texts)), data.draw(st.sampled_from(texts))
    want = Verdict.INCOMING if utf16_key(text_a) > utf16_key(text_b) else Verdict.CURRENT
    assert compare(7, a, 7, b) is want
