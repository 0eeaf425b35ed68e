"""End to end: `streamlit run app.py` on 127.0.0.1, driven by Debian's chromium via Playwright.

The test command installs chromium (`make browser-deps`); Playwright never downloads a browser.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "tests" / "screenshots"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} missing: `make browser-deps` installs it")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not answer /_stcore/health within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def metric_value(page, label):
    metric = page.locator('[data-testid="stMetric"]', has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def test_window_slider_moved_by_keyboard_changes_the_figure(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/?page=masks&pattern=sliding+window&length=32&window=4")
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
    figure = page.locator('[data-testid="stImage"] img').first
    figure.wait_for(timeout=60_000)
    before_src, before_pairs = figure.get_attribute("src"), metric_value(page, "attended pairs")
    assert before_pairs == "122"  # 4*32 - 4*3/2

    window = page.get_by_role("slider").nth(1)  # sliders in order: length, window
    window.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stMetricValue]')]"
        ".some(e => e.innerText === '203')", timeout=30_000)  # window 7: 7*32 - 7*6/2
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=stImage] img').src !== {before_src!r}",
        timeout=30_000)
    assert "window=7" in page.url
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "masks-window-7.png"), full_page=True)
    page.close()


def test_bookmarked_scene_opens_without_errors(app_url, browser):
    page = browser.new_page()
    page.goto(f"{app_url}/?page=receptive&pattern=sliding+window&length=2048&window=128&layers=8")
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
    assert metric_value(page, "inputs reaching") == "1,017"
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()
