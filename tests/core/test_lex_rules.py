from gunrelay.core.lex import Budget, Lex, parse


def test_forms():
    assert parse("k") == Lex(exact="k")
    assert parse({"=": "k"}) == Lex(exact="k")
    assert parse({"*": "ap"}) == Lex(prefix="ap")
    assert parse({">": "a", "<": "c", "-": True}) == Lex(start="a", end="c", reverse=True)


def test_matching_follows_string_match():
    assert parse({"*": "ap"}).matches("apple") and not parse({"*": "ap"}).matches("banana")
    rng = parse({">": "b", "<": "c"})
    assert rng.matches("banana") and rng.matches("b") and rng.matches("c") and not rng.matches("cherry")
    assert parse({">": "b"}).matches("zed") and not parse({">": "b"}).matches("apple")
    assert parse({"<": "b"}).matches("apple") and not parse({"<": "b"}).matches("c")
    # GunJS quirk: a '>' bound also matches what starts with it, even past '<'
    assert parse({">": "ba", "<": "b"}).matches("banana")


def test_budget_includes_the_item_that_crosses_it():
    budget = Budget(10)
    for value in ("12345", "123456", "x"):
        if budget.exhausted:
            break
        budget.spend(value)
    assert budget.used == 11
    numbers = Budget(10)
    numbers.spend(5)
    assert numbers.used == 9 and not numbers.exhausted
