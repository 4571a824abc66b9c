from gunrelay.core.traffic import TrafficHistory


def test_rates_are_growth_per_second_between_samples():
    history = TrafficHistory(interval_s=2, span_s=10)
    first = history.sample(0, {"puts": 100}, {"connections": 1})
    assert first == {"t": 0, "connections": 1, "puts": 0.0}
    second = history.sample(2000, {"puts": 300}, {"connections": 4})
    assert second["puts"] == 100.0 and second["connections"] == 4
    assert history.latest() == second


def test_the_history_keeps_the_span_only():
    history = TrafficHistory(interval_s=2, span_s=10)
    for i in range(20):
        history.sample(i * 2000, {"gets": i * 10}, {"connections": i})
    points = history.history()
    assert len(points) == 5 and [p["connections"] for p in points] == [15, 16, 17, 18, 19]
    assert all(p["gets"] == 5.0 for p in points)


def test_a_counter_that_went_backwards_is_not_a_negative_rate():
    history = TrafficHistory()
    history.sample(0, {"x": 10}, {})
    assert history.sample(1000, {"x": 5}, {})["x"] == 0.0
