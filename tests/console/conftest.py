"""The console against the standalone stack (inference and detector in this process, retraining jobs too), a real
Alertmanager, and a real headless Chromium driven through Selenium."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

TOKEN = "console-admin"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mitiga_devstack.servers import AlertmanagerServer

    root = tmp_path_factory.mktemp("alertmanager")
    config = root / "alertmanager.yml"
    config.write_text("route: {receiver: nobody}\nreceivers: [{name: nobody}]\n")
    server = AlertmanagerServer(root / "data", config).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def console(reference_store: Path, alertmanager: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mitiga_console.app import create_app
    from mitiga_console.settings import ConsoleSettings
    from mitiga_core.store import FilesystemModelStore
    from mitiga_standalone.stack import StandaloneStack
    from tests.conftest import serve

    root = tmp_path_factory.mktemp("console") / "models"
    shutil.copytree(reference_store, root)
    stack = StandaloneStack(root, detector={"admin_token": TOKEN, "window_size": 50, "trigger": "alert_only"},
                            inference={"admin_token": TOKEN}, retrainer={"epochs": 2, "min_rows": 20})
    stack.start()
    deadline = time.monotonic() + 120
    while httpx.get(f"{stack.inference.url}/v2/health/ready").status_code != 200:  # the models are loaded
        assert time.monotonic() < deadline, "the inference service did not become ready"
        time.sleep(0.2)
    settings = ConsoleSettings(inference_url=stack.inference.url, detector_url=stack.detector.url,
                               alertmanager_url=alertmanager.url, model_store_path=root)
    running = serve(create_app(settings, store=FilesystemModelStore(root)))
    # a second console that reads a model's health over time from a real Prometheus scraping the detector
    prometheus = _prometheus(tmp_path_factory.mktemp("prometheus"), stack.detector.url)
    watched = serve(create_app(settings.model_copy(update={"prometheus_url": prometheus.url}),
                               store=FilesystemModelStore(root)))
    yield SimpleNamespace(url=running.url, stack=stack, store=stack.store, prometheus=prometheus,
                          watched_url=watched.url)
    watched.stop()
    prometheus.stop()
    running.stop()
    stack.stop()


def _prometheus(root: Path, detector_url: str) -> Any:
    from mitiga_devstack.servers import PrometheusServer

    config = root / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
                      f"  - job_name: detector\n    static_configs: [{{targets: ['{detector_url.split('//')[1]}']}}]\n")
    return PrometheusServer(root / "data", config).start()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromedriver are needed (make infra installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()
