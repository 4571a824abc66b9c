from gunrelay.core.jsloose import string_match
from gunrelay.core.lex import Budget, Lex, cost, parse


def test_forms():
    assert parse("k") == Lex(exact="k")
    assert parse({"=": "k"}) == Lex(eq="k")
    assert parse({"*": "ap"}) == Lex(prefix="ap")
    assert parse({">": "a", "<": "c", "-": True}) == Lex(start="a", end="c", reverse=True)


def test_plain_string_queries_are_key_lookups_even_for_the_empty_key():
    assert parse("").matches("") and parse({"=": ""}).matches("")
    assert not string_match("", {"=": ""})  # String.match's own quirk, for clients


def test_storage_matching():
    assert parse({"*": "ap"}).matches("apple") and not parse({"*": "ap"}).matches("banana")
    rng = parse({">": "b", "<": "c"})
    assert rng.matches("banana") and rng.matches("b") and rng.matches("c") and not rng.matches("cherry")
    assert parse({">": "b"}).matches("zed") and not parse({">": "b"}).matches("apple")
    assert parse({"<": "b"}).matches("apple") and not parse({"<": "b"}).matches("c")
    assert parse({"*": ""}).matches("anything")
    assert parse({"*": "room/", ">": "room/b"}).lower_bound() == "room/b"
    # UTF-16 order: an astral character sorts below U+E000
    assert parse({"<": "\ue000"}).matches("\U0001f600")


def test_an_object_naming_no_bound_is_not_a_query():
    import pytest

    from gunrelay.core.lex import InvalidLex

    for spec in ({}, {"x": 1}, {"=": None}, {"_": {}}, {"-": True}, {"*": None}, {"*": 5}, {"#": "a"}):
        with pytest.raises(InvalidLex):
            parse(spec)
    assert parse({"*": "a", "x": 1}) == Lex(prefix="a")  # unknown names beside a bound are ignored, as GunJS does


def test_upper_bounds_for_ordered_scans():
    assert parse({"*": "room/"}).upper_bound() == "room0"
    assert parse({"*": "a", "<": "ab"}).upper_bound() == "ab"
    assert parse({"*": "a\ud7ff"}).upper_bound() == "a\ue000"  # never a lone surrogate
    assert parse({">": "a"}).upper_bound() is None
    assert parse({"<": "\ue000"}).upper_bound() is None  # orders differently in UTF-16: no SQL bound
    assert parse({"*": ""}).upper_bound() is None
    assert parse({"*": "ap"}).is_query and parse({">": "a"}).is_query
    assert not parse("k").is_query and not parse({"=": "k"}).is_query


def test_client_matching_keeps_gunjs_quirks():
    # a '>' bound also matches what starts with it, even past '<'; '*': '' matches nothing
    assert string_match("banana", {">": "ba", "<": "b"})
    assert not string_match("x", {"*": ""})


def test_budget_includes_the_item_that_crosses_it():
    budget = Budget(10)
    for value in ("12345", "123456", "x"):
        if budget.exhausted:
            break
        budget.spend(cost(value))
    assert budget.used == 11
    numbers = Budget(10)
    numbers.spend(cost(5))
    assert numbers.used == 9 and not numbers.exhausted
