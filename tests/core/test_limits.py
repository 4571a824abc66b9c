from gunrelay.core.limits import ConnectionLimits, TokenBucket


def test_a_bucket_admits_its_burst_then_its_rate():
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(20, 0.0)
    assert not bucket.take(1, 0.0)
    assert not bucket.take(2, 0.1)  # one token back after 0.1 s
    assert bucket.take(1, 0.1)
    assert bucket.take(10, 1.1)
    assert not bucket.take(25, 100.0)  # never more than the burst saved up
    assert bucket.take(20, 100.0)


def test_a_refused_take_spends_nothing():
    bucket = TokenBucket(rate=1, burst=5, now=0.0)
    assert not bucket.take(6, 0.0)
    assert bucket.take(5, 0.0)


def test_connection_limits_total_and_per_address():
    limits = ConnectionLimits(total=3, per_address=2)
    for address in ("a", "a", "b"):
        assert limits.refuse(address) is None
        limits.opened(address)
    assert limits.refuse("c") == "max_connections"
    limits.closed("b")
    assert limits.refuse("a") == "max_connections_per_address"
    assert limits.refuse("c") is None
    limits.closed("a")
    limits.closed("a")
    assert limits.by_address == {} and limits.open == 0


def test_zero_means_no_limit():
    limits = ConnectionLimits()
    for _ in range(1000):
        limits.opened("a")
    assert limits.refuse("a") is None
