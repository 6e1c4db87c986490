"""The console in a real browser: every page loads without a browser error; the forecast's chart carries the
predictions the model gives in this process; an upload from the file picker becomes the champion; a retrain
started from a model's page is followed to the gate's decision; a critical alert in Alertmanager puts a banner on
every page that links to retraining; admin actions need the token, which never appears in a page or a URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import bundle_zip, wait_for
from tests.console.conftest import TOKEN

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HERE = Path(__file__).parent


def _open(browser: Any, url: str, status: int = 200) -> None:
    """Load a page; the browser logs no error, but the page's own status when it is an expected error page."""
    browser.get(url)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and not (status != 200 and e["message"].startswith(f"{url} - ") and f"status of {status}" in e["message"])]
    assert errors == [], errors


def _text(browser: Any, css: str) -> str:
    """The element's text; "" while the page is replacing it (the progress page re-renders as it follows)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(browser.find_element(By.CSS_SELECTOR, css).text)
    except StaleElementReferenceException:
        return ""


def _wait(what: str, check: Any, timeout_s: float = 120, browser: Any = None) -> Any:
    shown = (lambda: f"at {browser.current_url}: {browser.page_source[-3000:]}") if browser is not None else None
    return wait_for(check, timeout_s, what, explain=shown)


def _sign_in(browser: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, f"{base}/login")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    _wait("signed in", lambda: "sign out" in browser.page_source)
    assert TOKEN not in browser.page_source and TOKEN not in browser.current_url
    cookie = browser.get_cookie("mitiga_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "expiry" not in cookie  # a session cookie
    assert browser.execute_script("return document.cookie") == ""  # no script can read it


def test_models_and_a_model_page(console, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    _open(browser, console.url)
    rows = {r.find_elements(By.TAG_NAME, "td")[0].text: [c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "#models tbody tr")}
    assert set(rows) == {"lstm", "air"} and rows["lstm"][2] == console.store.champion("lstm")
    browser.find_element(By.LINK_TEXT, "lstm").click()
    assert browser.current_url.endswith("/models/lstm")
    versions = browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
    assert len(versions) == len(console.store.list_versions("lstm")) and "champion" in versions[0].text
    assert "No window tested yet" in _text(browser, "#health")
    _open(browser, f"{console.url}/models/nope", 404)
    assert "not found" in browser.page_source


def test_a_forecast_chart_carries_the_models_own_predictions(console, browser) -> None:  # type: ignore[no-untyped-def]
    from mitiga_research.datasets import load_prices, sliding_windows
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from mitiga_inference.runtime import CompiledModel

    _open(browser, f"{console.url}/forecast")
    Select(browser.find_element(By.NAME, "model")).select_by_value("lstm")
    browser.find_element(By.NAME, "start").send_keys("01012004")  # a date input, typed as a user would
    browser.find_element(By.NAME, "end").send_keys("03312004")
    browser.find_element(By.CSS_SELECTOR, "#forecast-form button").click()
    _wait("the chart", lambda: browser.find_elements(By.ID, "forecast"), browser=browser)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    data = json.loads(browser.find_element(By.ID, "forecast-data").get_attribute("textContent"))
    prices = load_prices("amzn")["open"]
    x, y = sliding_windows(prices.to_numpy(np.float32), 50)
    dates = prices.index[50:]
    mask = (dates >= "2004-01-01") & (dates <= "2004-03-31")
    store = console.store
    local = CompiledModel(store.path("lstm", store.champion("lstm")))(x[mask])[:, 0]
    assert data["dates"] == [d.date().isoformat() for d in dates[mask]]
    np.testing.assert_allclose(data["actual"], y[mask], rtol=1e-6)
    np.testing.assert_allclose(data["forecast (lstm)"], local, rtol=1e-4)
    assert float(_text(browser, "#mae")) == pytest.approx(float(np.mean(np.abs(local - y[mask]))), rel=1e-3)


def test_upload_needs_the_token_and_then_serves_the_model(console, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    subprocess.run([sys.executable, str(HERE.parent / "inference" / "make_plain_model.py"), str(tmp_path)],
                   check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    browser.delete_all_cookies()

    def upload() -> None:
        _open(browser, f"{console.url}/upload")
        browser.find_element(By.NAME, "file").send_keys(str(tmp_path / "plain.keras"))
        browser.find_element(By.NAME, "name").send_keys("plain")
        Select(browser.find_element(By.NAME, "task")).select_by_value("regression")
        browser.find_element(By.NAME, "features").send_keys("a,b,c")
        browser.find_element(By.CSS_SELECTOR, "#upload-form button").click()

    upload()
    _wait("the refusal", lambda: "sign in with the admin token first" in browser.page_source, browser=browser)
    refused = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert len(refused) == 1 and "status of 401" in refused[0], refused  # the answer, and nothing else
    assert console.store.list_versions("plain") == []
    _sign_in(browser, console.url)
    upload()
    _wait("the model's page", lambda: "/models/plain" in browser.current_url, browser=browser)
    assert console.store.champion("plain") == "1"
    with np.load(tmp_path / "expected.npz") as expected:
        x, y = expected["x"], expected["y"]
    body = {"inputs": [{"name": "features", "shape": [5, 3], "datatype": "FP32", "data": x.tolist()}]}
    served = httpx.post(f"{console.stack.inference.url}/v2/models/plain/infer", json=body).json()
    np.testing.assert_allclose(served["outputs"][0]["data"], y.reshape(-1), rtol=1e-5, atol=1e-6)


def test_a_classifier_uploads_from_the_console_with_its_classes(console, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    subprocess.run([sys.executable, str(HERE.parent / "inference" / "make_plain_model.py"), str(tmp_path)],
                   check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    _sign_in(browser, console.url)
    _open(browser, f"{console.url}/upload")
    browser.find_element(By.NAME, "file").send_keys(str(tmp_path / "classifier.keras"))
    browser.find_element(By.NAME, "name").send_keys("quality")
    browser.find_element(By.NAME, "classes").send_keys("low,mid,high")  # the task: from the softmax layer
    browser.find_element(By.CSS_SELECTOR, "#upload-form button").click()
    _wait("the model's page", lambda: "/models/quality" in browser.current_url, browser=browser)
    with np.load(tmp_path / "expected-classifier.npz") as expected:
        x, y = expected["x"], expected["y"]
    body = {"inputs": [{"name": "features", "shape": [5, 3], "datatype": "FP32", "data": x.tolist()}]}
    served = {o["name"]: o for o in httpx.post(f"{console.stack.inference.url}/v2/models/quality/infer",
                                               json=body).json()["outputs"]}
    np.testing.assert_allclose(np.asarray(served["probabilities"]["data"]).reshape(5, 3), y, rtol=1e-5, atol=1e-6)
    assert served["label"]["data"] == [["low", "mid", "high"][i] for i in y.argmax(axis=1)]


def test_a_retrain_started_in_the_console_is_followed_to_the_gates_decision(console, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.devstack.conftest import Traffic, windows

    traffic = Traffic(console.stack.inference.url)  # a client with ground truth, as in production
    x, y = windows("2012-01-01", "2012-07-01")
    for lo in range(0, 120, 20):
        served = traffic.infer(x[lo:lo + 20])
        assert served is not None, traffic.failures
        traffic.feedback(served["id"], y[lo:lo + 20])
    traffic.close()
    console.stack.wait_processed("FeedbackEvent", 6)
    if not browser.get_cookie("mitiga_admin"):
        _sign_in(browser, console.url)
    _open(browser, f"{console.url}/models/lstm")
    assert "Level" in _text(browser, "#health")  # the detector's windows are shown now
    Select(browser.find_element(By.NAME, "strategy")).select_by_value("sliding_window")
    browser.find_element(By.NAME, "epochs").send_keys("2")
    browser.find_element(By.CSS_SELECTOR, "#retrain-form button").click()
    _wait("the progress page", lambda: "/retrains/" in browser.current_url, browser=browser)
    # the gate's own record says what the page must come to show
    decision = _wait("the gate's decision", lambda: next(
        (d for d in reversed(console.store.decisions("lstm")) if d.get("trigger") == "manual"), None), 300)
    expected = "promoted" if decision["promote"] else "refused"
    _wait(f"the page to show {expected}", lambda: _text(browser, "#status") == expected, 60, browser)
    assert decision["trigger"] == "manual" and decision["strategy"] == "sliding_window"
    assert _text(browser, "#reason") == decision["reason"]
    assert browser.find_element(By.ID, "epochs").get_attribute("value") == "2"
    _open(browser, f"{console.url}/models/lstm")
    assert decision["reason"] in _text(browser, "#decisions")
    # the windows over time: one point per window the detector tested, and the new version marked once it judges
    history = httpx.get(f"{console.stack.detector.url}/v1/models/lstm/drift/history").json()["windows"]
    plotted = json.loads(browser.find_element(By.ID, "p-values-data").get_attribute("textContent"))
    lines = [k for k in plotted if k.startswith("p ")]  # a p-value line per feature
    assert lines and all(len(plotted[k]) == len(history) for k in lines) and len(history) >= 2
    distances = _plotted(browser, "distances")
    assert [distances[f"PSI {k[2:]}"] for k in lines] == [[w["psi"][k[2:]] for w in history] for k in lines]
    assert plotted["marks"] == []
    if decision["promote"]:
        traffic = Traffic(console.stack.inference.url)
        _wait("the new version to serve", lambda: traffic.version() == str(decision["version"]))
        later, _ = windows("2012-07-01", "2012-10-01")
        for lo in range(0, 60, 20):  # requests the new version serves, and the detector judges
            served = traffic.infer(later[lo:lo + 20])
            assert served is not None and served["model_version"] == str(decision["version"]), traffic.failures
        traffic.close()
        console.stack.wait_processed("InferenceEvent", 9)
        _wait("a window of the new version", lambda: any(
            w["version"] == str(decision["version"]) for w in httpx.get(
                f"{console.stack.detector.url}/v1/models/lstm/drift/history").json()["windows"]))
        _open(browser, f"{console.url}/models/lstm")
        plotted = json.loads(browser.find_element(By.ID, "p-values-data").get_attribute("textContent"))
        assert plotted["marks"] == [len(history)] and browser.find_elements(By.ID, "version-changes")  # one change


def _stream(stack: Any, start: str, end: str, rows: int) -> str:
    """Requests with their ground truth, as a client in production sends them, until the detector has processed
    them all; the version that answered."""
    from tests.devstack.conftest import Traffic, windows

    seen = {kind: stack.processed(kind) for kind in ("InferenceEvent", "FeedbackEvent")}
    traffic = Traffic(stack.inference.url)
    x, y = windows(start, end)
    version = ""
    for lo in range(0, rows, 25):
        served = traffic.infer(x[lo:lo + 25])
        assert served is not None, traffic.failures
        traffic.feedback(served["id"], y[lo:lo + 25])
        version = served["model_version"]
    traffic.close()
    for kind, count in seen.items():
        stack.wait_processed(kind, count + len(range(0, rows, 25)), 120)
    return version


def _plotted(browser: Any, chart: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    return dict(json.loads(browser.find_element(By.ID, f"{chart}-data").get_attribute("textContent")))


def _last(line: list[float | None]) -> float:
    return float(next(v for v in reversed(line) if v is not None))


def test_health_over_time_from_prometheus_then_a_rollback_from_the_console(console, browser) -> None:  # type: ignore[no-untyped-def]
    """The console given Prometheus draws a model's p-values and MAE from it, with the new version's first window
    marked; then an admin makes the earlier version the champion again from the model's page, and it serves."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.devstack.conftest import Traffic

    stack, store = console.stack, console.store
    prometheus = console.prometheus.url

    def scraped(query: str) -> list[dict[str, Any]]:
        found = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}).json()["data"]["result"]
        return list(found)

    before = _stream(stack, "2013-01-01", "2013-07-01", 100)
    # a version change shows where Prometheus saw it: the first version's windows are scraped before the next
    # version's begin (on a busy machine both could otherwise land in one scrape, with no change to mark)
    _wait("Prometheus to scrape the first version's windows", lambda: bool(scraped(
        f'mitiga_drift_window_rows{{model="lstm",version="{before}"}}')))
    uploaded = httpx.post(f"{stack.inference.url}/v2/repository/models/lstm/upload",
                          content=bundle_zip(store.path("lstm", before)),
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert uploaded.status_code == 201, uploaded.text
    after = uploaded.json()["version"]
    assert _stream(stack, "2013-07-01", "2014-01-01", 100) == after
    judged = time.time()  # every window of the new version is tested and its MAE measured
    _wait("Prometheus to scrape the detector after the new version was judged", lambda: any(
        float(r["value"][1]) > judged for r in scraped(f'timestamp(mitiga_drift_window_rows{{model="lstm",'
                                                        f'version="{after}"}})')))
    _open(browser, f"{console.watched_url}/models/lstm")
    assert _text(browser, "#health-source").startswith("From Prometheus")
    p_values = _plotted(browser, "p-values")
    now = {r["metric"]["feature"]: float(r["value"][1])
           for r in scraped('min by (feature) (mitiga_drift_p_value{model="lstm"})')}
    assert now and {k[2:]: _last(v) for k, v in p_values.items() if k.startswith("p ")} == pytest.approx(now)
    assert len(p_values["marks"]) >= 1 and max(p_values["marks"]) > 0  # where the uploaded version's windows begin
    psi = {r["metric"]["feature"]: float(r["value"][1])
           for r in scraped('max by (feature) (mitiga_drift_psi{model="lstm"})')}
    assert {k[4:]: _last(v) for k, v in _plotted(browser, "distances").items() if k.startswith("PSI ")} == \
        pytest.approx(psi)
    levels = _plotted(browser, "levels")  # a line per drift type, at the level the detector's gauge held
    kinds = {r["metric"]["drift_type"]: float(r["value"][1])
             for r in scraped('max by (drift_type) (mitiga_drift_level{model="lstm"})')}
    assert kinds and {k: _last(levels[k]) for k in kinds} == kinds
    mae = float(scraped('max(mitiga_model_performance{model="lstm",metric="mae"})')[0]["value"][1])
    assert _last(_plotted(browser, "errors")["MAE"]) == pytest.approx(mae)
    # the detector-history console still draws from the detector
    _open(browser, f"{console.url}/models/lstm")
    assert _text(browser, "#health-source").startswith("From the detector")
    # rollback: the admin's choice serves at once
    if not browser.get_cookie("mitiga_admin"):
        _sign_in(browser, console.url)
    _open(browser, f"{console.url}/models/lstm")
    Select(browser.find_element(By.CSS_SELECTOR, "#champion-form select")).select_by_value(before)
    browser.find_element(By.CSS_SELECTOR, "#champion-form button").click()
    _wait("the model page again", lambda: browser.current_url.endswith(f"?champion={before}"), browser=browser)
    assert store.champion("lstm") == before
    assert "champion" in next(r.text for r in browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
                              if r.text.startswith(before))
    assert "rollback" in _text(browser, "#decisions")
    traffic = Traffic(stack.inference.url)
    assert traffic.version() == before  # the inference service serves it
    traffic.close()


def test_a_critical_alert_puts_a_banner_that_links_to_retraining(console, alertmanager, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    _open(browser, f"{console.url}/alerts")
    assert browser.find_elements(By.ID, "no-alerts") and not browser.find_elements(By.ID, "critical-banner")
    alert = {"labels": {"alertname": "MitigaMaeCritical", "severity": "critical", "model": "lstm"},
             "annotations": {"summary": "MAE above the critical level"}}  # as Prometheus posts it
    httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[alert]).raise_for_status()
    _open(browser, f"{console.url}/alerts")
    assert "MitigaMaeCritical" in _text(browser, "#alerts") and "MAE above" in _text(browser, "#alerts")
    _open(browser, f"{console.url}/forecast")  # the banner is on every page
    browser.find_element(By.CSS_SELECTOR, "#critical-banner a").click()
    assert browser.current_url.endswith("/models/lstm#retrain")
    assert browser.find_element(By.ID, "retrain-form").is_displayed()


def test_the_demo_leaves_the_console_up_with_screenshots_until_interrupted(console, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`make demo`'s ending: the console over the stack that ran the replay, a screenshot of each page, and the
    console up (answering) until Ctrl-C."""
    import os
    import signal
    import threading

    from rich.console import Console

    from mitiga_standalone.console import PAGES, ConsoleOnStack

    shots = tmp_path / "console"
    printed = Console(record=True, width=200)
    answered: list[int] = []

    def user() -> None:  # waits for the URL, opens it, then presses Ctrl-C
        deadline = time.monotonic() + 240
        while "The console: " not in printed.export_text(clear=False) and time.monotonic() < deadline:
            time.sleep(0.2)
        url = printed.export_text(clear=False).split("The console: ")[1].split()[0]
        answered.append(httpx.get(url, timeout=30).status_code)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=user, daemon=True)
    thread.start()
    ConsoleOnStack(0, shots).serve_until_interrupted(printed, console.stack)
    thread.join(10)
    assert answered == [200]
    for name in PAGES:
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (shots / f"{name}.png").stat().st_size > 10_000  # a rendered page, not a blank one
