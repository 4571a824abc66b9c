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
    assert parse({"*": ""}).matches("anything") and parse({"-": True}).matches("anything")
    assert parse({"*": "room/", ">": "room/b"}).lower_bound() == "room/b"
    # UTF-16 order: an astral character sorts below U+E000
    assert parse({"<": "\ue000"}).matches("\U0001f600")


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
