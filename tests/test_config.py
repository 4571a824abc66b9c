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


def test_a_setting_with_fixed_choices_refuses_anything_else_naming_the_choices():
    import pytest

    from gunrelay.config import InvalidSetting

    for raw in ("OFF", "FUL", "", "full fsync"):
        with pytest.raises(InvalidSetting) as refused:
            load_config({"sqlite_synchronous": raw}, {})
        assert "FULL, NORMAL" in str(refused.value) and "--sqlite-synchronous" in str(refused.value)
    with pytest.raises(InvalidSetting) as refused:
        load_config({}, {"GUNRELAY_STORAGE": "postgress"})
    assert "GUNRELAY_STORAGE" in str(refused.value) and "sqlite, memory" in str(refused.value)
    for name, raw in (("legacy_nodes", "yes"), ("privacy", "1"), ("log_level", "verbose")):
        with pytest.raises(InvalidSetting):
            load_config({name: raw}, {})
    assert load_config({"sqlite_synchronous": "normal", "log_level": "DEBUG"}, {}).sqlite_synchronous == "NORMAL"


def test_gunrelay_serve_refuses_a_bad_choice_at_start_with_an_error(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "gunrelay", "serve", "--data", str(tmp_path), "--port", "0", "--sqlite-synchronous", "OFF"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "--sqlite-synchronous='OFF' is not one of: FULL, NORMAL" in done.stderr
    assert not (tmp_path / "gunrelay.sqlite3").exists()


def test_a_number_setting_refuses_text():
    import pytest

    from gunrelay.config import InvalidSetting

    with pytest.raises(InvalidSetting) as refused:
        load_config({}, {"GUNRELAY_PORT": "eighty"})
    assert "GUNRELAY_PORT='eighty' is not a valid int" in str(refused.value)


def test_the_typed_settings_name_every_setting_of_the_table_with_its_type():
    from dataclasses import fields

    from gunrelay.config import Settings

    typed = {f.name: f.type for f in fields(Settings)}
    assert typed == {s.name: s.type.__name__ for s in SETTINGS}


def test_switches_are_real_booleans_written_on_or_off():
    assert (load_config({}, {}).legacy_nodes, load_config({}, {}).privacy) == (True, False)
    assert load_config({"legacy_nodes": "OFF"}, {"GUNRELAY_PRIVACY": "On"}) == load_config({}, {}).__class__(
        **{**load_config({}, {}).__dict__, "legacy_nodes": False, "privacy": True}
    )


def test_peers_come_from_a_repeated_option_or_a_comma_separated_variable():
    config = load_config({"peers": ["ws://127.0.0.1:1/gun", "wss://relay.example/gun"]}, {})
    assert config.peer_urls == ("ws://127.0.0.1:1/gun", "wss://relay.example/gun")
    config = load_config({}, {"GUNRELAY_PEERS": " ws://a:1/gun, ,ws://b:2/gun,ws://a:1/gun "})
    assert config.peer_urls == ("ws://a:1/gun", "ws://b:2/gun")  # blanks and repeats dropped
    assert load_config({}, {}).peer_urls == ()


def test_a_peer_url_that_cannot_be_dialled_is_refused_naming_it():
    import pytest

    from gunrelay.config import InvalidSetting

    for bad in ("http://127.0.0.1:1/gun", "127.0.0.1:8765", "ws://:1/gun", "ws://h:99999/gun", "ws://h:x/gun",
                "ws://h:0/gun", "ws://h:1/gun#frag"):
        with pytest.raises(InvalidSetting) as refused:
            load_config({"peers": [bad]}, {})
        assert f"--peer={bad!r}" in str(refused.value)
    with pytest.raises(InvalidSetting) as refused:
        load_config({}, {"GUNRELAY_PEERS": "ftp://x"})
    assert "GUNRELAY_PEERS='ftp://x'" in str(refused.value)


def test_trusted_proxies_default_to_loopback_take_networks_and_refuse_anything_else_at_start():
    import pytest

    from gunrelay.config import InvalidSetting

    assert load_config({}, {}).trusted_proxies == "127.0.0.1,::1"
    assert load_config({}, {"GUNRELAY_TRUSTED_PROXIES": ""}).trusted_proxies == ""  # trust none
    assert load_config({"trusted_proxies": "10.0.0.0/8, fd00::/8"}, {}).trusted_proxies == "10.0.0.0/8, fd00::/8"
    with pytest.raises(InvalidSetting) as refused:
        load_config({"trusted_proxies": "127.0.0.1,proxy.local"}, {})
    assert "--trusted-proxies" in str(refused.value) and "'proxy.local' is not an IP address or network" in str(refused.value)
    with pytest.raises(InvalidSetting) as refused:
        load_config({}, {"GUNRELAY_TRUSTED_PROXIES": "10.0.0.0/40"})
    assert "GUNRELAY_TRUSTED_PROXIES" in str(refused.value)


def test_tls_is_off_by_default():
    config = load_config({}, {})
    assert (config.tls_cert, config.tls_key) == ("", "")


def test_trusted_relays_are_sea_pubs_and_anything_else_is_refused_at_start(tmp_path):
    import pytest

    from gunrelay.config import InvalidSetting
    from gunrelay.server.identity import load_or_create_identity

    real = load_or_create_identity(tmp_path).pub
    assert load_config({"trust_relays": [real, real]}, {}).trusted_relays == (real,)
    assert load_config({}, {"GUNRELAY_TRUST_RELAYS": f" {real} ,"}).trusted_relays == (real,)
    x, y = real.split(".")
    for bad in ("not-a-key", real + "x", x, "a.b", f"{y}.{x}", f"{x}.{y}.{x}"):
        with pytest.raises(InvalidSetting) as refused:
            load_config({"trust_relays": [bad]}, {})
        assert f"--trust-relay={bad!r}" in str(refused.value)


def test_a_generated_operator_token_never_looks_like_an_option(tmp_path):
    from gunrelay.server.identity import admin_token, new_token

    assert all(not new_token().startswith("-") for _ in range(2000))
    token, path = admin_token(tmp_path, None)
    assert path is not None and token == path.read_text().strip() and not token.startswith("-")
