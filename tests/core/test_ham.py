"""HAM against outcomes recorded from GunJS 0.2020.1241 itself (tests/vectors/ham.json)."""

import json
from pathlib import Path

import pytest

from gunrelay.core.ham import Verdict, decide

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "ham.json").read_text())
EXPECTED = {"defer": Verdict.DEFER, "historical": Verdict.HISTORICAL, "current": Verdict.CURRENT, "incoming": Verdict.INCOMING}


def test_vectors_cover_every_outcome():
    assert {v["result"] for v in VECTORS} == set(EXPECTED)


@pytest.mark.parametrize("case", VECTORS, ids=range(len(VECTORS)))
def test_matches_gunjs(case):
    absent = case.get("current_absent", False)
    verdict = decide(
        case["incoming_state"],
        case["incoming_value"],
        None if absent else case["current_state"],
        None if absent else case["current_value"],
        now=case["machine"],
    )
    assert verdict is EXPECTED[case["result"]]
