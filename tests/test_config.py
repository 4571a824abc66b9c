from pathlib import Path

from gunrelay.config import SETTINGS, load_config

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    missing = [s.name for s in SETTINGS if s.option not in README or s.env not in README]
    assert missing == []


def test_cli_beats_environment_beats_default():
    env = {"GUNRELAY_PORT": "9000", "GUNRELAY_DATA": "/env"}
    config = load_config({"port": 9100}, env)
    assert (config.port, config.data, config.host) == (9100, "/env", "127.0.0.1")
    assert load_config({}, {}).port == 8765
