"""TLS served by the relay itself (``--tls-cert``/``--tls-key``): ``gunrelay serve`` with a
certificate made in the test, ``https://`` for ``/health`` and real GunJS clients in Node over
``wss://`` (trusting the test CA through NODE_EXTRA_CA_CERTS: certificate checks stay on); and every
kind of bad certificate or key refused at start with one clear line, no traceback, nothing served."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from node_client import NodeClient
from tls_certs import Certificates, make_certificates

from gunrelay.config import InvalidSetting, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "tls")


def serve(tmp_path: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gunrelay", "serve", "--host", "127.0.0.1", "--port", "0",
         "--data", str(tmp_path / "data"), "--gun-dir", str(REPO / "node_modules" / "gun"), *options],
        cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop(relay: subprocess.Popen[str]) -> None:
    if relay.poll() is None:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=15)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait(timeout=15)


def start_line(relay: subprocess.Popen[str]) -> str:
    assert relay.stdout is not None
    line = relay.stdout.readline()  # the first line it prints; the process ends (EOF) if it fails
    assert "listening on" in line, (line, relay.stderr.read() if relay.poll() is not None else "")
    return line


def get_json(url: str, context: ssl.SSLContext) -> tuple[int, dict]:
    for _ in range(100):  # the relay answers 503 "starting" for a moment after its start line
        with urllib.request.urlopen(url, context=context, timeout=5) as answer:
            if answer.status == 200:
                return answer.status, json.loads(answer.read())
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered 200")


@pytest.mark.interop
def test_gunjs_clients_put_and_get_over_wss_and_health_answers_over_https(tmp_path, certificates):
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH (make test installs it)")
    relay = serve(tmp_path, "--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key))
    writer = reader = None
    try:
        line = start_line(relay)
        port = int(line.split("https://127.0.0.1:")[1].split(" ")[0])
        assert f"GUN websocket at wss://127.0.0.1:{port}/gun" in line
        trusting = ssl.create_default_context(cafile=str(certificates.ca))
        status, health = get_json(f"https://127.0.0.1:{port}/health", trusting)
        assert (status, health["status"]) == (200, "ok")
        with pytest.raises(urllib.error.URLError):  # a client that does not trust the CA is refused
            urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=ssl.create_default_context(), timeout=5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:  # plain http is not served
            plain.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not plain.recv(100).startswith(b"HTTP/1.1 200")

        peer = f"wss://127.0.0.1:{port}/gun"
        soul = f"tls-{os.getpid()}-{time.monotonic_ns()}"
        writer = NodeClient(peer, certificates.ca)
        put = writer.ask("put", soul=soul, key="said", value="over wss", timeout=8000)
        assert put.get("ack") == {"ok": True, "err": None}, (put, writer.events)
        reader = NodeClient(peer, certificates.ca)  # a fresh client knows nothing: it can only ask the relay
        got = reader.ask("once", soul=soul, key="said", timeout=8000)
        assert (got["defined"], got["value"]) == (True, "over wss"), (got, reader.events)
        assert writer.wait_event(lambda e: e.get("event") == "open", 5) and reader.wait_event(lambda e: e.get("event") == "open", 5)
    finally:
        for client in (writer, reader):
            if client is not None:
                client.close()
        stop(relay)


def test_tls_is_off_by_default_and_the_start_line_says_http(tmp_path):
    relay = serve(tmp_path)
    try:
        line = start_line(relay)
        assert "listening on http://127.0.0.1:" in line and "GUN websocket at ws://127.0.0.1:" in line
    finally:
        stop(relay)


def _bad_pairs(tmp_path: Path, good: Certificates) -> list[tuple[str, list[str], str]]:
    other = make_certificates(tmp_path / "other")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    unreadable = tmp_path / "unreadable.pem"
    unreadable.write_bytes(good.key.read_bytes())
    unreadable.chmod(0)
    encrypted = tmp_path / "encrypted.pem"
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(good.key.read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    cases = [
        ("missing certificate", ["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(good.key)], "cannot read it: No such file"),
        ("missing key", ["--tls-cert", str(good.cert), "--tls-key", str(tmp_path / "nope.pem")], "cannot read it: No such file"),
        ("key without certificate", ["--tls-key", str(good.key)], "--tls-key is set but --tls-cert is not"),
        ("certificate without key", ["--tls-cert", str(good.cert)], "--tls-cert is set but --tls-key is not"),
        ("not PEM", ["--tls-cert", str(junk), "--tls-key", str(good.key)], "does not hold a PEM certificate"),
        ("swapped", ["--tls-cert", str(good.key), "--tls-key", str(good.cert)], "does not hold a PEM certificate"),
        ("someone else's key", ["--tls-cert", str(good.cert), "--tls-key", str(other.key)], "the key does not belong to the certificate"),
        ("encrypted key", ["--tls-cert", str(good.cert), "--tls-key", str(encrypted)], "is encrypted"),
    ]
    if os.geteuid() != 0:  # root reads a file whatever its mode
        cases.append(("unreadable key", ["--tls-cert", str(good.cert), "--tls-key", str(unreadable)], "cannot read it: Permission denied"))
    return cases


def test_every_bad_certificate_or_key_is_a_clear_setting_error(tmp_path, certificates):
    for what, options, expected in _bad_pairs(tmp_path, certificates):
        given = dict(zip([o.removeprefix("--").replace("-", "_") for o in options[::2]], options[1::2]))
        with pytest.raises(InvalidSetting) as refused:
            load_config(given, {})
        assert expected in str(refused.value), what
    with pytest.raises(InvalidSetting) as refused:  # the environment is named when it gave the file
        load_config({}, {"GUNRELAY_TLS_CERT": str(certificates.cert), "GUNRELAY_TLS_KEY": str(tmp_path / "nope.pem")})
    assert "GUNRELAY_TLS_KEY=" in str(refused.value)
    loaded = load_config({}, {"GUNRELAY_TLS_CERT": str(certificates.cert), "GUNRELAY_TLS_KEY": str(certificates.key)})
    assert (loaded.tls_cert, loaded.tls_key) == (str(certificates.cert), str(certificates.key))


def test_gunrelay_serve_refuses_a_bad_pair_at_start_in_one_line_and_serves_nothing(tmp_path, certificates):
    for what, options, expected in _bad_pairs(tmp_path, certificates)[::2]:  # every other case: each start costs a second
        relay = serve(tmp_path, *options)
        try:
            out, err = relay.communicate(timeout=60)
        finally:
            stop(relay)
        assert relay.returncode != 0, what
        assert expected in err and "Traceback" not in err and "listening" not in out, (what, err)
        assert len(err.strip().splitlines()) == 1, (what, err)
        assert not (tmp_path / "data" / "gunrelay.sqlite3").exists(), what
