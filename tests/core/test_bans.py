import pytest

from gunrelay.core.bans import Ban, BanList
from gunrelay.core.duration import parse_duration


def test_bans_expire_and_a_shorter_ban_does_not_shorten_a_longer_one():
    bans = BanList([Ban("10.0.0.1", until=100)])
    bans.add(Ban("10.0.0.1", until=50))
    assert bans.banned("10.0.0.1", now=60).until == 100
    assert bans.banned("10.0.0.1", now=100) is None and bans.active(now=100) == []


def test_remove():
    bans = BanList()
    bans.add(Ban("a", 10))
    assert bans.remove("a") and not bans.remove("a") and bans.banned("a", 0) is None


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1h30m", 5400), (300, 300), ("1.5d", 129600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "five", "5x", "-5", "0", "0.5s", 0.99, True, None, "99999w"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)
