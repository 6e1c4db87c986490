"""``/metrics`` in Prometheus' text format, the bytes ``prometheus_client.generate_latest`` writes, faster for the
labelled gauges that grow with the models.

``generate_latest`` builds a sample object per series, then sorts and escapes its labels and checks its name on every
scrape: about 9 µs a series on this machine, so a detector replica holding 1,000 models (97,000 series) spent about a
second of its one interpreter per scrape (docs/benchmarks.md, P8). A series' name and labels do not change between
scrapes: :class:`Exposition` writes each labelled gauge series' ``name{labels} `` once, keeps it while the series
lives, and per scrape only reads the value. Every other collector (counters, histograms, unlabelled gauges, custom
collectors) is written by ``generate_latest`` itself. ``tests/core/test_exposition.py`` holds the output to
``generate_latest``'s, byte for byte; it reads prometheus_client's registry and gauges from inside (their
collectors and children), which that test would catch changing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector


Key = tuple[str, Any]
"""A series: its metric's name and its label values."""


class _One:
    """One collector, as a registry ``generate_latest`` can write."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def collect(self) -> Any:
        return self._collector.collect()


def _label_name(name: str) -> str:
    return openmetrics.escape_label_name(name, openmetrics.UNDERSCORES)


def _label_value(value: str) -> str:
    """As generate_latest escapes a label value: backslash, newline, double quote."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _labelled_gauge(collector: object) -> bool:
    return type(collector) is Gauge and bool(collector._labelnames)


class Exposition:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._prefixes: dict[Key, str] = {}
        self._lock = threading.Lock()  # scrapes may overlap; the cache is swapped whole

    def render(self) -> bytes:
        with self._registry._lock:
            collectors = list(self._registry._collector_to_names)
        with self._lock:
            known, fresh = self._prefixes, {}  # type: dict[Key, str], dict[Key, str]
            out: list[str] = []
            for collector in collectors:
                if _labelled_gauge(collector):
                    self._gauge(collector, known, fresh, out)  # type: ignore[arg-type]
                else:
                    out.append(generate_latest(_One(collector)).decode())
            self._prefixes = fresh  # series removed since the last scrape are forgotten
        return "".join(out).encode()

    @staticmethod
    def _gauge(gauge: Gauge, known: dict[Key, str], fresh: dict[Key, str], out: list[str]) -> None:
        name = openmetrics.escape_metric_name(gauge._name, openmetrics.UNDERSCORES)
        documentation = gauge._documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {documentation}\n# TYPE {name} gauge\n")
        with gauge._lock:
            children = gauge._metrics.copy()
        names = gauge._labelnames
        child: Any
        for values, child in children.items():
            key = (name, values)
            prefix = known.get(key)
            if prefix is None:
                labels = ",".join(f'{_label_name(k)}="{_label_value(v)}"'
                                  for k, v in sorted(zip(names, values, strict=True)))
                prefix = f"{name}{{{labels}}} "
            fresh[key] = prefix
            out.append(f"{prefix}{floatToGoString(child._value.get())}\n")
