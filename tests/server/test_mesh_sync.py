"""When a relay that obeys others' resets starts serving its clients (server.mesh.MeshSync), with
fake links and an injected clock."""

from types import SimpleNamespace

from gunrelay.server.mesh import GUNJS_RELAY_AFTER_S, MeshSync


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def link(state="up", pub="pubA", failed=0, up_since=100.0):
    connection = None if state != "up" else SimpleNamespace(relay_pub=pub)
    return SimpleNamespace(url=f"ws://{pub}", state=state, connection=connection, dials_failed=failed, up_since=up_since)


def mesh(*links, caught_up=()):
    return SimpleNamespace(links=list(links), catch_up=SimpleNamespace(caught_up={pub: True for pub in caught_up}))


def sync(the_mesh, pending=0, enabled=True, wait_s=10.0, clock=None):
    return MeshSync(the_mesh, lambda: pending, enabled=enabled, wait_s=wait_s, clock=clock or Clock())


def test_without_trusted_relays_or_peers_clients_are_served_at_once():
    assert sync(mesh(link(pub="p")), enabled=False).waiting_for() is None
    assert sync(mesh()).waiting_for() is None


def test_clients_wait_until_every_dialled_relay_was_read_to_the_end_and_its_resets_are_in():
    the_mesh = mesh(link(pub="a"), link(state="connecting", pub="b"))
    gate = sync(the_mesh)
    assert gate.waiting_for() == "reading ws://a's changes"
    the_mesh.catch_up.caught_up["a"] = True
    assert gate.waiting_for() == "the link to ws://b is not up yet"
    the_mesh.links[1] = link(pub="b")
    assert gate.waiting_for() == "reading ws://b's changes"
    the_mesh.catch_up.caught_up["b"] = True
    gate.pending_resets = lambda: 1
    assert "installing resets" in gate.waiting_for()
    gate.pending_resets = lambda: 0
    assert gate.waiting_for() is None
    the_mesh.catch_up.caught_up.clear()  # once in step, it stays so
    assert gate.waiting_for() is None


def test_an_unreachable_peer_a_link_to_itself_and_a_gunjs_relay_are_not_waited_for():
    clock = Clock()
    the_mesh = mesh(link(state="down", pub="x", failed=1), link(state="self", pub="me"), link(pub=None, up_since=100.0))
    gate = sync(the_mesh, clock=clock)
    assert "has not said who it is" in gate.waiting_for()
    clock.now += GUNJS_RELAY_AFTER_S
    assert gate.waiting_for() is None


def test_the_wait_is_bounded():
    clock = Clock()
    gate = sync(mesh(link(pub="a")), wait_s=3.0, clock=clock)
    assert gate.waiting_for() is not None
    clock.now += 3.0
    assert gate.waiting_for() is None
