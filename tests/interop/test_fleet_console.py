"""The console and the admin API behind a load balancer, which may send each request to any process
of a fleet (two processes on one PostgreSQL store here): a console login made through one works
through the other (a state-changing request with its CSRF token included), and a logout through
the other ends it on the first within seconds; a snapshot taken through one is listed, restored
and deleted through the other (it lives in the database, not in one machine's folder)."""

from __future__ import annotations

import httpx
import pytest

from interop_support import Relay, gun_once, gun_put, operator, rid, wait_for

pytestmark = pytest.mark.interop


def test_a_console_login_through_one_process_works_through_the_other_until_logged_out(fleet: tuple[Relay, Relay]):
    first, second = fleet
    token = (first.data_dir / "admin-token").read_text().strip()
    with httpx.Client(base_url=first.http_url, timeout=20) as on_first:
        login = on_first.post("/-/api/login", json={"password": token})
        assert login.status_code == 200, login.text
        csrf = login.json()["csrf"]
        cookies = dict(on_first.cookies)
    with httpx.Client(base_url=second.http_url, timeout=20, cookies=cookies) as on_second:
        assert on_second.get("/-/api/session").json()["user"] == "admin"
        ban = on_second.post("/-/api/bans", json={"address": "192.0.2.44", "duration": "1m", "reason": "console on B"},
                             headers={"X-CSRF-Token": csrf})
        assert ban.status_code == 201, ban.text
        assert on_second.post("/-/api/bans", json={"address": "192.0.2.45", "duration": "1m"}).status_code == 403  # no CSRF token
        assert on_second.post("/-/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    with httpx.Client(base_url=first.http_url, timeout=20, cookies=cookies) as again:
        wait_for("the logout through the second process ends the session on the first",
                 lambda: again.get("/-/api/session").status_code == 401, timeout=10)


def test_a_snapshot_taken_through_one_process_is_listed_restored_and_deleted_through_the_other(fleet: tuple[Relay, Relay], tmp_path):
    first, second = fleet
    soul = rid("fleet-snapshot-")
    gun_put(first, soul, "v", "in the snapshot", tmp_path)
    taken = operator(first, "POST", "/-/api/snapshots", {"label": "fleet"})
    assert taken["fields"] >= 1
    assert taken["name"] in [s["name"] for s in operator(second, "GET", "/-/api/snapshots")["snapshots"]]
    gun_put(second, soul, "v", "after the snapshot", tmp_path)
    restored = operator(second, "POST", f"/-/api/snapshots/{taken['name']}/restore", {"reason": "fleet test"})
    assert restored["restored_fields"] == taken["fields"]
    for relay in (first, second):  # the graph is the snapshot's, whichever process serves it
        wait_for("the restored value served", lambda relay=relay: gun_once(relay, soul, "v", tmp_path).get("value") == "in the snapshot", timeout=15)
    deleted = operator(first, "DELETE", f"/-/api/snapshots/{taken['name']}")
    assert deleted == {"deleted": taken["name"]}
    assert taken["name"] not in [s["name"] for s in operator(second, "GET", "/-/api/snapshots")["snapshots"]]
