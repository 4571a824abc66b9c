"""The relay behind Debian's real nginx, run with the site file we ship (docs/deploy/nginx-gunrelay.conf):
TLS with a certificate made in the test, the websocket upgrade, real GunJS clients in Node, each
leaving from its own loopback address (127.0.0.2, 127.0.0.3, ...).

What it shows: the clients put and get through nginx; the console's peer list (the admin API)
shows each client's own address, not nginx's; a ban of one client's address refuses that client
(its socket closed, its reconnections answered 403 through nginx) while the others go on; the
audit log records the address of an operator who comes through nginx; an X-Forwarded-For a
client writes itself, through nginx or straight to the relay (not a trusted proxy), changes
nothing.

nginx runs as a child of the test (``daemon off``), on 127.0.0.1 only, with its configuration,
pid file, logs and temp folders in the test's temp folder; it is stopped by its PID.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_support import Relay, free_port, rid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the suite-wide helpers in tests/
from node_client import NodeClient  # noqa: E402
from tls_certs import Certificates, make_certificates  # noqa: E402

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "docs" / "deploy" / "nginx-gunrelay.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def render_site(relay_port: int, https_port: int, http_port: int, certificates: Certificates, acme: Path) -> str:
    """The shipped site with what must differ in a test: ports on 127.0.0.1, the certificate, the
    ACME folder. Each change must match exactly once, so a changed site file fails loudly here."""
    text = SITE.read_text()
    changes = [
        ("server 127.0.0.1:8765;", f"server 127.0.0.1:{relay_port};"),
        ("    listen 80;\n    listen [::]:80;\n", f"    listen 127.0.0.1:{http_port};\n"),
        ("    listen 443 ssl;\n    listen [::]:443 ssl;\n", f"    listen 127.0.0.1:{https_port} ssl;\n"),
        ("/etc/letsencrypt/live/relay.example.org/fullchain.pem", str(certificates.cert)),
        ("/etc/letsencrypt/live/relay.example.org/privkey.pem", str(certificates.key)),
        ("root /var/www/html;", f"root {acme};"),
    ]
    for old, new in changes:
        assert text.count(old) == 1, f"the site file no longer has exactly one {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, folder: Path, site: str):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / temp).mkdir(exist_ok=True)
            (folder / temp).chmod(0o777)  # nginx's workers may run as nobody
        (folder / "site.conf").write_text(site)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(
            f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  access_log {folder}/access.log;\n"
            f"  client_body_temp_path {folder}/client_body;\n  proxy_temp_path {folder}/proxy;\n"
            f"  fastcgi_temp_path {folder}/fastcgi;\n  uwsgi_temp_path {folder}/uwsgi;\n  scgi_temp_path {folder}/scgi;\n"
            f"  include {folder}/site.conf;\n"
            "}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        assert NGINX is not None
        return [NGINX, "-p", str(self.folder), "-c", str(self.conf), "-e", str(self.folder / "error.log"), *extra]

    def start(self, port: int) -> None:
        checked = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx -t refused the site: {checked.stderr}"
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(200):  # bounded: 10 s
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read() if self.proc.stderr else b''!r}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[Relay, int, Certificates]]:
    if NGINX is None:
        pytest.fail("nginx is not installed (make test installs it: tools/install-debian-packages)")
    certificates = make_certificates(tmp_path / "tls")
    relay = Relay(tmp_path / "data", tmp_path / "logs", target="ours")
    https_port, http_port = free_port(), free_port()
    (tmp_path / "acme").mkdir()
    nginx = Nginx(tmp_path / "nginx", render_site(relay.port, https_port, http_port, certificates, tmp_path / "acme"))
    relay.start()
    try:
        nginx.start(https_port)
        yield relay, https_port, certificates
    finally:
        nginx.stop()
        relay.stop()


def api(url: str, token: str, *, body: dict | None = None, context: ssl.SSLContext | None = None,
        source: str | None = None) -> dict:
    """One admin API call (bearer token), optionally from a given local address."""
    request = urllib.request.Request(url, method="GET" if body is None else "POST",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    handlers: list[urllib.request.BaseHandler] = []
    if source is not None:
        import http.client

        class FromSource(urllib.request.HTTPSHandler):
            def https_open(self, req):  # type: ignore[no-untyped-def]
                return self.do_open(lambda host, **kw: http.client.HTTPSConnection(host, source_address=(source, 0), **kw),
                                    req, context=context)

        handlers.append(FromSource(context=context))
    elif context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    with urllib.request.build_opener(*handlers).open(request, timeout=10) as answer:
        return json.loads(answer.read())


def peer_addresses(relay: Relay, token: str) -> list[str]:
    return sorted(p["address"] for p in api(relay.http_url + "/-/api/peers", token)["peers"])


def wait_for(check, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_gunjs_clients_through_nginx_are_seen_banned_and_served_by_their_own_addresses(behind_nginx):
    relay, https_port, certificates = behind_nginx
    token = (relay.data_dir / "admin-token").read_text().strip()
    trusting = ssl.create_default_context(cafile=str(certificates.ca))
    via_nginx = f"https://127.0.0.1:{https_port}"
    with urllib.request.urlopen(via_nginx + "/health", context=trusting, timeout=10) as health:
        assert json.loads(health.read())["status"] == "ok"

    soul = rid("nginx-")
    peer = via_nginx + "/gun"  # GunJS makes it wss://
    clients: list[NodeClient] = []
    try:
        alice = NodeClient(peer, certificates.ca, local_address="127.0.0.2")
        # bob writes his own X-Forwarded-For through nginx: nginx overwrites it, the relay never sees it
        bob = NodeClient(peer, certificates.ca, local_address="127.0.0.3", headers={"X-Forwarded-For": "203.0.113.9"})
        clients += [alice, bob]
        assert alice.ask("put", soul=soul, key="alice", value="hello from .2")["ack"] == {"ok": True, "err": None}
        got = bob.ask("once", soul=soul, key="alice")
        assert (got["defined"], got["value"]) == (True, "hello from .2"), got
        assert wait_for(lambda: peer_addresses(relay, token) == ["127.0.0.2", "127.0.0.3"], 10), peer_addresses(relay, token)

        # the operator comes through nginx too (from 127.0.0.5): the audit log names that address
        banned = api(via_nginx + "/-/api/bans", token, body={"address": "127.0.0.2", "duration": "1h", "reason": "test"},
                     context=trusting, source="127.0.0.5")
        assert [b["address"] for b in banned["banned"]] == ["127.0.0.2"]
        [entry] = [e for e in api(relay.http_url + "/-/api/audit", token)["entries"] if e["action"] == "ban.create"]
        assert entry["address"] == "127.0.0.5"

        # alice's socket is closed and each reconnection is refused with 403 (through nginx)
        assert alice.wait_event(lambda e: e.get("event") == "close", 10), alice.events
        assert alice.wait_event(lambda e: e.get("event") == "refused" and e.get("status") == 403, 15), alice.events
        assert wait_for(lambda: peer_addresses(relay, token) == ["127.0.0.3"], 10), peer_addresses(relay, token)
        assert alice.ask("put", soul=soul, key="alice", value="banned now", timeout=3000).get("ack") is None
        # bob goes on, and a newcomer from .4 reads what bob wrote and not what alice tried
        assert bob.ask("put", soul=soul, key="bob", value="still here")["ack"] == {"ok": True, "err": None}
        carol = NodeClient(peer, certificates.ca, local_address="127.0.0.4")
        clients.append(carol)
        assert carol.ask("once", soul=soul, key="bob")["value"] == "still here"
        assert carol.ask("once", soul=soul, key="alice")["value"] == "hello from .2"
        assert wait_for(lambda: peer_addresses(relay, token) == ["127.0.0.3", "127.0.0.4"], 10), peer_addresses(relay, token)

        # straight to the relay from 127.0.0.6 (not a trusted proxy), claiming to be someone else
        dave = NodeClient(relay.http_url + "/gun", local_address="127.0.0.6", headers={"X-Forwarded-For": "198.51.100.7"})
        clients.append(dave)
        assert dave.ask("once", soul=soul, key="bob")["value"] == "still here"
        assert wait_for(lambda: peer_addresses(relay, token) == ["127.0.0.3", "127.0.0.4", "127.0.0.6"], 10), peer_addresses(relay, token)
        # ... nor can a stranger pass for the banned address by writing it
        mallory = NodeClient(relay.http_url + "/gun", local_address="127.0.0.7", headers={"X-Forwarded-For": "127.0.0.2"})
        clients.append(mallory)
        assert mallory.ask("once", soul=soul, key="bob")["value"] == "still here"
        assert wait_for(lambda: "127.0.0.7" in peer_addresses(relay, token), 10)

        with urllib.request.urlopen(relay.http_url + "/metrics?x=1", timeout=10) as scraped:
            metrics = scraped.read().decode()
        assert 'gunrelay_refused_total{reason="banned"}' in metrics
        assert not any(line.startswith('gunrelay_refused_total{reason="banned"} 0') for line in metrics.splitlines())
    finally:
        for client in clients:
            client.close()
