from gunrelay.core.subscriptions import Subscriptions


def test_audience_gets_only_subscribed_keys():
    subs: Subscriptions[str] = Subscriptions()
    subs.subscribe("whole", "s")
    subs.subscribe("one", "s", "k")
    subs.subscribe("other", "t")
    got = dict(subs.audience("s", ["j", "k"]))
    assert got == {"whole": None, "one": frozenset({"k"})}
    assert dict(subs.audience("s", ["j"])) == {"whole": None}


def test_a_whole_subscription_absorbs_key_ones_and_dropping_a_peer_forgets_it():
    subs: Subscriptions[str] = Subscriptions()
    subs.subscribe("p", "s", "k")
    subs.subscribe("p", "s")
    subs.subscribe("p", "s", "j")
    assert dict(subs.audience("s", ["x"])) == {"p": None}
    subs.drop_peer("p")
    assert list(subs.audience("s", ["x"])) == [] and len(subs) == 0


def test_key_subscriptions_past_the_cap_become_the_whole_soul_and_are_counted():
    from gunrelay.core.subscriptions import MAX_KEYS

    subs: Subscriptions[str] = Subscriptions()
    for i in range(MAX_KEYS):
        subs.subscribe("p", "s", f"k{i}")
    subs.subscribe("p", "s", "k0")  # again: nothing more to hold
    assert subs.count_of("p") == 1 + MAX_KEYS  # the soul and each key
    assert list(subs.audience("s", ["k0", "other"])) == [("p", frozenset({"k0"}))]
    assert subs.covers("p", "s", "k1") and not subs.covers("p", "s", "other") and not subs.covers("p", "s")
    subs.subscribe("p", "s", "one-too-many")
    assert list(subs.audience("s", ["other"])) == [("p", None)]  # follows the whole soul now
    assert subs.count_of("p") == 1 and subs.covers("p", "s", "anything") and not subs.covers("p", "t")
    subs.subscribe("p", "t", "k")
    subs.subscribe("p", "t")
    assert subs.count_of("p") == 2  # t's key folded into the whole of t
    subs.drop_peer("p")
    assert subs.count_of("p") == 0 and len(subs) == 0
