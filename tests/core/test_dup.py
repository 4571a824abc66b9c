from gunrelay.core.dup import DupCache


def test_duplicates_are_dropped_and_origins_remembered():
    dup: DupCache[str] = DupCache(ttl=9, now=0)
    assert dup.track("m1", "peerA", now=0)
    assert not dup.track("m1", "peerB", now=1)
    assert dup.origin("m1") == "peerA"


def test_ids_live_between_ttl_and_twice_ttl_and_longer_while_seen():
    dup: DupCache[str] = DupCache(ttl=9, now=0)
    dup.track("a", None, now=0)
    dup.track("b", None, now=0)
    assert not dup.track("a", None, now=10)  # rotated once: still known, refreshed
    assert dup.track("b", None, now=19)  # b rotated out after two generations
    assert not dup.track("a", None, now=19)  # refreshed at 10, still within its generation
    assert dup.track("a", None, now=60)  # long quiet: everything forgotten
