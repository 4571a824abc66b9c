"""gunrelay.core.jsjson against JSON.stringify output recorded from Node (tests/vectors/jsjson.json).

Re-record with ``node tools/vectors/record_jsjson.js`` (see tools/vectors/README.md).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunrelay.core import jsjson

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "jsjson.json").read_text("utf-8"))

def _ids(v: dict) -> str:
    text = v["input_json"]
    return text if len(text) <= 40 else text[:37] + "..."


def _run(v: dict) -> str:
    return jsjson.stringify(json.loads(v["input_json"]))


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_stringify_matches_node(vector: dict) -> None:
    assert _run(vector) == vector["stringify"]


def test_vectors_cover_the_brief() -> None:
    inputs = {v["input_json"] for v in VECTORS}
    for needed in ["1795575793400.5", "1700000000000.001", "1e21", "1e-7", "123e-20", "5e-324", "-0",
                   "0.30000000000000004", '"\\u2028"', '"\\ud800"', '"\\ud83d\\ude00"', "9007199254740993",
                   "1" + "0" * 400, '{"b":1,"٣":2,"2":3}', '{"²":1}']:
        assert needed in inputs
    assert len(VECTORS) > 500


JS_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?(e[+-][1-9][0-9]*)?\Z")


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=2000)
def test_number_to_string_round_trips(x: float) -> None:
    text = jsjson.number_to_string(x)
    assert float(text) == x
    assert JS_NUMBER.match(text), text
    if "e" in text:
        assert abs(x) >= 1e21 or abs(x) < 1e-6
    else:
        assert x == 0 or 1e-7 <= abs(x) < 1e21


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_safe_integers_print_as_integers(n: int) -> None:
    assert jsjson.number_to_string(n) == str(n)
    assert jsjson.number_to_string(float(n)) == str(n)


@given(st.integers(min_value=-(10**300), max_value=10**300))
def test_big_integers_print_as_their_double(n: int) -> None:
    assert float(jsjson.number_to_string(n)) == float(n)


@given(st.text())
def test_strings_round_trip_through_json(text: str) -> None:
    out = jsjson.stringify(text)
    assert json.loads(out) == text
    assert not any(ch < " " for ch in out)  # control characters are always escaped


@given(st.lists(st.integers(min_value=0, max_value=0xFFFF), max_size=12))
def test_code_unit_strings_round_trip(units: list[int]) -> None:
    # arbitrary UTF-16 code units, lone surrogates included, built the way json.loads would
    text = json.loads('"' + "".join("\\u%04x" % u for u in units) + '"')
    out = jsjson.stringify(text)
    assert json.loads(out) == text
    out.encode("utf-8")  # always valid UTF-8: lone surrogates are escaped


def _code_units(text: str) -> list[int]:
    raw = text.encode("utf-16-be", "surrogatepass")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


@given(st.text(), st.text())
def test_utf16_key_orders_like_javascript(a: str, b: str) -> None:
    assert (jsjson.utf16_key(a) < jsjson.utf16_key(b)) == (_code_units(a) < _code_units(b))


def test_astral_sorts_below_private_use_area() -> None:
    assert jsjson.utf16_key("\U0001f600") < jsjson.utf16_key("\ue000")
    assert "\U0001f600" > "\ue000"  # Python's own order is different


def test_nan_and_infinity_print_null() -> None:
    assert jsjson.number_to_string(math.inf) == "null"
    assert jsjson.stringify([math.nan, -math.inf]) == "[null,null]"
