"""The deployment files in docs/deploy/: the systemd unit passes ``systemd-analyze verify`` (and
its offline security review), and the environment file holds only real settings with usable
values. The nginx site is run for real by tests/interop/test_nginx.py.

``verify`` checks that ExecStart's program exists, and the unit names the install path of
docs/deploy.md (/opt/gunrelay/.venv/bin/gunrelay), which a development machine does not have: the
unit is verified as a copy whose ExecStart is this checkout's own ``gunrelay`` script, every other
line unchanged."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gunrelay.config import SETTINGS, load_config

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"
UNIT = DEPLOY / "gunrelay.service"
INSTALLED = "ExecStart=/opt/gunrelay/.venv/bin/gunrelay serve"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
absent = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian: package systemd)")


def unit_copy(tmp_path: Path) -> Path:
    text = UNIT.read_text()
    assert text.count(INSTALLED) == 1
    gunrelay = Path(sys.executable).parent / "gunrelay"
    assert gunrelay.is_file(), f"{gunrelay} is missing: the checkout is not installed in its venv"
    copy = tmp_path / "gunrelay.service"
    copy.write_text(text.replace(INSTALLED, f"ExecStart={gunrelay} serve"))
    return copy


@absent
def test_systemd_analyze_verify_passes_on_the_unit(tmp_path):
    copy = unit_copy(tmp_path)
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for an unknown key or section (it only warns), so its words about the
    # unit must be none at all
    about_ours = [line for line in (done.stdout + done.stderr).splitlines() if "gunrelay" in line]
    assert done.returncode == 0 and about_ours == [], done.stdout + done.stderr


@absent
def test_verify_would_catch_a_mistake(tmp_path):
    copy = unit_copy(tmp_path)
    copy.write_text(copy.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'ProtectSytem'" in done.stdout + done.stderr


def test_the_unit_keeps_its_hardening_and_runs_the_relay_as_its_own_user():
    lines = set(UNIT.read_text().splitlines())
    for wanted in ("User=gunrelay", "ProtectSystem=strict", "ReadWritePaths=/var/lib/gunrelay", "Restart=on-failure",
                   "EnvironmentFile=/etc/gunrelay/gunrelay.env", "NoNewPrivileges=yes", "CapabilityBoundingSet=", INSTALLED):
        assert wanted in lines, wanted


@absent
def test_the_offline_security_review_rates_the_unit_ok(tmp_path):
    copy = unit_copy(tmp_path)
    done = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(copy)],
                          capture_output=True, text=True, timeout=60)
    if "--offline" in done.stderr and done.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline security review (systemd < 250)")
    found = re.search(r"Overall exposure level for gunrelay\.service: ([0-9.]+) (\w+)", done.stdout + done.stderr)
    assert found, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) <= 2.0 and found.group(2) == "OK", found.group(0)  # systemd's scale: 0 safest, 10 exposed


def test_the_environment_file_holds_only_settings_and_they_load():
    known = {s.env for s in SETTINGS} | {"GUNRELAY_STATE_DIR"}  # the state dir is read by serve, not a setting
    env = {}
    for line in (DEPLOY / "gunrelay.env").read_text().splitlines():
        name, equals, value = line.partition("=")
        name = name.lstrip("#").strip()
        if equals and name.startswith("GUNRELAY_"):
            assert name in known, name
            if not line.startswith("#"):
                env[name] = value
    assert env["GUNRELAY_HOST"] == "127.0.0.1" and env["GUNRELAY_DATA"] == "/var/lib/gunrelay"
    config = load_config({}, env)
    assert (config.port, config.trusted_proxies, config.tls_cert) == (8765, "127.0.0.1,::1", "")
