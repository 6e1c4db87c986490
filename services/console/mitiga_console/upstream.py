"""What the console reads and asks of the other services, over their public APIs only. A service that cannot be
reached makes its part of a page say so; it never fails the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from mitiga_console.settings import ConsoleSettings


class UpstreamError(Exception):
    """A service refused or could not be reached; ``status`` is its HTTP status (502 when unreachable)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Alert:
    name: str
    severity: str
    model: str | None
    summary: str
    labels: dict[str, str] = field(default_factory=dict)
    runbook: str = ""


@dataclass
class Series:
    """One series of a Prometheus range query: its labels and its (unix time, value) samples."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def _json(response: httpx.Response, what: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = body.get("error") if isinstance(body, dict) else None
        raise UpstreamError(f"{what}: {message or response.text[:300]}", response.status_code)
    return body


class Upstream:
    """HTTP clients for the inference service, the detector, Alertmanager and Prometheus."""

    def __init__(self, settings: ConsoleSettings) -> None:
        timeout = httpx.Timeout(settings.upstream_timeout_s, read=120.0)
        self.inference = httpx.Client(base_url=settings.inference_url, timeout=timeout)
        self.detector = httpx.Client(base_url=settings.detector_url, timeout=timeout)
        self.alertmanager = (httpx.Client(base_url=settings.alertmanager_url, timeout=timeout)
                             if settings.alertmanager_url else None)
        self.prometheus = (httpx.Client(base_url=settings.prometheus_url, timeout=timeout)
                           if settings.prometheus_url else None)
        self.health_range_s = settings.health_range_s

    def close(self) -> None:
        for client in (self.inference, self.detector, self.alertmanager, self.prometheus):
            if client is not None:
                client.close()

    def _call(self, client: httpx.Client, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            return _json(client.request(method, path, **kwargs), what)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{what}: cannot reach {client.base_url} ({exc})") from None

    # --- the detector ---
    def drift(self, model: str) -> dict[str, Any] | None:
        """The detector's state of ``model``; None when it has none."""
        try:
            return dict(self._call(self.detector, "GET", f"/v1/models/{model}/drift", "the detector"))
        except UpstreamError as exc:
            if exc.status == 404:
                return None
            raise

    def history(self, model: str) -> list[dict[str, Any]]:
        """The detector's tested windows of ``model``, oldest first (none when it has none)."""
        try:
            found = self._call(self.detector, "GET", f"/v1/models/{model}/drift/history", "the detector")
        except UpstreamError as exc:
            if exc.status == 404:
                return []
            raise
        return list(found.get("windows", []))

    def report(self, model: str) -> str:
        try:
            response = self.detector.get(f"/v1/models/{model}/drift/report")
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the detector: cannot reach {self.detector.base_url} ({exc})") from None
        if response.status_code != 200:
            _json(response, "the detector's report")
        return response.text

    def retrain(self, model: str, token: str, options: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call(self.detector, "POST", f"/v1/models/{model}/retrain", "retrain", json=options,
                               headers={"Authorization": f"Bearer {token}"}))

    def retraining(self, model: str) -> dict[str, Any] | None:
        """Whether the model's automatic retraining is paused (the circuit breaker, or an admin); None when the
        detector cannot say."""
        try:
            return dict(self._call(self.detector, "GET", f"/v1/models/{model}/retraining", "the detector"))
        except UpstreamError:
            return None

    def set_retraining(self, model: str, token: str, action: str, body: dict[str, str]) -> dict[str, Any]:
        """``action`` pause or resume the model's automatic retraining."""
        return dict(self._call(self.detector, "POST", f"/v1/models/{model}/retraining/{action}", action, json=body,
                               headers={"Authorization": f"Bearer {token}"}))

    def approval(self, model: str) -> dict[str, Any] | None:
        """The challenger waiting for approval and its evidence; None when the detector cannot say."""
        try:
            return dict(self._call(self.detector, "GET", f"/v1/models/{model}/approval", "the detector"))
        except UpstreamError:
            return None

    def decide(self, model: str, token: str, body: dict[str, str]) -> dict[str, Any]:
        return dict(self._call(self.detector, "POST", f"/v1/models/{model}/approval", "approval", json=body,
                               headers={"Authorization": f"Bearer {token}"}))

    def progress(self, request_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(self.detector, "GET", f"/v1/retrains/{request_id}", "the detector"))
        except UpstreamError as exc:
            if exc.status == 404:
                return None
            raise

    # --- the inference service ---
    def upload(self, model: str, token: str, data: bytes, params: dict[str, str]) -> dict[str, Any]:
        return dict(self._call(self.inference, "POST", f"/v2/repository/models/{model}/upload", "upload",
                               content=data, params=params, headers={"Authorization": f"Bearer {token}",
                                                                     "Content-Type": "application/octet-stream"}))

    def rollback(self, model: str, token: str, version: str) -> dict[str, Any]:
        """Make ``version`` the champion again (the inference service serves it and tells the other replicas)."""
        return dict(self._call(self.inference, "POST", f"/v2/repository/models/{model}/rollback", "rollback",
                               params={"version": version}, headers={"Authorization": f"Bearer {token}"}))

    # --- alerts: Alertmanager, or the detector's own ---
    @property
    def alerts_source(self) -> str:
        return "Alertmanager" if self.alertmanager is not None else "the detector"

    def alerts(self) -> list[Alert]:
        """Alerts firing now (not silenced or inhibited), critical first: Alertmanager's when one is configured,
        otherwise the detector's own (the same alerts, from its verdicts: ``make demo``, ``mitiga up``)."""
        if self.alertmanager is not None:
            found = self._call(self.alertmanager, "GET", "/api/v2/alerts", "Alertmanager",
                               params={"active": "true", "silenced": "false", "inhibited": "false"})
        else:
            found = (self._call(self.detector, "GET", "/v1/alerts", "detector") or {}).get("alerts", [])
        alerts = [Alert(name=a["labels"].get("alertname", "?"), severity=a["labels"].get("severity", "none"),
                        model=a["labels"].get("model"), summary=a.get("annotations", {}).get("summary", ""),
                        labels=dict(a["labels"]), runbook=a.get("annotations", {}).get("runbook_url", ""))
                   for a in found or []]
        return sorted(alerts, key=lambda a: (a.severity != "critical", a.model or "", a.name))

    # --- Prometheus ---
    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """A PromQL range query (``/api/v1/query_range``); a refused query is an :class:`UpstreamError`."""
        if self.prometheus is None:
            raise UpstreamError("no Prometheus configured (MITIGA_PROMETHEUS_URL)", 404)
        found = self._call(self.prometheus, "GET", "/api/v1/query_range", "Prometheus",
                           params={"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                   "step": f"{step:.3f}"})
        if not isinstance(found, dict) or found.get("status") != "success":
            raise UpstreamError(f"Prometheus: {query}: {found.get('error') if isinstance(found, dict) else found}")
        return [Series(dict(r.get("metric", {})), [(float(t), float(v)) for t, v in r.get("values", [])])
                for r in found["data"]["result"]]
