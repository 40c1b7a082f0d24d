"""Prometheus metrics. Names are a contract (ARCHITECTURE.md, "Metrics"); the registry is a
parameter so tests use a private ``CollectorRegistry`` and nothing registers at import time."""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from symlinkd import __version__
from symlinkd.model import Judgement, MountHealth, MountState, Outcome, Verdict

_SCAN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # No ``*_created`` series: a timestamp per counter child doubles the scrape for nothing
        # a dashboard uses. The switch is process-wide; it is set before any metric exists.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.links = Gauge(
            "symlinkd_links",
            "Links by the mount they point into and their verdict, as the last full pass left "
            "the farm: a relinked link counts ok under its new mount, a pruned one is gone "
            "(mount=\"none\": outside every mount)",
            ["mount", "verdict"], registry=registry,
        )
        self.mount_up = Gauge(
            "symlinkd_mount_up",
            "1 when the mount answered its last probe healthy, else 0 (probed every "
            "probe_interval_seconds and by every pass)",
            ["mount"], registry=registry,
        )
        self.mount_state = Gauge(
            "symlinkd_mount_state", "1 for the mount's current state (ok, down, hung, degraded)",
            ["mount", "state"], registry=registry,
        )
        self.scan_duration = Histogram(
            "symlinkd_scan_duration_seconds", "Duration of a pass (kind: full or subtree)",
            ["kind"], buckets=_SCAN_BUCKETS, registry=registry,
        )
        self.last_scan = Gauge(
            "symlinkd_last_scan_timestamp_seconds",
            "Unix time the last pass of this kind finished without crashing",
            ["kind"], registry=registry,
        )
        self.actions = Counter(
            "symlinkd_actions",
            "Actions carried out on links (action: relink, prune; result: done, skipped, failed)",
            ["action", "result"], registry=registry,
        )
        self.unsafe_plans = Counter(
            "symlinkd_unsafe_plans",
            "Plans refused by the safety gate (reason: mount_not_ok, max_prune, max_prune_ratio, "
            "max_relink, max_relink_ratio)",
            ["reason"], registry=registry,
        )
        self.notifications = Counter(
            "symlinkd_notifications",
            "Requests to Plex, Jellyfin, Sonarr, Radarr (result: ok, failed, rejected, unmapped)",
            ["target", "result"], registry=registry,
        )
        self.build_info = Gauge(
            "symlinkd_build_info", "Always 1; the version label says which build runs",
            ["version"], registry=registry,
        )
        self.pass_errors = Counter(
            "symlinkd_pass_errors", "Passes that crashed with an unexpected error", ["kind"],
            registry=registry,
        )
        self.rename_events = Counter(
            "symlinkd_rename_events",
            "Breaker trips explained as a mass rename: the failing links were relinked, nothing "
            "under the mount pruned in that pass", ["mount"],
            registry=registry,
        )
        self.probes = Counter(
            "symlinkd_probe", "Content probe reads through a mount (result: ok, failed, "
            "timeout, skipped); a failed read under an ok mount makes the link stale",
            ["mount", "result"], registry=registry,
        )
        self.links_unverified = Gauge(
            "symlinkd_links_unverified",
            "Links not read-verified by the content probe within probe_every_days",
            ["mount"], registry=registry,
        )
        self.build_info.labels(version=__version__).set(1)

    def observe_mounts(self, mounts: Mapping[str, MountState]) -> None:
        for state in mounts.values():
            self.mount_up.labels(mount=state.name).set(1 if state.up else 0)
            for health in MountHealth:
                self.mount_state.labels(mount=state.name, state=health.value).set(
                    1 if state.health is health else 0
                )

    def observe_links(self, judgements: Iterable[Judgement], mount_names: Iterable[str]) -> None:
        """Set the per-mount verdict gauges from a full pass (every pair, zeros included, so a
        verdict that disappears drops to 0 instead of keeping its last value)."""
        self.observe_link_counts(
            _Tally((j.facts.mount, j.verdict) for j in judgements), mount_names
        )

    def observe_link_counts(self, counts: Mapping[tuple[str | None, Verdict], int],
                            mount_names: Iterable[str]) -> None:
        """``observe_links`` from the counts of a pass (links per mount and verdict)."""
        tally: _Tally[tuple[str, str]] = _Tally()
        for (mount, verdict), n in counts.items():
            tally[(mount or "none", verdict.value)] += n
        for mount in [*mount_names, "none"]:
            for verdict in Verdict:
                self.links.labels(mount=mount, verdict=verdict.value).set(
                    tally.get((mount, verdict.value), 0)
                )

    def observe_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.actions.labels(
                action=outcome.planned.action.kind.value, result=outcome.result.value
            ).inc()
