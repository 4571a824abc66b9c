from gunrelay.core.lockout import LoginThrottle


def test_failures_within_the_window_lock_every_key_involved():
    throttle = LoginThrottle(max_failures=3, window_s=60, lockout_s=100)
    keys = ("address:1.2.3.4", "user:admin")
    assert not throttle.failed(keys, 0) and not throttle.failed(keys, 1)
    assert throttle.locked(keys, 2) is None
    assert throttle.failed(keys, 2)
    assert throttle.locked(keys, 2) == 100
    assert throttle.locked(("user:admin",), 50) == 52  # the user is locked from any address
    assert throttle.locked(("address:1.2.3.4", "user:other"), 50) == 52
    assert throttle.locked(keys, 102) is None


def test_failures_outside_the_window_do_not_add_up():
    throttle = LoginThrottle(max_failures=3, window_s=10, lockout_s=100)
    for t in (0, 20, 40, 60):
        assert not throttle.failed(("k",), t)
    assert throttle.locked(("k",), 61) is None


def test_a_success_clears_the_count():
    throttle = LoginThrottle(max_failures=2, window_s=60, lockout_s=100)
    throttle.failed(("k",), 0)
    throttle.succeeded(("k",))
    assert not throttle.failed(("k",), 1)


def test_the_table_is_bounded_but_keeps_locks():
    throttle = LoginThrottle(max_failures=1, window_s=60, lockout_s=100, max_keys=10)
    for i in range(100):
        throttle.failed((f"k{i}",), 0)  # a flood of locked keys
    assert len(throttle._keys) == 10 and throttle.locked(("k99",), 1) is not None
    throttle2 = LoginThrottle(max_failures=2, window_s=60, lockout_s=100, max_keys=10)
    throttle2.failed(("a",), 0)
    throttle2.failed(("a",), 0)
    for i in range(100):
        throttle2.failed((f"k{i}",), 1)  # one failure each: not locked, so these go first
    assert throttle2.locked(("a",), 2) is not None and len(throttle2._keys) == 10
