"""ClockWatch: a stepped wall clock is noticed against the monotonic one, and holds what it must."""

from gunrelay.core.clockwatch import ClockWatch

T0 = 1_800_000_000_000.0


def test_steady_clocks_and_slow_drift_are_not_jumps():
    watch = ClockWatch(T0, 100.0)
    for i in range(1, 1000):  # 1,000 looks over ~33 min, drifting 1 ms a look: 1 s in all
        assert watch.observe(T0 + i * 2000 + i, 100.0 + i * 2) is None
    assert watch.jumps == 0 and watch.hold_left_s(3000.0) == 0 and watch.held_because(3000.0) is None


def test_a_step_forward_or_back_is_a_jump_and_holds_for_the_settle_time():
    watch = ClockWatch(T0, 100.0, threshold_ms=2000, settle_s=600)
    jump = watch.observe(T0 + 2000 + 3_600_000, 102.0)  # an hour ahead, two seconds later
    assert jump is not None and jump.size_ms == 3_600_000
    assert watch.hold_left_s(102.0) == 600 and watch.hold_left_s(402.0) == 300
    why = watch.held_because(112.0)
    assert why is not None and "+3600.0 s" in why and "590 s more" in why
    assert watch.observe(T0 + 4000 + 3_600_000, 104.0) is None  # the stepped clock is the new baseline
    back = watch.observe(T0 + 6000 - 5000, 106.0)  # then stepped back: another jump, a new hold
    assert back is not None and back.size_ms == -3_605_000 and watch.jumps == 2
    assert watch.hold_left_s(705.0) == 1 and watch.hold_left_s(706.0) == 0
    assert watch.held_because(706.0) is None
    report = watch.report(200.0)
    assert report == {"jumps": 2, "last_jump_s": -3605.0, "last_jump_ago_s": 94.0, "held_for_s": 506.0}


def test_a_step_under_the_threshold_is_followed_not_reported():
    watch = ClockWatch(T0, 0.0, threshold_ms=2000)
    assert watch.observe(T0 + 1000 + 1999, 1.0) is None
    assert watch.observe(T0 + 2000 + 1999 + 2000, 2.0) is not None  # measured from the new baseline
