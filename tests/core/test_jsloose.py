"""GunJS's String.match and JavaScript's loose semantics, against recorded GunJS (tests/vectors/lex.json)."""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gunrelay.core.jsloose import string_match

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "lex.json").read_text("utf-8"))


@pytest.mark.parametrize("case", VECTORS, ids=range(len(VECTORS)))
def test_string_match_is_gunjs(case):
    assert string_match(case["key"], case["lex"]) is case["match"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("=*<>-#."), inner, max_size=4),
    max_leaves=8,
)


@given(t=st.text(max_size=6), o=json_values)
def test_never_raises(t: str, o: Any) -> None:
    assert string_match(t, o) in (True, False)
