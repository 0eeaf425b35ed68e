"""End to end: `streamlit run app.py` on 127.0.0.1, driven by Debian's chromium via Playwright.

The test command installs chromium (`make browser-deps`); Playwright never downloads a browser.
Screenshots of every page at three projector and laptop sizes go to tests/screenshots/
(git-ignored) for a person to look at; the checks below read the same pages' DOM.
"""

import os
import re
from pathlib import Path

import pytest

from lcviz.app import PAGES
from lcviz.app.browser_bench import (
    CHROMIUM,
    FIGURES_SELECTOR,
    IDLE_JS,
    MONITOR_JS,
    chromium,
    focus_slider,
    settle_after_hold,
    streamlit_server,
)

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "tests" / "screenshots"
SIZES = [(1920, 1080), (1280, 800), (1024, 768)]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason=f"{CHROMIUM} missing: `make browser-deps` installs it")]


@pytest.fixture(scope="module")
def app_url():
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def visit(browser, url, size=(1920, 1080)):
    """A tab of `size` on `url`, once its figures are drawn and the script is idle."""
    tab = browser.new_page(viewport={"width": size[0], "height": size[1]})
    tab.goto(url)
    tab.wait_for_selector(FIGURES_SELECTOR, timeout=120_000)
    tab.evaluate(MONITOR_JS)
    tab.wait_for_function(IDLE_JS, arg=800, timeout=120_000)
    return tab


def metric_value(tab, label):
    metric = tab.locator('[data-testid="stMetric"]', has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


# What a page's DOM says about readability: every visible text's font size, every chart's box
# against its column, every chart title's box against its chart.
LAYOUT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const small = [];
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, element = node.parentElement;
    if (!node.textContent.trim() || !element) continue;
    if (element.closest('.modebar, .hoverlayer, [data-testid="stTooltipIcon"], code')) continue;
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (!box.width || !box.height || style.visibility === 'hidden' || style.opacity === '0') continue;
    const size = parseFloat(style.fontSize);
    if (size < 14) small.push([node.textContent.trim().slice(0, 30), size]);
  }
  const charts = [...main.querySelectorAll('.js-plotly-plot')].map(gd => {
    const box = gd.getBoundingClientRect();
    const column = gd.closest('[data-testid="stColumn"], [data-testid="stVerticalBlock"]');
    const title = gd.querySelector('.gtitle');
    const titleBox = title ? title.getBoundingClientRect() : null;
    return {width: box.width, column: column.getBoundingClientRect().width,
            left: box.left, right: box.right,
            title: title ? title.textContent : null,
            titleLeft: titleBox ? titleBox.left : null, titleRight: titleBox ? titleBox.right : null};
  });
  const clipped = [];
  for (const gd of main.querySelectorAll('.js-plotly-plot')) {
    const box = gd.getBoundingClientRect();
    for (const text of gd.querySelectorAll('.annotation-text, .gtitle, .legendtext, .xtitle, .ytitle')) {
      const r = text.getBoundingClientRect();
      if (r.width && (r.left < box.left - 1 || r.right > box.right + 1))
        clipped.push(text.textContent.slice(0, 40));
    }
  }
  return {small, charts, clipped, overflowX: main.scrollWidth > main.clientWidth + 1};
}"""


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_page_at_projector_and_laptop_sizes(app_url, browser, size):
    SCREENSHOTS.mkdir(exist_ok=True)
    problems = []
    for page in PAGES:
        tab = visit(browser, f"{app_url}/?page={page}", size)
        tab.screenshot(path=str(SCREENSHOTS / f"{page}-{size[0]}x{size[1]}.png"))
        layout = tab.evaluate(LAYOUT_JS)
        errors = tab.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
        if errors.count():
            problems.append(f"{page}: {errors.first.inner_text()}")
        for chart in layout["charts"]:
            if chart["width"] < 0.9 * chart["column"] or chart["width"] > chart["column"] + 1:
                problems.append(f"{page}: a chart {chart['width']:.0f} px wide in a "
                                f"{chart['column']:.0f} px column")
            if chart["title"] and not (chart["left"] - 1 <= chart["titleLeft"]
                                       and chart["titleRight"] <= chart["right"] + 1):
                problems.append(f"{page}: title {chart['title']!r} runs out of its chart")
        if layout["clipped"]:
            problems.append(f"{page}: text runs out of its chart: {layout['clipped']}")
        if size == (1920, 1080) and layout["small"]:
            problems.append(f"{page}: text under 14 px: {layout['small'][:5]}")
        if layout["overflowX"]:
            problems.append(f"{page}: the page scrolls sideways")
        tab.close()
    assert problems == []


def test_charts_grow_with_the_window(app_url, browser):
    widths = []
    for size in ((1024, 768), (1920, 1080)):
        tab = visit(browser, f"{app_url}/?page=masks", size)
        widths.append(tab.locator(".js-plotly-plot").first.bounding_box()["width"])
        tab.close()
    assert widths[1] > 1.5 * widths[0]


def test_a_long_mask_title_fits_at_1024(app_url, browser):
    tab = visit(browser, f"{app_url}/?page=masks&pattern=global+%2B+local&length=4096&window=256",
                (1024, 768))
    chart = tab.evaluate(LAYOUT_JS)["charts"][0]
    assert chart["title"] == "global + local, T = 4,096"
    assert chart["left"] <= chart["titleLeft"] and chart["titleRight"] <= chart["right"]
    tab.close()


def test_the_passkey_answer_is_whole_at_1024(app_url, browser):
    tab = visit(browser, f"{app_url}/?page=passkey&depth=30&seed=2", (1024, 768))
    heading = tab.locator('[data-testid="stMarkdownContainer"] h4', has_text="answer").first
    text = heading.inner_text()
    assert re.fullmatch(r"Key \d{5} · answer \d{5}", text.strip()), text
    fits = heading.evaluate("e => e.scrollWidth <= e.clientWidth && "
                            "e.getBoundingClientRect().right <= "
                            "e.closest('[data-testid=\"stColumn\"]').getBoundingClientRect().right")
    assert fits
    tab.close()


def hover_text(tab, chart_index, x, y):
    """Hover the centre of cell (x, y) of a heatmap (category or numeric axes); the hover box."""
    point = tab.evaluate("""([index, x, y]) => {
      const gd = document.querySelectorAll('.js-plotly-plot')[index];
      const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
      return [box.left + xa._offset + xa.d2p(x), box.top + ya._offset + ya.d2p(y)];
    }""", [chart_index, x, y])
    tab.mouse.move(*point)
    label = tab.locator(".hoverlayer .hovertext").first
    label.wait_for(timeout=10_000)
    return label.text_content()  # an SVG group: its lines run together


def test_hovering_the_attention_map_names_the_tokens_and_the_weight(app_url, browser):
    tab = visit(browser, f"{app_url}/?page=transformer&text=def+f%28a%29%3A&layer=1&head=0")
    text = hover_text(tab, 0, "4 f", "6 a")
    assert "query 6 a → key 4 f" in text and re.search(r"weight \d\.\d{3}", text), text
    tab.close()


def test_hovering_a_long_mask_counts_the_pairs_of_a_cell(app_url, browser):
    tab = visit(browser, f"{app_url}/?page=masks&pattern=sliding+window&length=4096&window=256")
    text = hover_text(tab, 0, "4080–4095", "4080–4095")
    assert "queries 4080–4095, keys 4080–4095" in text
    assert "136 of 256 pairs may attend" in text, text  # the causal triangle of a 16 x 16 block
    tab.close()


def test_window_slider_moved_by_keyboard_changes_the_figure(app_url, browser):
    tab = visit(browser, f"{app_url}/?page=masks&pattern=sliding+window&length=32&window=4")
    assert metric_value(tab, "attended pairs") == "122"  # 4*32 - 4*3/2
    focus_slider(tab, "window")
    for _ in range(3):
        tab.keyboard.press("ArrowRight")
    tab.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stMetricValue]')]"
        ".some(e => e.innerText === '203')", timeout=30_000)  # window 7: 7*32 - 7*6/2
    tab.wait_for_function(IDLE_JS, arg=500, timeout=30_000)
    assert "window=7" in tab.url
    drawn = tab.evaluate("() => { const gd = document.querySelector('.js-plotly-plot'); "
                         "const z = gd._fullData[0].z; let s = 0; "
                         "for (const row of z) for (const v of row) s += v; return s; }")
    assert drawn == 203  # the figure shows the new mask, not the old one
    tab.close()


def test_holding_a_key_settles_on_the_figure_of_the_last_value(app_url, browser):
    tab = visit(browser, f"{app_url}/?page=receptive&pattern=sliding+window&length=256&window=8"
                         "&layers=4")
    focus_slider(tab, "window")
    result = settle_after_hold(browser, tab, hold=1.0)
    assert result["presses"] >= 3  # ~30 on an idle machine; fewer when the CPU is busy
    assert result["final_figure_matches_fresh_load"], result
    final_window = int(re.search(r"window=(\d+)", tab.url).group(1))
    assert final_window > 8
    assert metric_value(tab, "exact L(w−1)+1") == f"{4 * (final_window - 1) + 1:,}"
    tab.close()


def test_bookmarked_scene_opens_without_errors(app_url, browser):
    tab = visit(browser, f"{app_url}/?page=receptive&pattern=sliding+window&length=2048&window=128"
                         "&layers=8")
    assert metric_value(tab, "inputs reaching") == "1,017"
    assert tab.locator('[data-testid="stException"]').count() == 0
    tab.close()
