"""Lex matching against GunJS's own String.match, recorded (tests/vectors/lex.json)."""

import json
from pathlib import Path

import pytest

from gunrelay.core.lex import string_match

ALL = json.loads((Path(__file__).parent.parent / "vectors" / "lex.json").read_text())


def _relay_can_ask(lex: object) -> bool:
    # a plain string, or an object whose operands are strings; the relay refuses other operands
    # in a get (and never holds non-string keys), so those recorded cases do not apply
    if isinstance(lex, str):
        return True
    return isinstance(lex, dict) and all(isinstance(lex[k], str) for k in "=*><" if k in lex)


VECTORS = [case for case in ALL if isinstance(case["key"], str) and _relay_can_ask(case["lex"])]


def test_most_vectors_apply():
    assert len(VECTORS) > 0.6 * len(ALL)


@pytest.mark.parametrize("case", VECTORS, ids=range(len(VECTORS)))
def test_matches_gunjs(case):
    lex = case["lex"]
    if isinstance(lex, str):
        lex = {"=": lex}  # String.match's own reading of a plain string
    got = string_match(case["key"], lex.get("="), lex.get("*"), lex.get(">"), lex.get("<"))
    assert got is case["match"]
