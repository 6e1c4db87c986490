"""The web console on the standalone stack, as ``make demo`` ends: it serves the console over the stack that ran the
replay, saves a screenshot of each page (headless Chromium, when installed) and stays up until Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mitiga_standalone.server import BackgroundServer
    from mitiga_standalone.stack import StandaloneStack

PAGES = {"models": "/", "model-lstm": "/models/lstm",
         "forecast": "/forecast?model=lstm&series=amzn&start=2016-01-01&end=2017-12-31", "alerts": "/alerts"}


def _free(port: int) -> int:
    """``port`` when nothing listens on it, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def screenshots(url: str, folder: Path) -> list[Path] | str:
    """A PNG of each console page under ``folder``; or why there are none."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        return "no screenshots: chromium and chromedriver are not installed (`make infra` installs them)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1100", "--hide-scrollbars"):
        options.add_argument(flag)
    folder.mkdir(parents=True, exist_ok=True)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    saved = []
    try:
        browser.set_page_load_timeout(120)
        for name, path in PAGES.items():
            browser.get(url + path)
            target = folder / f"{name}.png"
            browser.save_screenshot(str(target))
            saved.append(target)
    finally:
        browser.quit()
    return saved


def start_console(stack: StandaloneStack, port: int) -> BackgroundServer:
    """The console over ``stack``, on ``port`` (any free port when that one is taken)."""
    from mitiga_console.app import create_app
    from mitiga_console.settings import ConsoleSettings
    from mitiga_standalone.server import BackgroundServer

    settings = ConsoleSettings(inference_url=stack.inference.url, detector_url=stack.detector.url,
                               model_store_path=stack.store.root, log_level="WARNING")
    server = BackgroundServer(create_app(settings, store=stack.store), port=_free(port))
    server.start()
    return server


class ConsoleOnStack:
    def __init__(self, port: int, shots: Path) -> None:
        self.port = port
        self.shots = shots

    def serve_until_interrupted(self, out: Any, stack: StandaloneStack) -> None:
        """Serve the console over ``stack`` until SIGINT or SIGTERM; ``out`` is a rich Console."""
        server = start_console(stack, self.port)
        try:
            shots = screenshots(server.url, self.shots)
            out.print(shots if isinstance(shots, str) else f"console screenshots in {self.shots}/")
            stop = threading.Event()
            previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
            out.print(f"[bold]The console: {server.url}[/bold] (models, health, forecasts, retraining); Ctrl-C ends "
                      "the demo.")
            try:
                stop.wait()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        finally:
            server.stop()
