import pytest

from gunrelay.core.privacy import Anonymizer, Privacy


@pytest.fixture
def anonymizer():
    return Anonymizer(b"secret")


def test_labels_keep_the_network_and_hide_the_host(anonymizer):
    label = anonymizer.label("203.0.113.7")
    assert label.startswith("203.0.113.x~") and "7" not in label.split("~")[0]
    assert anonymizer.label("203.0.113.7") == label  # stable
    assert anonymizer.label("203.0.113.8") != label  # peers stay apart
    assert anonymizer.label("2001:db8:1:2::5").startswith("2001:db8:1::x~")
    assert Anonymizer(b"other").label("203.0.113.7") != label  # keyed: not guessable without the secret


def test_labels_resolve_back_to_their_address(anonymizer):
    label = anonymizer.label("198.51.100.4")
    assert anonymizer.resolve(label) == "198.51.100.4"
    assert anonymizer.resolve("198.51.100.9") == "198.51.100.9"
    assert anonymizer.resolve("10.0.0.x~000000") == "10.0.0.x~000000"  # not one of ours: taken as given


def test_scrub_replaces_addresses_and_nothing_else(anonymizer):
    text = "fenced 3 fields from peer ab at 203.0.113.7 (pid x) at 12:30:45, [2001:db8::1]:443, v1.2.3, ::1"
    scrubbed = anonymizer.scrub(text)
    assert "203.0.113.7" not in scrubbed and "2001:db8::1" not in scrubbed and " ::1" not in scrubbed
    assert "12:30:45" in scrubbed and "v1.2.3" in scrubbed and anonymizer.label("203.0.113.7") in scrubbed


def test_privacy_mode_switches_what_is_shown(anonymizer):
    privacy = Privacy(anonymizer)
    assert privacy.show("203.0.113.7") == "203.0.113.7" and privacy.text("at 203.0.113.7") == "at 203.0.113.7"
    privacy.enabled = True
    assert privacy.show("203.0.113.7") != "203.0.113.7" and "203.0.113.7" not in privacy.text("at 203.0.113.7")
