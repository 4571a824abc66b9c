"""A fleet behind a load balancer: Debian's real nginx with the site file we ship
(docs/deploy/nginx-gunrelay.conf), its upstream listing two `gunrelay serve` processes on one
PostgreSQL store, TLS, real GunJS clients in Node each leaving from its own loopback address.

nginx spreads the clients' websockets over both processes (round robin); what one client writes
reaches another's live `on()` wherever each landed; each process sees its clients by their own
addresses (through X-Forwarded-For from nginx, a trusted proxy); a ban made through nginx (on
whichever process nginx picked) closes the banned client's socket on the process holding it and
refuses its reconnections; /health through nginx is 200."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_support import Relay, free_port, rid
from postgres_server import PostgresServer
from test_nginx import NGINX, Nginx, api, peer_addresses, render_site, wait_for

from node_client import NodeClient  # test_nginx put tests/ on the path

pytestmark = pytest.mark.interop


@pytest.fixture
def fleet_behind_nginx(tmp_path: Path) -> Iterator[tuple[list[Relay], int, object]]:
    if NGINX is None:
        pytest.fail("nginx is not installed (make test installs it: tools/install-debian-packages)")
    from tls_certs import make_certificates

    certificates = make_certificates(tmp_path / "tls")
    server = PostgresServer()
    server.start()
    args = ["--storage", "postgres", "--postgres-url", server.new_database()]
    relays = [Relay(tmp_path / "data", tmp_path / "logs", args=args) for _ in range(2)]
    https_port, http_port = free_port(), free_port()
    (tmp_path / "acme").mkdir()
    site = render_site(relays[0].port, https_port, http_port, certificates, tmp_path / "acme")
    one = f"server 127.0.0.1:{relays[0].port};"
    assert site.count(one) == 1
    site = site.replace(one, f"{one}\n    server 127.0.0.1:{relays[1].port};")  # the fleet: one line per process
    nginx = Nginx(tmp_path / "nginx", site)
    try:
        for relay in relays:
            relay.start()
        nginx.start(https_port)
        yield relays, https_port, certificates
    finally:
        nginx.stop()
        for relay in relays:
            relay.stop()
        server.stop()


def test_gunjs_clients_through_nginx_share_one_fleet(fleet_behind_nginx):
    relays, https_port, certificates = fleet_behind_nginx
    token = (relays[0].data_dir / "admin-token").read_text().strip()
    trusting = ssl.create_default_context(cafile=str(certificates.ca))  # type: ignore[attr-defined]
    via_nginx = f"https://127.0.0.1:{https_port}"
    for _ in range(2):  # each process answers in turn
        with urllib.request.urlopen(via_nginx + "/health", context=trusting, timeout=10) as health:
            assert json.loads(health.read())["status"] == "ok"

    soul = rid("fleet-nginx-")
    addresses = [f"127.0.0.{n}" for n in range(2, 6)]
    clients = [NodeClient(via_nginx + "/gun", certificates.ca, local_address=a) for a in addresses]  # type: ignore[attr-defined]
    try:
        for client in clients:
            assert client.ask("once", soul=soul, key="hello")["defined"] is False  # connected, through nginx
        landed = {}

        def spread() -> bool:
            landed.update({relay.port: peer_addresses(relay, token) for relay in relays})
            return sorted(a for found in landed.values() for a in found) == addresses

        assert wait_for(spread, 10), landed
        assert all(landed.values()), f"nginx sent every client to one process: {landed}"

        # a live on() on every client; a write by one reaches all, whichever process each is on
        for client in clients:
            assert client.ask("on", soul=soul, key="say")["following"] is True
        assert clients[0].ask("put", soul=soul, key="say", value="to the whole fleet")["ack"] == {"ok": True, "err": None}
        for client in clients[1:]:
            assert client.wait_event(lambda e: e.get("event") == "on" and e.get("value") == "to the whole fleet", 10), client.events

        # a ban through nginx closes the banned client's socket wherever it is, and refuses it after
        banned_address = addresses[-1]
        api(via_nginx + "/-/api/bans", token, body={"address": banned_address, "duration": "1h", "reason": "test"}, context=trusting)
        banned = clients[-1]
        assert banned.wait_event(lambda e: e.get("event") == "close", 10), banned.events
        assert banned.wait_event(lambda e: e.get("event") == "refused" and e.get("status") == 403, 15), banned.events
        assert wait_for(lambda: all(banned_address not in peer_addresses(relay, token) for relay in relays), 10)
        assert clients[1].ask("put", soul=soul, key="say", value="after the ban")["ack"] == {"ok": True, "err": None}
        assert clients[0].wait_event(lambda e: e.get("event") == "on" and e.get("value") == "after the ban", 10), clients[0].events
    finally:
        for client in clients:
            client.close()
