"""``/metrics`` written by mitiga_core.exposition is prometheus_client's own text, byte for byte."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from mitiga_core.exposition import Exposition


class Custom:
    def collect(self):
        family = GaugeMetricFamily("mitiga_custom", "A custom collector.", labels=["k"])
        family.add_metric(["a"], 1.5)
        yield family


def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    g = Gauge("mitiga_drift_p_value", "Per-feature p-value.\nSecond line with a \\ backslash.",
              ["model", "version", "feature"], registry=r)
    g.labels("m0", "1", "b").set(0.25)
    g.labels("m0", "1", "a").set(1e-12)
    g.labels('we"ird\nname\\', "2", "é").set(math.nan)
    g.labels("m1", "1", "z").set(math.inf)
    g.labels("m1", "1", "y").set(-math.inf)
    g.labels("m1", "1", "x").set(3)
    Gauge("mitiga_empty", "A labelled gauge with no series yet.", ["model"], registry=r)
    Gauge("mitiga_plain", "An unlabelled gauge.", registry=r).set(7)
    c = Counter("mitiga_events", "Events.", ["type"], registry=r)
    c.labels("inference").inc(3)
    Histogram("mitiga_seconds", "Time.", ["stage"], buckets=(0.1, 1), registry=r).labels("build").observe(0.3)
    # label names given out of order: the text sorts them
    Gauge("mitiga_threshold", "Levels.", ["model", "metric", "severity", "direction"], registry=r).labels(
        "m0", "mae", "critical", "above").set(0.5)
    r.register(Custom())
    return r


def test_the_text_is_prometheus_clients() -> None:
    r = registry()
    exposition = Exposition(r)
    assert exposition.render() == generate_latest(r)
    assert exposition.render() == generate_latest(r)  # from the kept series' prefixes


def test_series_that_come_and_go_and_values_that_change() -> None:
    r = registry()
    exposition = Exposition(r)
    exposition.render()
    gauge = r._names_to_collectors["mitiga_drift_p_value"]
    gauge.labels("m0", "1", "b").set(0.75)
    gauge.remove("m1", "1", "z")
    gauge.labels("m2", "1", "q").set(2)
    text = exposition.render()
    assert text == generate_latest(r)
    assert b'feature="z"' not in text and b'mitiga_drift_p_value{feature="q",model="m2",version="1"} 2.0' in text
    assert b'mitiga_drift_p_value{feature="b",model="m0",version="1"} 0.75' in text
