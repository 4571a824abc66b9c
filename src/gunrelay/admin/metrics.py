"""``/metrics`` in Prometheus's text format, with the standard client library.

A custom collector reads the relay's running totals at scrape time, so the per-message path
counts plain integers and pays nothing for Prometheus. Every refusal by a limit, every error
answered by kind, fenced writes, resets and their purges, bans, logins and the store's size are
here. The registry is the app's own (several relays may live in one process, as in the tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..server.access import Access
from ..server.control import ResetControl
from ..server.expiry import Expiry
from ..server.mesh import Mesh
from ..server.monitor import Monitor
from ..server.relay import Relay
from .auth import AdminCounters


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(family: CounterMetricFamily | GaugeMetricFamily, label: str, values: dict[str, int]) -> Metric:
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


@dataclass(eq=False)  # hashable by identity: the registry keys collectors
class RelayCollector:
    relay: Relay
    control: ResetControl
    access: Access
    monitor: Monitor
    expiry: Expiry
    admin: AdminCounters
    mesh: Mesh

    def collect(self) -> Iterator[Metric]:
        relay, stats = self.relay, self.relay.stats
        yield InfoMetricFamily("gunrelay_build", "gunrelay's version", value={"version": __version__})
        yield GaugeMetricFamily("gunrelay_uptime_seconds", "seconds since the relay started", value=self.monitor.uptime_s())
        yield GaugeMetricFamily("gunrelay_connections", "websocket connections open now", value=len(relay.peers))
        yield GaugeMetricFamily("gunrelay_connections_peak", "most connections open at once since start", value=stats.peak_connections)
        yield _counter("gunrelay_connections_accepted", "connections accepted", stats.connections)
        yield _counter("gunrelay_messages_received", "GUN messages received", stats.messages_in)
        yield _counter("gunrelay_messages_sent", "GUN messages sent", stats.messages_out)
        yield _counter("gunrelay_received_bytes", "bytes of websocket frames received", stats.bytes_in)
        yield _counter("gunrelay_sent_bytes", "bytes of websocket frames sent", stats.bytes_out)
        yield _counter("gunrelay_puts", "put messages received", stats.puts)
        yield _counter("gunrelay_gets", "get messages received", stats.gets)
        yield _counter("gunrelay_acks", "puts acknowledged with ok", stats.acks)
        yield _counter("gunrelay_fenced_writes", "fields refused by a reset's fence, a rotation or a TTL rule", relay.fenced_writes)
        yield _labelled(CounterMetricFamily("gunrelay_errors", "messages answered with an error, by kind", labels=["kind"]), "kind", stats.errors)
        yield _labelled(
            CounterMetricFamily("gunrelay_refused", "connections and messages refused by a limit or a ban, by reason", labels=["reason"]),
            "reason",
            stats.refused,
        )
        kinds: dict[str, int] = {}
        purging = 0
        for held in self.control.resets.values():
            kinds[held.record.kind] = kinds.get(held.record.kind, 0) + 1
            purging += not held.purge_done
        health = relay.store.health
        yield GaugeMetricFamily("gunrelay_storage_ok", "1 while commits succeed, 0 while writes are refused (disk full, read-only)", value=int(health.ok))
        yield _counter("gunrelay_storage_failed_commits", "commits that failed (their writes were refused, never acked)", health.failed_commits)
        yield _counter("gunrelay_clock_jumps", "steps of the wall clock noticed against the monotonic clock", relay.clock_watch.jumps)
        yield _labelled(GaugeMetricFamily("gunrelay_resets", "resets, rotations and restores on record", labels=["kind"]), "kind", kinds)
        yield GaugeMetricFamily("gunrelay_purges_pending", "resets whose purge has not finished", value=purging)
        removed = sum(self.control.purged.get(r, held.purged) for r, held in self.control.resets.items())
        yield _counter("gunrelay_purged_fields", "fields removed by purges (resets, rotations)", removed)
        yield _counter("gunrelay_ttl_expired_fields", "fields removed by TTL sweeps since start", self.expiry.expired)
        yield GaugeMetricFamily("gunrelay_bans_active", "addresses banned now", value=len(self.access.active()))
        store = self.monitor.store_size()
        yield GaugeMetricFamily("gunrelay_store_souls", "souls stored (counted every few seconds)", value=store.souls)
        yield GaugeMetricFamily("gunrelay_store_fields", "fields stored", value=store.fields)
        yield GaugeMetricFamily("gunrelay_store_bytes", "bytes of souls, keys and values stored", value=store.bytes)
        yield from self._mesh()
        yield _labelled(CounterMetricFamily("gunrelay_admin_logins", "console logins by outcome", labels=["outcome"]), "outcome", self.admin.logins)
        yield _labelled(
            CounterMetricFamily("gunrelay_admin_refused", "admin requests refused, by reason", labels=["reason"]), "reason", self.admin.refused
        )


    def _mesh(self) -> Iterator[Metric]:
        states = {state: 0 for state in ("up", "down", "connecting", "covered", "self")}
        failures = 0
        for link in self.mesh.links:
            states[link.state] = states.get(link.state, 0) + 1
            failures += link.dials_failed
        yield _labelled(GaugeMetricFamily("gunrelay_mesh_dialled_links", "links to --peer relays, by state", labels=["state"]), "state", states)
        inbound = sum(1 for link in self.relay.engine.relay_links if not link.dialled and not link.closed)
        yield GaugeMetricFamily("gunrelay_mesh_inbound_links", "relays of the mesh linked in to this one now", value=inbound)
        yield _counter("gunrelay_mesh_dials_failed", "dials of --peer relays that failed or ended, since start", failures)


class Metrics:
    def __init__(self, collector: RelayCollector):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)  # type: ignore[arg-type]

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
