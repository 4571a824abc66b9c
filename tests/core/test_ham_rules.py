"""HAM decisions by hand; tests/core/test_ham.py checks the same function against GunJS's recorded outcomes."""

from gunrelay.core.ham import Verdict, compare, decide, timing


def test_future_states_wait_or_are_refused_beyond_the_skew():
    assert decide(1500, "x", None, None, now=1000, max_skew_ms=1000) is Verdict.DEFER
    assert decide(2500, "x", None, None, now=1000, max_skew_ms=1000) is Verdict.TOO_FAR
    assert decide(10**15, "x", None, None, now=1000) is Verdict.DEFER  # GunJS itself defers without bound
    assert timing(1000, now=1000, max_skew_ms=0) is None


def test_state_order():
    assert compare(2, "a", None, None) is Verdict.INCOMING
    assert compare(2, "a", 1, "z") is Verdict.INCOMING
    assert compare(1, "z", 2, "a") is Verdict.HISTORICAL


def test_equal_state_ties_by_javascript_json_text():
    assert compare(5, "c", 5, "b") is Verdict.INCOMING
    assert compare(5, "a", 5, "b") is Verdict.CURRENT
    assert compare(5, "b", 5, "b") is Verdict.CURRENT
    # '"' (0x22) sorts below letters and digits: any string loses to true, a relation, a number
    assert compare(5, "zzz", 5, True) is Verdict.CURRENT
    assert compare(5, True, 5, None) is Verdict.INCOMING  # "true" > "null"
    assert compare(5, None, 5, True) is Verdict.CURRENT
    assert compare(5, {"#": "x"}, 5, None) is Verdict.INCOMING  # '{' (0x7b) > 'n' (0x6e): a relation beats a delete
    # fractional states compare exactly
    assert compare(1700000000000.002, "a", 1700000000000.001, "b") is Verdict.INCOMING


def test_utf16_order_not_code_point_order():
    astral, bmp_high = "\U0001f600", "\ue000"
    # UTF-16: the astral character starts with a high surrogate 0xD83D < 0xE000
    assert compare(1, astral, 1, bmp_high) is Verdict.CURRENT
    assert compare(1, bmp_high, 1, astral) is Verdict.INCOMING
