"""Runs retrainer jobs as Kubernetes Jobs (the official ``kubernetes`` client).

The Job comes from a template (the chart's ConfigMap, mounted as a file): the launcher sets its name (deterministic
per drift episode, so a repeated trigger finds the existing Job and makes no second), adds the spec's labels to the
Job and its pod, and puts the spec's arguments on the first container. A variable of the spec's environment that the
template's container reads from a pod annotation (``valueFrom.fieldRef`` on ``metadata.annotations['…']``) goes into
that annotation, so the pod's spec stays the template's to the letter (what the chart's admission policy checks);
any other is added to the container's environment. ``backoffLimit``, ``activeDeadlineSeconds`` and
``ttlSecondsAfterFinished`` are taken from the template or set here.

Calls the API server could not answer (5xx, 429, connection errors) are retried with exponential backoff. A 401 or
403 that follows a connection failure is retried too, for at most ``auth_settle_s``: a kube-apiserver that has just
(re)started opens its port before its authorisation caches are synced, and denies requests until they are. A 401 or
403 from a server that was answering all along is final at once. Responses are read as plain JSON, never
deserialised into the client's models.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from mitiga_core.jobs.base import JobLauncher, JobSpec, JobState

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

log = logging.getLogger(__name__)
T = TypeVar("T")
COMPONENT_SELECTOR = "app.kubernetes.io/component=retrainer"


ANNOTATION_FIELD = re.compile(r"metadata\.annotations\['([^']+)'\]")


def annotated_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables read from a pod annotation: name -> annotation."""
    found = {}
    for var in container.get("env") or []:
        path = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        match = ANNOTATION_FIELD.fullmatch(path)
        if match:
            found[var["name"]] = match.group(1)
    return found


def job_state(job: dict[str, Any]) -> JobState:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True":
            if condition.get("type") == "Complete":
                return JobState.SUCCEEDED
            if condition.get("type") == "Failed":
                return JobState.FAILED
    return JobState.RUNNING if status.get("active") or status.get("ready") else JobState.PENDING


class KubernetesJobLauncher(JobLauncher):
    def __init__(self, template: Path | dict[str, Any], namespace: str, api_client: Any = None, *,
                 backoff_limit: int | None = None, active_deadline_s: int | None = None,
                 ttl_after_finished_s: int | None = None, retries: int = 6, max_backoff_s: float = 10.0,
                 auth_settle_s: float = 30.0) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self._batch: Any = client.BatchV1Api(api_client)  # raw JSON in and out (see the module docstring)
        self._template = template if isinstance(template, dict) else yaml.safe_load(template.read_text())
        if self._template.get("kind") != "Job":
            raise ValueError("the job template must be a batch/v1 Job")
        self._namespace = namespace
        self._overrides = {"backoffLimit": backoff_limit, "activeDeadlineSeconds": active_deadline_s,
                           "ttlSecondsAfterFinished": ttl_after_finished_s}
        self._retries = retries
        self._max_backoff_s = max_backoff_s
        self._auth_settle_s = auth_settle_s
        self._stop = threading.Event()

    # --- API calls with retries ---
    def _call(self, what: str, op: Callable[[], T]) -> T:
        from kubernetes.client import ApiException
        from urllib3.exceptions import HTTPError

        pause = 0.2
        attempt = 0
        unreachable_since: float | None = None  # when the API server last failed to answer at all
        while True:
            try:
                return op()
            except ApiException as exc:
                settling = (exc.status in (401, 403) and unreachable_since is not None
                            and time.monotonic() - unreachable_since < self._auth_settle_s)
                if settling:  # a restarted API server, its authorisation caches not synced yet
                    attempt -= 1
                elif exc.status not in (429, 500, 502, 503, 504) or attempt >= self._retries:
                    raise
                reason = f"{exc.status} {exc.reason}"
            except HTTPError as exc:
                if attempt >= self._retries:
                    raise
                unreachable_since = time.monotonic()
                reason = f"{type(exc).__name__}: {exc}"
            attempt += 1
            log.warning("kubernetes API call failed; retrying", extra={"call": what, "reason": reason,
                                                                       "retry_in_s": pause})
            time.sleep(pause)
            pause = min(pause * 2, self._max_backoff_s)

    def _read(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client import ApiException

        try:
            response = self._call("read job", lambda: self._batch.read_namespaced_job(
                name, self._namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(json.loads(response.data))

    # --- the launcher ---
    def render(self, spec: JobSpec) -> dict[str, Any]:
        job = copy.deepcopy(self._template)
        meta = job.setdefault("metadata", {})
        meta["name"] = spec.name
        meta.pop("namespace", None)
        meta["labels"] = {**(meta.get("labels") or {}), **spec.labels}
        body = job.setdefault("spec", {})
        for key, value in self._overrides.items():
            if value is not None:
                body[key] = value
        pod = body.setdefault("template", {})
        pod_meta = pod.setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **spec.labels}
        container = pod["spec"]["containers"][0]
        container["args"] = list(spec.args)
        from_annotations = annotated_env(container)
        annotations = {from_annotations[k]: v for k, v in spec.env.items() if k in from_annotations}
        if annotations:
            pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **annotations}
        literal = [{"name": k, "value": v} for k, v in spec.env.items() if k not in from_annotations]
        if literal:
            container["env"] = [*(container.get("env") or []), *literal]
        return dict(job)

    def launch(self, spec: JobSpec) -> bool:
        from kubernetes.client import ApiException

        job = self.render(spec)
        try:
            self._call("create job", lambda: self._batch.create_namespaced_job(
                self._namespace, job, _preload_content=False))
        except ApiException as exc:
            if exc.status == 409:  # the Job of this episode exists: nothing new is started
                log.info("job exists", extra={"job": spec.name})
                return False
            raise
        log.info("job created", extra={"job": spec.name, "namespace": self._namespace, "labels": spec.labels})
        return True

    def state(self, name: str) -> JobState:
        job = self._read(name)
        if job is None:
            raise KeyError(name)
        return job_state(job)

    def wait(self, name: str, timeout_s: float) -> JobState:
        from kubernetes import watch

        deadline = time.monotonic() + timeout_s
        state = self.state(name)
        while not state.finished and time.monotonic() < deadline:
            stream = watch.Watch()
            try:
                for event in stream.stream(self._batch.list_namespaced_job, self._namespace,
                                           field_selector=f"metadata.name={name}",
                                           timeout_seconds=max(1, int(deadline - time.monotonic()))):
                    raw = event["raw_object"]
                    state = job_state(raw)
                    if state.finished:
                        break
            except Exception:  # a dropped watch: read the state and watch again
                log.warning("job watch interrupted", extra={"job": name}, exc_info=True)
                time.sleep(0.5)
            finally:
                stream.stop()
            state = self.state(name)
        return state

    def follow(self, on_finished: Callable[[dict[str, str], str, JobState], None],
               selector: str = COMPONENT_SELECTOR) -> threading.Thread | None:
        """Watch retrainer Jobs in a thread and call ``on_finished(labels, name, state)`` once per Job that
        completes or fails (for metrics and events)."""
        from kubernetes import watch

        seen: set[str] = set()
        since = time.time() - 5  # Jobs that finished before this follower started were counted by its predecessor

        def finished_at(raw: dict[str, Any]) -> float:
            for condition in (raw.get("status") or {}).get("conditions") or []:
                if condition.get("type") in ("Complete", "Failed") and condition.get("lastTransitionTime"):
                    return datetime.fromisoformat(condition["lastTransitionTime"].replace("Z", "+00:00")).timestamp()
            return time.time()

        def run() -> None:
            while not self._stop.is_set():
                stream = watch.Watch()
                try:
                    for event in stream.stream(self._batch.list_namespaced_job, self._namespace,
                                               label_selector=selector, timeout_seconds=60):
                        raw = event["raw_object"]
                        name, state = raw["metadata"]["name"], job_state(raw)
                        if state.finished and name not in seen:
                            seen.add(name)
                            if finished_at(raw) >= since:
                                on_finished(raw["metadata"].get("labels") or {}, name, state)
                        if self._stop.is_set():
                            break
                except Exception:
                    log.warning("job follow interrupted", exc_info=True)
                    self._stop.wait(1.0)
                finally:
                    stream.stop()

        thread = threading.Thread(target=run, name="job-follower", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
