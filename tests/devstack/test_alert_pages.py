"""What the shipped rules page for, on what a detector really exports: a detector with default settings watches three
13-feature models for two hours of one-minute windows, its metrics scraped once per window, and ``promtool test rules``
evaluates the shipped rules (their own ``for``) on those scrapes:

- ``stable``: no drift at all, labels as good as the validation's: nothing fires;
- ``shifted``: half the inputs move, the error does not (input drift alone, default ``performance`` policy): warnings
  only, never a page;
- ``degraded``: the inputs hold, the error grows fivefold after 30 minutes: exactly one critical alert, the model's
  page, naming the deciding signal with its value and threshold.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.detector.conftest import Harness, feedback, inference, write_bundle

RULES = Path(__file__).resolve().parents[2] / "charts" / "mitiga" / "files" / "prometheus-rules.yaml"
FEATURES = [f"f{i}" for i in range(13)]
MINUTES = 120
DEGRADE_AT = 30
pytestmark = pytest.mark.integration


def _scrape(h: Harness) -> dict[str, float]:
    """One scrape of the detector's registry: every series by its PromQL selector."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(h.metrics.registry).decode()):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created", "_sum", "_count")):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def _rows(rng: np.random.Generator, model: str, minute: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=(100, len(FEATURES))).astype(np.float32)
    if model == "shifted":
        x[:, :7] += 1.0  # half the inputs move; the model (the sum of its inputs) is as right as before
    pred = x.sum(axis=1, keepdims=True)
    noise = 0.5 if model == "degraded" and minute >= DEGRADE_AT else 0.1
    return x, pred, pred + rng.normal(size=(100, 1)) * noise


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, float]]:
    h = Harness(tmp_path_factory.mktemp("pages"), window_size=100)  # the default window; scipy's KS = Alibi's
    for seed, model in enumerate(("stable", "shifted", "degraded")):
        write_bundle(h.store, model, seed=seed, features=FEATURES)
    rng = np.random.default_rng(7)
    out = []
    for minute in range(MINUTES):
        for model in ("stable", "shifted", "degraded"):
            x, pred, truth = _rows(rng, model, minute)
            rid = f"{model}-{minute}"
            h.core.handle(inference(x, pred, name=model, request_id=rid, features=FEATURES))
            h.core.handle(feedback([(rid, truth[:, 0].tolist())], name=model))
        out.append(_scrape(h))
    h.publisher.stop()
    return out


def _series(scrapes: list[dict[str, float]]) -> list[dict[str, str]]:
    names = sorted({k for s in scrapes for k in s})
    return [{"series": name, "values": " ".join(f"{s[name]:g}" if name in s else "_" for s in scrapes)}
            for name in names]


def _promtool(tmp_path: Path, scrapes: list[dict[str, float]], tests: list[dict]) -> subprocess.CompletedProcess:
    from mitiga_devstack.servers import _binary

    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": _series(scrapes), **t} for t in tests]}
    (tmp_path / "pages_test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run([_binary("promtool"), "test", "rules", str(tmp_path / "pages_test.yaml")],
                          capture_output=True, text=True)


def _ever(selector: str, by: str) -> str:
    """Which alerts fired at any evaluation over the replay, grouped by ``by``."""
    return f'max by ({by}) (max_over_time(ALERTS{{alertstate="firing",{selector}}}[{MINUTES + 5}m]))'


def test_the_detector_judged_the_three_streams_as_the_scenarios_say(scrapes: list[dict[str, float]]) -> None:
    """The scenarios are what they claim (else the rule tests below prove nothing)."""
    last = scrapes[-1]
    assert last['mitiga_model_level{model="stable",version="1"}'] == 0
    assert last['mitiga_model_level{model="shifted",version="1"}'] == 1
    assert last['mitiga_model_level{model="degraded",version="1"}'] == 2
    # the raw smallest p-value of 13 features is under the research's critical 0.5 in most stable windows
    stable_p = [s['mitiga_drift_metric{metric="ks_p_value",model="stable",version="1"}'] for s in scrapes]
    assert np.mean(np.asarray(stable_p) < 0.5) > 0.5


def test_a_stable_model_fires_nothing(tmp_path: Path, scrapes: list[dict[str, float]]) -> None:
    done = _promtool(tmp_path, scrapes, [{"promql_expr_test": [
        {"expr": _ever('model="stable"', "alertname"), "eval_time": f"{MINUTES}m", "exp_samples": []}]}])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_input_drift_alone_under_the_performance_policy_only_warns(tmp_path: Path,
                                                                   scrapes: list[dict[str, float]]) -> None:
    done = _promtool(tmp_path, scrapes, [{"promql_expr_test": [
        {"expr": _ever('model="shifted"', "severity"), "eval_time": f"{MINUTES}m",
         "exp_samples": [{"labels": '{severity="warning"}', "value": 1}]}]}])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_a_degraded_model_pages_once_naming_what_decided(tmp_path: Path, scrapes: list[dict[str, float]]) -> None:
    prefix = 'mitiga_model_deciding_signal{direction="above",model="degraded",severity="critical",signal="'
    deciding = sorted((k[len(prefix):].split('"')[0], k.split('threshold="')[1].split('"')[0], v)
                      for k, v in scrapes[-1].items() if k.startswith(prefix))
    assert "mae_ratio" in [signal for signal, _, _ in deciding]
    said = ", ".join(f"{signal} = {value:.4g} (>= {threshold})" for signal, threshold, value in deciding)
    critical = '(count(ALERTS{alertstate="firing",severity="critical"}) or vector(0))'
    page = '(count(ALERTS{alertname="MitigaModelCritical",alertstate="firing",model="degraded"}) or vector(0))'
    done = _promtool(tmp_path, scrapes, [{
        "promql_expr_test": [
            {"expr": _ever('severity="critical"', "alertname, model"), "eval_time": f"{MINUTES}m",
             "exp_samples": [{"labels": '{alertname="MitigaModelCritical",model="degraded"}', "value": 1}]},
            {"expr": f"max_over_time({critical}[{MINUTES}m:1m])", "eval_time": f"{MINUTES}m",
             "exp_samples": [{"value": 1}]},  # never two critical alerts at once
            # it fired once and held: every evaluation from ten minutes after the error grew found it firing
            {"expr": f"min_over_time({page}[{MINUTES - DEGRADE_AT - 10}m:1m])", "eval_time": f"{MINUTES}m",
             "exp_samples": [{"value": 1}]},
        ],
        "alert_rule_test": [{"eval_time": f"{MINUTES}m", "alertname": "MitigaModelCritical", "exp_alerts": [
            {"exp_labels": {"model": "degraded", "version": "1", "severity": "critical", "drift_type": "model"},
             "exp_annotations": {
                 "summary": f"degraded is critical: {said}",
                 "description": "Model degraded version 1 is critical under the detector's trigger policy. Deciding "
                                f"signals: {said}. A retrain is requested unless the trigger is off or the model's "
                                "retraining is paused. Console: http://mitiga-console:8090/models/degraded",
                 "runbook_url": "https://github.com/mitiga/mitiga/blob/main/docs/alerts.md#mitigamodelcritical"}}]}],
    }])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
