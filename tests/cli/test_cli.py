"""The command line is the one place where an error becomes an exit: below it, errors are raised
(``core.errors``); ``gunrelay.cli`` prints their text and exits with status 1, no traceback."""

import argparse
import json
import subprocess
import sys

import pytest

from gunrelay.cli import main
from gunrelay.config import InvalidSetting
from gunrelay.core.errors import LocalError, OperatorError
from gunrelay.remote import RelayUnreachable, run_operator_command
from gunrelay.server.identity import DamagedIdentity, load_or_create_identity

NOWHERE = "http://127.0.0.1:9"  # the discard port: nobody listens there


def gunrelay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gunrelay", *args], capture_output=True, text=True, timeout=60)


def test_the_operator_commands_raise_and_leave_the_exit_to_the_cli():
    args = argparse.Namespace(command="ban", url=NOWHERE, token="t", data=None, address=None, connected=False, duration="1m", reason="")
    with pytest.raises(OperatorError, match="give an address or --connected"):
        run_operator_command(args)
    with pytest.raises(RelayUnreachable, match="cannot reach the relay") as unreachable:
        run_operator_command(argparse.Namespace(command="bans", url=NOWHERE, token="t", data=None))
    assert isinstance(unreachable.value, LocalError)


def test_the_cli_exits_with_the_errors_text():
    for argv, text in (
        (["ttl", "set", "--url", NOWHERE, "--token", "t"], "usage: gunrelay ttl set PREFIX DURATION"),
        (["ttl", "rm", "--url", NOWHERE, "--token", "t"], "usage: gunrelay ttl rm PREFIX"),
        (["snapshot", "delete", "--url", NOWHERE, "--token", "t"], "usage: gunrelay snapshot delete NAME"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == text
    with pytest.raises(SystemExit) as exited:
        main(["bans", "--url", NOWHERE, "--token", "t"])
    assert str(exited.value.code).startswith("cannot reach the relay: ")


def test_serve_exits_with_a_bad_allowlist_named(tmp_path):
    done = gunrelay("serve", "--data", str(tmp_path), "--port", "0", "--admin-allow", "127.0.0.1,junk")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "--admin-allow: 'junk' is not an address or network"


def test_a_damaged_identity_file_stops_the_relay_with_a_message(tmp_path):
    load_or_create_identity(tmp_path / "other")
    load_or_create_identity(tmp_path)
    identity = tmp_path / "identity.json"
    pair = json.loads(identity.read_text())
    pair["pub"] = json.loads((tmp_path / "other" / "identity.json").read_text())["pub"]
    identity.write_text(json.dumps(pair))
    with pytest.raises(DamagedIdentity) as damaged:
        load_or_create_identity(tmp_path)
    assert isinstance(damaged.value, LocalError)
    done = gunrelay("serve", "--data", str(tmp_path), "--port", "0")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"{identity}: priv does not match pub; the identity file is damaged"


def test_a_bad_setting_is_the_operators_error():
    assert issubclass(InvalidSetting, ValueError)
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--storage", "postgress"])
    assert exited.value.code == "gunrelay serve: --storage='postgress' is not one of: sqlite, memory, postgres"
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--storage", "postgres"])
    assert exited.value.code == "gunrelay serve: --storage postgres needs --postgres-url (or GUNRELAY_POSTGRES_URL)"
