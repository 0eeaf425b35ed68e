"""The app in a real browser: how long a slider key press takes to show the new figure, and how
long the page takes to settle after a held key (`python -m lcviz.bench app --browser`).

`streamlit run app.py` serves on 127.0.0.1 (the project's .streamlit/config.toml), Debian's
chromium (never a downloaded one) is driven through Playwright, and every time is read from the
page's own clock (performance.now()):

- key to figure: from the keydown of ArrowRight on a focused slider to the first animation frame
  in which every figure of the page shows the new view (an image loaded with its new source, a
  plotly chart drawn from new data); the page's script has finished by then. When one rerun
  changes several figures, the last of them counts.
- settle: ArrowRight is pressed every 33 ms for one second (a keyboard's auto-repeat), then
  released; settle is the time from the release until the page is idle with its final figure
  (no rerun running, nothing changing for 1.5 s). The final figure is then compared with the
  same URL opened in a fresh tab: a stale figure left by a dropped rerun would show up there
  (compared for up to 15 s, as a busy machine can mount a chart late in either tab).
"""

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1920, "height": 1080}

# page -> (URL parameters it opens with, the slider pressed, keys pressed one at a time). Each
# key press leads to a view not seen before, except on the transformer page (4 heads: the
# presses go right and back, so revisited heads come from the cache). A page of the course
# table without an entry here is measured on its first slider from its defaults.
SCENARIOS = {
    "transformer": ({"layer": 1, "head": 0}, "head", ["ArrowRight"] * 3 + ["ArrowLeft"] * 3
                    + ["ArrowRight"] * 2),
    "masks": ({"pattern": "sliding window", "length": 4096, "window": 256}, "window",
              ["ArrowRight"] * 8),
    "receptive": ({"pattern": "sliding window", "length": 256, "window": 8, "layers": 4}, "window",
                  ["ArrowRight"] * 8),
    "memory": ({"length": 4096, "window": 256}, "window", ["ArrowRight"] * 8),
    "rope": ({"method": "yarn", "factor": 4.0, "original": 2048}, "factor", ["ArrowRight"] * 8),
    "passkey": ({"length": 128, "depth": 50, "seed": 0}, "seed", ["ArrowRight"] * 8),
    "beacons": ({"length": 64, "chunk": 16, "ratio": 4}, "length", ["ArrowRight"] * 8),  # the
    # mask is drawn up to 128 tokens: longer lengths change no figure
    "recurrent": ({"dk": 8}, "dk", ["ArrowRight"] * 4),  # the first slider moves no figure
    "longcontext": ({"task": "needle in a haystack", "at_needle": 128}, "at_needle",
                    ["ArrowRight"] * 3),
}

# Installed once per page: an animation-frame loop that records when the figures change and when
# the script starts and stops, plus key listeners. Figures are told apart by identity (a new image
# source that has loaded, a plotly chart given new data), which costs nothing per frame.
MONITOR_JS = """() => {
  if (window.__lcviz) return;
  const log = window.__lcviz = {changes: [], states: [], keydown: [], keyup: []};
  const ids = new WeakMap(); let next = 1;
  const ident = o => { if (!o) return 0; if (!ids.has(o)) ids.set(o, next++); return ids.get(o); };
  const signature = () => {
    const main = document.querySelector('[data-testid="stMain"]') || document.body;
    const parts = [];
    for (const img of main.querySelectorAll('[data-testid="stImage"] img')) {
      if (!img.complete || !img.naturalWidth) return null;   // still loading: not shown yet
      parts.push(img.src);
    }
    for (const gd of main.querySelectorAll('.js-plotly-plot')) {
      if (!gd._fullLayout) return null;                      // not drawn yet
      parts.push('plotly' + ident(gd) + ':' + ident(gd.data) + ':' + ident(gd.layout));
    }
    return parts.join('|');
  };
  const scriptState = () => {
    const app = document.querySelector('[data-test-script-state]');
    return app ? app.getAttribute('data-test-script-state') : null;
  };
  let last = signature(), lastState = scriptState();
  const tick = () => {
    const now = performance.now(), s = signature(), state = scriptState();
    if (s !== null && s !== last) { last = s; log.changes.push(now); }
    if (state !== lastState) { lastState = state; log.states.push([now, state]); }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  window.addEventListener('keydown', () => log.keydown.push(performance.now()), true);
  window.addEventListener('keyup', () => log.keyup.push(performance.now()), true);
}"""

# A content fingerprint of the page's figures (for the stale-figure check, once per page).
CONTENT_JS = """() => {
  const hash = s => { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h; };
  const replacer = (key, value) => {
    if (key === 'uid') return undefined;
    if (ArrayBuffer.isView(value)) {
      let h = value.length; for (let i = 0; i < value.length; i++) h = (h * 31 + value[i] * 997) | 0;
      return 'array' + h;
    }
    return value;
  };
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const parts = [...main.querySelectorAll('[data-testid="stImage"] img')].map(i => i.src);
  for (const gd of main.querySelectorAll('.js-plotly-plot'))
    parts.push(hash(JSON.stringify([gd.data, gd.layout.title], replacer)));
  return parts.join('|');
}"""

IDLE_JS = """(quiet) => {
  const log = window.__lcviz, now = performance.now();
  const state = document.querySelector('[data-test-script-state]');
  if (!state || state.getAttribute('data-test-script-state') !== 'notRunning') return false;
  const last = Math.max(log.changes.at(-1) || 0, (log.states.at(-1) || [0])[0]);
  return now - last >= quiet;
}"""

FIGURES_SELECTOR = '[data-testid="stMain"] [data-testid="stImage"] img, [data-testid="stMain"] .js-plotly-plot'


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(*options, timeout=90):
    """`streamlit run app.py` on 127.0.0.1 and a free port; yields its URL. `options` are extra
    command-line settings, e.g. ("--runner.fastReruns", "false")."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.address", "127.0.0.1", "--server.port", str(port), *options],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):  # not listening yet
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer on {url} within {timeout} s")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@contextlib.contextmanager
def chromium():
    """Debian's chromium through Playwright (Playwright never downloads a browser here)."""
    if not os.path.exists(CHROMIUM):
        raise FileNotFoundError(f"{CHROMIUM} is missing: install it with `make browser-deps` "
                                "(apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def page_url(url, page, params):
    return f"{url}/?{urllib.parse.urlencode({'page': page, **params})}"


def open_view(browser, url, timeout=120_000):
    """A new tab on `url`, waited for until its figures are drawn and the script is idle."""
    tab = browser.new_page(viewport=VIEWPORT)
    tab.goto(url)
    tab.wait_for_selector(FIGURES_SELECTOR, timeout=timeout)
    tab.evaluate(MONITOR_JS)
    tab.wait_for_function(IDLE_JS, arg=1000, timeout=timeout)
    return tab


def focus_slider(tab, key):
    """Focus the slider of widget `key` (or the first slider when key is None); returns its key."""
    if key is None:
        container = tab.locator('[data-testid="stMain"] [data-testid="stSlider"]').first
    else:
        container = tab.locator(f'[data-testid="stMain"] .st-key-{key}').first
    container.get_by_role("slider").first.focus()


def log(tab):
    return tab.evaluate("() => window.__lcviz")


def key_to_figure(tab, keys, timeout=30_000):
    """Seconds from each key's keydown to the last figure change it caused (None when the
    figures did not change within `timeout`)."""
    times = []
    for key in keys:
        before = len(log(tab)["changes"])
        tab.keyboard.press(key)
        try:
            tab.wait_for_function(f"() => window.__lcviz.changes.length > {before}", timeout=timeout)
            tab.wait_for_function(IDLE_JS, arg=400, timeout=timeout)
        except Exception:  # noqa: BLE001 - a figure that never changed is reported, not raised
            times.append(None)
            continue
        events = log(tab)
        times.append((events["changes"][-1] - events["keydown"][-1]) / 1e3)
    return times


def settle_after_hold(browser, tab, hold=1.0, interval=0.033, timeout=60_000, agree_within=15.0):
    """Hold ArrowRight for `hold` seconds (a press every `interval`), release, and measure until
    the page is idle; then compare its figures with a fresh tab on the final URL. A busy machine
    can mount a page's second chart after its script has finished, in either tab, so the two
    are compared until they agree or `agree_within` seconds have passed: a stale figure never
    agrees, a late one does (and then counts in settle_seconds)."""
    deadline = time.perf_counter() + hold
    presses = 0
    while time.perf_counter() < deadline:
        tab.keyboard.press("ArrowRight")
        presses += 1
        time.sleep(interval)
    tab.wait_for_function(IDLE_JS, arg=1500, timeout=timeout)
    compared_url = tab.url
    fresh = open_view(browser, compared_url)
    give_up = time.perf_counter() + agree_within
    while True:
        final, expected = tab.evaluate(CONTENT_JS), fresh.evaluate(CONTENT_JS)
        if final == expected or time.perf_counter() > give_up:
            break
        time.sleep(0.25)
    fresh.close()
    events = log(tab)
    release = events["keyup"][-1]
    idle_since = max([events["changes"][-1] if events["changes"] else 0]
                     + [t for t, state in events["states"] if state == "notRunning"])
    return {"settle_seconds": max(0.0, (idle_since - release) / 1e3), "presses": presses,
            "final_url": tab.url.split("?", 1)[-1],
            "compared_url": compared_url.split("?", 1)[-1], "final_figure_matches_fresh_load":
            final == expected, "figures": [final.count("|") + 1 if final else 0,
                                           expected.count("|") + 1 if expected else 0]}


def measure_page(browser, url, page, params, slider, keys):
    tab = open_view(browser, page_url(url, page, params))
    focus_slider(tab, slider)
    times = key_to_figure(tab, keys)
    tab.close()
    tab = open_view(browser, page_url(url, page, params))
    focus_slider(tab, slider)
    settle = settle_after_hold(browser, tab)
    tab.close()
    measured = [t for t in times if t is not None]
    return {"params": params, "slider": slider, "keys": keys, "seconds": times,
            "median_seconds": statistics.median(measured) if measured else None,
            "max_seconds": max(measured) if measured else None,
            "no_figure_change": times.count(None), **settle}


def benchmark(pages=None, server_options=()):
    """Per page: median key-press-to-figure time and settle time after a held key, in chromium
    at 1920x1080 against `streamlit run app.py` on this machine (one browser per page; a page
    whose measurement fails is reported with its error, the others still run)."""
    from lcviz.app import PAGES
    pages = list(pages or PAGES)
    results = {}
    load = [os.getloadavg()[0]]
    with streamlit_server(*server_options) as url:
        with chromium() as browser:  # a first visit warms what every visitor shares
            for page in pages:
                params, _, _ = SCENARIOS.get(page, ({}, None, None))
                with contextlib.suppress(Exception):
                    open_view(browser, page_url(url, page, params)).close()
        for page in pages:
            params, slider, keys = SCENARIOS.get(page, ({}, None, ["ArrowRight"] * 8))
            try:
                with chromium() as browser:
                    row = results[page] = measure_page(browser, url, page, params, slider, keys)
            except Exception as error:  # noqa: BLE001 - one page's failure is a result too
                results[page] = {"params": params, "slider": slider, "error": repr(error)[:500]}
                print(f"{page:12s} failed: {error!r}"[:300], flush=True)
                continue
            load.append(os.getloadavg()[0])
            median = ("none" if row["median_seconds"] is None
                      else f"{row['median_seconds'] * 1e3:.0f} ms")
            print(f"{page:12s} key to figure median {median:>8s}, settle "
                  f"{row['settle_seconds'] * 1e3:5.0f} ms after release ({row['presses']} "
                  f"presses), final figure "
                  f"{'matches' if row['final_figure_matches_fresh_load'] else 'DIFFERS from'} a "
                  "fresh load", flush=True)
    return {"goal_median_seconds": 0.3, "goal_settle_seconds": 1.0, "viewport": VIEWPORT,
            "chromium": CHROMIUM_ARGS, "server_options": list(server_options),
            "load_average_1min": {"min": min(load), "max": max(load)}, "pages": results}

