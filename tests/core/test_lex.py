"""Lex matching against GunJS's own String.match, recorded (tests/vectors/lex.json)."""

import json
from pathlib import Path

import pytest

from gunrelay.core.lex import string_match

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "lex.json").read_text())


@pytest.mark.parametrize("case", VECTORS, ids=range(len(VECTORS)))
def test_matches_gunjs(case):
    lex = case["lex"]
    if isinstance(lex, str):
        lex = {"=": lex}  # String.match's own reading of a plain string
    if not isinstance(lex, dict) or not all(isinstance(lex[k], str) for k in "=*><" if k in lex):
        pytest.skip("non-string operands: the relay refuses them (or reads null as absent)")
    got = string_match(case["key"], lex.get("="), lex.get("*"), lex.get(">"), lex.get("<"))
    assert got is case["match"]
