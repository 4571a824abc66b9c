"""Bad and failing infrastructure under relays on PostgreSQL (issue 13), with real GunJS clients:

* a URL that cannot work (not a URL, a database that does not exist) stops `gunrelay serve` at
  once with a clear error;
* a PostgreSQL that is down when the relay starts: the relay answers ``/health`` 503 with the
  reason, refuses clients meanwhile, and serves by itself once the server is up;
* a PostgreSQL that goes down while serving: writes are refused with an error (never acked),
  ``/health`` is 503 with the reason, and the relay recovers by itself when it is back;
* a full disk under the database: writes refused saying so, ``/health`` 503, recovery;
* a write storm through two processes while PostgreSQL crashes and restarts, the relay's writer
  connection is cut in the middle of its transactions, and one process is SIGKILLed and restarted:
  no acknowledged write is lost, and a subscriber on the other process is pushed every one of them.

PostgreSQL is the throwaway server of tests/postgres_server.py; the full disk is a small tmpfs
holding the database's tablespace (root only, as the other fault tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_server import PostgresServer

from interop_support import REPO, RawPeer, Relay, Storm, gun_once, gun_put, now_ms, put_msg, rid, run_gun, wait_for

pytestmark = pytest.mark.interop

NO_RATE_LIMITS = ["--max-messages-per-s", "0", "--max-fields-per-s", "0"]


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def health(relay: Relay) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(relay.http_url + "/health", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def raw_put(relay: Relay, soul: str, value: str) -> dict[str, Any]:
    with RawPeer(relay.ws_url) as peer:
        reply = peer.request(put_msg(soul, {"v": (value, now_ms())}), timeout=15)
    assert reply is not None, "no answer to a put"
    return reply


def pg_args(url: str) -> list[str]:
    return ["--storage", "postgres", "--postgres-url", url]


# -- a URL that cannot work ---------------------------------------------------------------------------


@pytest.mark.parametrize("url, said", [
    ("not a url at all", "--postgres-url is not a PostgreSQL URL"),
    ("postgresql://postgres@127.0.0.1:{port}/no_such_database", "database \"no_such_database\" does not exist"),
])
def test_a_postgres_url_that_cannot_work_stops_serve_with_a_clear_error(postgres, tmp_path, url, said):
    done = subprocess.run(
        [sys.executable, "-m", "gunrelay", "serve", "--host", "127.0.0.1", "--port", "0", "--data", str(tmp_path / "data"),
         *pg_args(url.format(port=postgres.port))],
        cwd=str(REPO), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# -- down at start ------------------------------------------------------------------------------------


def test_a_relay_started_before_its_database_says_why_refuses_clients_and_serves_once_it_is_up(postgres, tmp_path):
    url = postgres.new_database()
    postgres.halt()
    relay = Relay(tmp_path / "data", tmp_path / "logs", args=pg_args(url))
    started = threading.Thread(target=relay.start, daemon=True)  # returns once /health says 200
    started.start()
    try:
        status, body = wait_for("a /health answer while the database is down", lambda: _answering(relay), timeout=30)
        assert status == 503 and body["status"] == "starting", body
        assert "waiting for the store" in body["reason"] and "PostgreSQL" in body["reason"], body
        with pytest.raises(Exception):  # the websocket is refused at the upgrade meanwhile
            RawPeer(relay.ws_url).close()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(relay.http_url + "/-/api/stats", timeout=5)
        assert refused.value.code == 503 and "not serving yet" in refused.value.read().decode()
        assert relay.alive()

        postgres.resume()
        started.join(timeout=60)
        assert not started.is_alive() and relay.alive(), relay.log_text()
        soul = rid("late-db-")
        gun_put(relay, soul, "v", "stored once the database came up", tmp_path)
        assert gun_once(relay, soul, "v", tmp_path)["value"] == "stored once the database came up"
    finally:
        started.join(timeout=60)
        relay.stop()


def _answering(relay: Relay) -> tuple[int, dict[str, Any]] | None:
    try:
        return health(relay)
    except (OSError, ValueError):
        return None


# -- down while serving -------------------------------------------------------------------------------


def test_postgres_down_while_serving_refuses_writes_saying_why_and_the_relay_recovers_by_itself(postgres, tmp_path):
    relay = Relay(tmp_path / "data", tmp_path / "logs", args=pg_args(postgres.new_database())).start()
    try:
        before = rid("before-")
        gun_put(relay, before, "v", "acked before the outage", tmp_path)
        postgres.halt()

        # no write needed: the heartbeat notices within a second or two
        status, body = wait_for("/health 503 while PostgreSQL is down", lambda: (lambda h: h if h[0] == 503 else None)(health(relay)), timeout=15)
        assert body["status"] == "degraded" and "PostgreSQL" in body["storage_health"]["error"], body
        reply = raw_put(relay, rid("during-"), "refused")
        assert "err" in reply and "PostgreSQL" in reply["err"] and "ok" not in reply, reply
        done = run_gun(relay, [{"op": "wait_connected"}, {"op": "put", "path": [rid("during-gun-"), "v"], "value": "refused"}], tmpdir=tmp_path)
        assert "PostgreSQL" in str(done.results[-1].get("ack", {}).get("err")), done.results  # GunJS's put callback gets the error

        postgres.resume()
        wait_for("/health 200 after PostgreSQL came back", lambda: health(relay)[0] == 200, timeout=30)
        after = rid("after-")
        gun_put(relay, after, "v", "acked after the outage", tmp_path)
        assert gun_once(relay, before, "v", tmp_path)["value"] == "acked before the outage"
        assert gun_once(relay, after, "v", tmp_path)["value"] == "acked after the outage"
        assert relay.alive()
    finally:
        relay.stop()


# -- a full disk --------------------------------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True, capture_output=True)


def _unmount(path: Path) -> None:
    for _ in range(50):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_under_the_database_refuses_writes_saying_so_and_recovers(postgres, tmp_path):
    disk = postgres.root / "disk"  # inside the server's folder: its user can reach it
    _mount_tmpfs(disk, "12m")  # a new database's files take about 7.5 MiB of it
    relay = None
    try:
        postgres.tablespace_on(disk, "small")
        url = postgres.new_database(tablespace="small")
        relay = Relay(tmp_path / "data", tmp_path / "logs", args=[*pg_args(url), *NO_RATE_LIMITS]).start()
        acked: dict[str, str] = {}
        refusal = None
        with RawPeer(relay.ws_url) as peer:
            for i in range(2000):  # bounded: about 6 MiB of values fill what is left long before
                soul, value = f"fill/{i}", os.urandom(6000).hex()  # hex of random bytes: little to compress
                reply = peer.request(put_msg(soul, {"v": (value, now_ms())}), timeout=15)
                assert reply is not None
                if "err" in reply:
                    refusal = reply["err"]
                    break
                acked[soul] = value
            assert refusal is not None, "the disk never filled"
            assert "disk is full" in refusal, refusal

            def degraded() -> dict[str, Any] | None:  # each refused write says so again, whatever a probe saw between
                peer.request(put_msg(rid("full-"), {"v": ("x" * 6000, now_ms())}), timeout=15)
                status, body = health(relay)
                return body if status == 503 else None

            body = wait_for("/health 503 on the full disk", degraded, timeout=20)
            assert "disk is full" in body["storage_health"]["error"], body

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True, capture_output=True)
        wait_for("/health 200 once there is room", lambda: health(relay)[0] == 200, timeout=30)
        assert "ok" in raw_put(relay, "after/room", "stored")
        with psycopg.connect(url) as conn:
            stored = {bytes(soul).decode(): json.loads(value) for soul, value in conn.execute("SELECT soul, value FROM fields WHERE key = 'v'")}
        assert [soul for soul, value in acked.items() if stored.get(soul) != value] == []
        assert len(acked) > 10
    finally:
        if relay is not None:
            relay.stop()
        postgres.halt()  # its files on the tmpfs are closed before the unmount
        _unmount(disk)


# -- a storm through PostgreSQL's crash, cut connections and a SIGKILL ----------------------------------


class Subscriber:
    """A raw websocket peer on one process following many souls; what the relay pushed it, per soul."""

    def __init__(self, relay: Relay, souls: list[str]):
        self.peer = RawPeer(relay.ws_url)
        self.seen: dict[str, Any] = {}
        self.stopping = threading.Event()
        for start in range(0, len(souls), 500):
            self.peer.send([{"#": f"sub-{soul}", "get": {"#": soul}} for soul in souls[start:start + 500]])
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        deadline = time.monotonic() + 600  # bounded, whatever the test does
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                self.peer._recv(0.2)
            except AssertionError:
                return
            while self.peer.inbox:
                message = self.peer.inbox.pop(0)
                for soul, node in (message.get("put") or {}).items():
                    if isinstance(node, dict) and "v" in node:
                        self.seen[soul] = node["v"]

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.peer.close()


def _cut_writer_connections(url: str) -> int:
    """End the relays' writer sessions, wherever they are in their transactions."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'gunrelay writer%%'"
        ).fetchall()
    return len(rows)


def test_a_write_storm_through_a_postgres_crash_cut_connections_and_a_sigkill_loses_no_ack_and_no_push(postgres, tmp_path):
    url = postgres.new_database()
    args = [*pg_args(url), *NO_RATE_LIMITS]
    a = Relay(tmp_path / "data", tmp_path / "logs", args=args).start()
    b = Relay(tmp_path / "data", tmp_path / "logs", args=args).start()
    prefix_a, prefix_b = f"storm-a-{rid()}", f"storm-b-{rid()}"
    followed = [f"{prefix_a}/{client}/{n}" for client in range(2) for n in range(3000)]
    subscriber = Subscriber(b, followed)
    storms: list[Storm] = []
    try:
        storms = [Storm(a, prefix_a, clients=2, inflight=2), Storm(b, prefix_b, clients=2, inflight=2)]

        def more_acks(count: int) -> None:
            for storm in storms:
                storm.take()
                storm.wait_acks(len(storm.acked) + count, timeout=60)

        more_acks(50)
        postgres.halt(immediate=True)  # a crash: no checkpoint, recovery at the next start
        wait_for("/health 503 while PostgreSQL is down", lambda: health(b)[0] == 503, timeout=15)
        postgres.resume()
        more_acks(50)
        for _ in range(3):  # writer connections cut wherever they are, a batch in flight or not
            assert _cut_writer_connections(url) >= 1
            more_acks(20)
        assert a.proc is not None
        a.proc.kill()  # SIGKILL, by its PID
        a.proc.wait(timeout=10)
        a.start()
        more_acks(50)
        summaries = [storm.stop() for storm in storms]
    finally:
        for storm in storms:
            storm.kill()

    try:
        acked = {soul: value for storm in storms for soul, value in storm.acked.items()}
        with psycopg.connect(url) as conn:
            stored = {bytes(soul).decode(): json.loads(value) for soul, value in conn.execute("SELECT soul, value FROM fields WHERE key = 'v'")}
        lost = [soul for soul, value in acked.items() if stored.get(soul) != value]
        print(f"\n{[s['sent'] for s in summaries]} puts sent, {len(acked)} acked, {sum(len(s.refused) for s in storms)} refused")
        assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
        assert all("PostgreSQL" in r["err"] or "storage" in r["err"] for storm in storms for r in storm.refused), storms[0].refused[:3]

        # every acknowledged write among the souls followed on B was pushed to the subscriber there
        expected = {soul: acked[soul] for soul in followed if soul in acked}
        assert len(expected) >= 100, len(expected)
        wait_for("every acked write pushed to B's subscriber",
                 lambda: all(subscriber.seen.get(soul) == value for soul, value in expected.items()), timeout=30)
    except AssertionError:
        missed = [soul for soul, value in acked.items() if soul in set(followed) and subscriber.seen.get(soul) != value]
        print(f"not pushed: {len(missed)}, e.g. {missed[:5]}\nA: {a.log_text(3000)}\nB: {b.log_text(3000)}")
        raise
    finally:
        subscriber.close()
        b.stop()
        a.stop()


def test_a_process_with_another_identity_is_refused_by_the_fleets_database(postgres, tmp_path):
    url = postgres.new_database()
    relay = Relay(tmp_path / "data", tmp_path / "logs", args=pg_args(url)).start()
    try:
        done = subprocess.run(  # its own, new data folder: a new key pair
            [sys.executable, "-m", "gunrelay", "serve", "--host", "127.0.0.1", "--port", "0", "--data", str(tmp_path / "other"), *pg_args(url)],
            cwd=str(REPO), capture_output=True, text=True, timeout=60,
        )
        assert done.returncode != 0
        assert "is the store of relay" in done.stderr and "copy identity.json" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert relay.alive() and health(relay)[0] == 200
    finally:
        relay.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_database_that_stops_answering_makes_health_say_so_and_the_waiting_write_is_acked_after(postgres, tmp_path):
    relay = Relay(tmp_path / "data", tmp_path / "logs", args=pg_args(postgres.new_database())).start()
    assert "ok" in raw_put(relay, "before/1", "the writer's connection is open")  # (a new one would time out instead)
    assert postgres.process is not None
    frozen = [postgres.process.pid, *_children(postgres.process.pid)]  # the server we started and its backends
    try:
        with RawPeer(relay.ws_url) as peer:
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            try:
                put = put_msg("frozen/1", {"v": ("written while the server was frozen", now_ms())})
                peer.send(put)
                status, body = wait_for("/health 503 while writes wait",
                                        lambda: (lambda h: h if h[0] == 503 else None)(health(relay)), timeout=30)
                assert "has waited" in (body["storage_health"]["stuck"] or ""), body["storage_health"]
                assert peer.replies(put["#"]) == []  # not acknowledged while it is not durable
            finally:
                for pid in frozen:
                    os.kill(pid, signal.SIGCONT)
            reply = peer.wait_reply(put["#"], timeout=30)
            assert reply is not None and reply.get("ok") and "err" not in reply, reply
        wait_for("/health 200 once the server answers", lambda: health(relay)[0] == 200, timeout=30)
        assert gun_once(relay, "frozen/1", "v", tmp_path)["value"] == "written while the server was frozen"
    finally:
        relay.stop()
