"""The course as a static site (python -m lcviz.site): built from the stored notebooks into a
temporary folder, checked as files, then served on 127.0.0.1 and read in Debian's chromium.

The browser tests need /usr/bin/chromium (`make browser-deps`); Playwright never downloads one.
"""

import functools
import http.server
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import plotly.graph_objects as go
import plotly.io
import pytest

from lcviz import site
from lcviz.course import INTRO_NOTEBOOK, ROOT, TOPICS

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "tests" / "screenshots"
PAGES = site.course_pages()
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
IMAGES = ("image/png", "image/jpeg", "image/svg+xml")


def read(page):
    return nbformat.read(ROOT / page.notebook, as_version=4)


def expected_figures(notebook):
    """{img, plotly, widget}: figures a page must show, counted from the notebook itself. A widget
    shows the outputs of the Output widgets under it, as stored in the notebook's widget state."""
    states = notebook.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
    counts = {"img": 0, "plotly": 0, "widget": 0}

    def stored(model_id):
        model = states.get(model_id, {})
        state = model.get("state", {})
        found = list(state.get("outputs", [])) if model.get("model_name") == "OutputModel" else []
        for child in state.get("children", []):
            found += stored(child.removeprefix("IPY_MODEL_"))
        return found

    def add(outputs):
        for output in outputs:
            data = output.get("data", {})
            html = "".join(data.get("text/html", ""))
            if PLOTLY in data or "Plotly.newPlot" in html:  # plotly's JSON or its HTML renderer
                counts["plotly"] += 1
            elif any(mime in data for mime in IMAGES):
                counts["img"] += 1

    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET in data:
                counts["widget"] += 1
                add(stored(data[WIDGET]["model_id"]))
            elif set(data) == {"text/plain"} and data["text/plain"].startswith("interactive("):
                counts["widget"] += 1
            else:
                add([output])
    return counts


def math_count(notebook):
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return len(re.findall(r"\$\$.+?\$\$|\$[^$\n]+\$", text, re.DOTALL))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    report = site.build(tmp_path_factory.mktemp("site") / "site")
    print(f"site built in {report.seconds:.1f} s, {report.size_bytes() / 1e6:.1f} MB")
    return report


def html_of(built, filename):
    return (built.out / filename).read_text()


# ------------------------------------------------------------------------------ the files

def test_one_page_per_notebook_in_course_order(built):
    assert [p.notebook for p in PAGES] == [INTRO_NOTEBOOK] + [t.notebook for t in TOPICS]
    for filename in ["index.html"] + [p.filename for p in PAGES]:
        sidebar = re.search(r'<ol class="lcviz-toc">(.*?)</ol>', html_of(built, filename), re.DOTALL)
        assert re.findall(r'href="([^"]+)"', sidebar.group(1)) == [p.filename for p in PAGES]
    index = html_of(built, "index.html")
    for page in PAGES:  # the README's course map links every page
        assert f'href="{page.filename}"><code>{page.notebook}</code>' in index


def test_each_page_links_its_notebook_and_app_scene_and_shows_its_run_time(built):
    for page in PAGES:
        text = html_of(built, page.filename)
        href = re.search(r'class="lcviz-notebook-link" href="([^"]+)"', text).group(1)
        assert (built.out / href).resolve() == (ROOT / page.notebook).resolve()
        app = re.search(r'class="lcviz-app-link" href="([^"]+)"', text).group(1)
        assert app == ("http://127.0.0.1:8501/" if page.notebook == INTRO_NOTEBOOK
                       else f"http://127.0.0.1:8501/?page={page.slug}")
        seconds = read(page).metadata.get("lcviz", {}).get("seconds")
        shown = re.search(r'class="lcviz-run-time">([^<]+)<', text).group(1)
        assert shown == (f"{seconds:.1f} s" if seconds is not None else "not recorded")


def test_every_figure_widget_and_formula_is_on_its_page(built):
    for page in PAGES:
        notebook, text = read(page), html_of(built, page.filename)
        counts = expected_figures(notebook)
        main = text.split("<main", 1)[1]
        assert {"img": len(re.findall(r'<div class="jp-RenderedImage[^>]*>\s*<img', main)),
                "plotly": main.count('<div class="lcviz-plotly">')
                + main.count('class="plotly-graph-div"'),
                "widget": main.count('class="jp-OutputArea-output lcviz-widget-note"')} == counts, page
        for match in re.finditer(r'<img[^>]+src="(figures/[^"]+)"', main):
            assert (built.out / match.group(1)).stat().st_size > 0
        assert main.count("<math ") >= math_count(notebook), page
        assert "lcviz-math-error" not in main
        assert '<span class="c1"># NBVAL_' not in main  # test markers leave the shown code


def test_pages_load_nothing_from_another_host(built):
    loaded = re.compile(r'<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\b(src|href)='
                        r'"([^"]*)"')
    for path in built.out.glob("*.html"):
        for tag, _, url in loaded.findall(path.read_text()):
            assert not urlsplit(url).netloc and not url.startswith("//"), (path.name, tag, url)
    for css in built.out.glob("assets/*.css"):
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", css.read_text()), css.name


def test_every_local_link_leads_to_a_file_and_the_build_warns_of_nothing(built):
    for path in built.out.glob("*.html"):
        for url in re.findall(r'(?:href|src)="([^"]+)"', path.read_text()):
            parts = urlsplit(url)
            if parts.scheme or not parts.path:
                continue
            assert (path.parent / parts.path).exists(), (path.name, url)
    assert built.warnings == []


def test_search_index_covers_every_page(built):
    text = (built.out / "assets" / "search-index.js").read_text()
    entries = json.loads(text.removeprefix("window.LCVIZ_SEARCH = ").rstrip().rstrip(";"))
    assert {e["u"].split("#")[0] for e in entries} == {"index.html"} | {p.filename for p in PAGES}
    anchors = [e["u"] for e in entries if "#" in e["u"]]
    assert anchors
    for url in anchors:
        filename, anchor = url.split("#")
        assert f'id="{anchor}"' in html_of(built, filename), url


def demo_notebook(seconds=None):
    """A notebook with one of each thing the site treats specially."""
    cells = [
        nbformat.v4.new_markdown_cell("# Demo\n\nInline $a^2 + b^2$ and display\n\n"
                                      "$$\\frac{QK^\\top}{\\sqrt{D}}$$\n\n[next](02-other.ipynb), "
                                      "[gone](99-gone.ipynb), $\\nosuchcommand x$"),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nwidgets.interact(f, length=(4, 64))",
                                  execution_count=1, outputs=[nbformat.v4.new_output(
                                      "display_data", data={
                                          WIDGET: {"model_id": "box", "version_major": 2},
                                          "text/plain": "interactive(children=(IntSlider(...)))"})]),
        nbformat.v4.new_code_cell("interact(g)", execution_count=2, outputs=[
            nbformat.v4.new_output("execute_result", execution_count=2,
                                   data={"text/plain": "interactive(children=(Dropdown(),))"})]),
        nbformat.v4.new_code_cell("figure", execution_count=3, outputs=[
            nbformat.v4.new_output("display_data", data={
                PLOTLY: {"data": [{"type": "scatter", "y": [1, 3, 2]}], "layout": {}}})]),
        nbformat.v4.new_code_cell("figure.show('notebook_connected')", execution_count=4, outputs=[
            nbformat.v4.new_output("display_data", data=plotly.io.renderers[
                "notebook_connected"].to_mimebundle(go.Figure(go.Bar(y=[2, 1, 3]))))]),
    ]
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    states = {
        "box": {"model_name": "VBoxModel", "state": {
            "_dom_classes": ["widget-interact"],
            "children": ["IPY_MODEL_slider", "IPY_MODEL_out"]}},
        "slider": {"model_name": "IntSliderModel", "state": {"description": "length",
                                                              "value": 32}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {"image/png": png, "text/plain": "<Figure>"}}]}},
    }
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["widgets"] = {STATE: {"state": states, "version_major": 2}}
    if seconds is not None:
        notebook.metadata["lcviz"] = {"seconds": seconds}
    return notebook


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A two-notebook course built from demo_notebook()."""
    tmp_path = tmp_path_factory.mktemp("small")
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "README.md").write_text("# Demo course\n\nOpening words.\n\n## Quick start\n")
    nbformat.write(demo_notebook(seconds=12.34), root / "notebooks" / "01-demo.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), root / "notebooks" / "02-other.ipynb")
    pages = [site.Page(1, "demo", "Demo", "notebooks/01-demo.ipynb", "http://x/?page=demo"),
             site.Page(2, "other", "Other", "notebooks/02-other.ipynb", "http://x/?page=other")]
    return site.build(tmp_path / "out", root=root, pages=pages)


def test_widgets_plotly_math_links_and_run_time_on_a_small_course(small):
    report = small
    demo = (report.out / "01-demo.html").read_text()
    # widgets: a note each; the stored figure of the first, with its slider's value
    assert demo.count("Interactive widget.") == 2
    assert "<code>length = 32</code>" in demo and "stores no output of it" in demo
    stored = re.findall(r'<img[^>]+src="(figures/01-demo/[^"]+\.png)"', demo)
    assert len(stored) == 1 and (report.out / stored[0]).exists()
    assert "NBVAL_IGNORE_OUTPUT" not in demo and "interactive(children" not in demo
    # plotly: a figure from JSON and one from plotly's HTML renderer, both drawn by the local
    # plotly.js (the HTML lost its CDN scripts)
    assert demo.count('<div class="lcviz-plotly">') == 1
    assert demo.count('class="plotly-graph-div"') == 1 and "cdn" not in demo
    assert '<script src="assets/plotly.min.js"' in demo
    assert (report.out / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    # math as MathML, links between notebooks between pages, a missing one reported
    assert demo.count('<math xmlns="http://www.w3.org/1998/Math/MathML"') == 2
    assert "<mfrac>" in demo and "$" not in demo.split("<main", 1)[1]
    assert 'href="02-other.html"' in demo
    assert report.warnings == [
        "notebooks/01-demo.ipynb: link to 99-gone.ipynb, which does not exist",
        ("notebooks/01-demo.ipynb: math not converted (unknown command \\nosuchcommand): "
         "\\nosuchcommand x")]
    assert '<code class="lcviz-math-error">\\nosuchcommand x</code>' in demo
    # run time, recorded or not; the second page has no plotly.js
    assert '<span class="lcviz-run-time">12.3 s</span>' in demo
    other = (report.out / "02-other.html").read_text()
    assert '<span class="lcviz-run-time">not recorded</span>' in other
    assert "plotly.min.js" not in other
    assert "Opening words." in (report.out / "index.html").read_text()


def test_a_folder_not_built_by_the_site_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not built by lcviz.site"):
        site.build(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_missing_notebook_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebooks/05-nothing.ipynb"):
        site.build(tmp_path / "out", pages=[site.Page(5, "nothing", "Nothing",
                                                      "notebooks/05-nothing.ipynb", "")])


# ------------------------------------------------------------------------------ in chromium

browser_test = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                  reason=f"{CHROMIUM} missing: `make browser-deps` installs it")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(built):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(built.out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


PLOTS_DRAWN = ("() => [...document.querySelectorAll('.lcviz-plotly, .plotly-graph-div')]"
               ".every(div => div.classList.contains('js-plotly-plot'))")


def open_page(browser, url):
    """(page, console errors, URLs requested) with the page loaded and its plotly figures drawn;
    errors and requests are recorded as (file shown, text) for every page this tab goes to."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, requests = [], []

    def where():
        return urlsplit(page.url).path.lstrip("/")

    page.on("console", lambda m: m.type == "error" and errors.append((where(), m.text)))
    page.on("pageerror", lambda error: errors.append((where(), str(error))))
    page.on("request", lambda request: requests.append((where(), request.url)))
    page.goto(url, wait_until="load")
    page.wait_for_function(PLOTS_DRAWN, timeout=30_000)
    return page, errors, requests


def outside(requests):
    return [(where, url) for where, url in requests
            if not url.startswith("data:") and urlsplit(url).hostname != "127.0.0.1"]


@pytest.mark.slow
@browser_test
def test_next_links_walk_the_course_and_every_page_shows_its_figures_offline(served, browser):
    """From the home page, follow "next" to the end: every notebook in course order, each with
    all of its figures (images loaded, plotly drawn), widget notes and math, no console error,
    no request to another host."""
    SCREENSHOTS.mkdir(exist_ok=True)
    notebooks = {p.filename: read(p) for p in PAGES}
    page, errors, requests = open_page(browser, f"{served}/index.html")
    page.screenshot(path=str(SCREENSHOTS / "site-index.png"), full_page=True)
    visited = []
    while page.locator("a[rel=next]").count():
        page.locator("a[rel=next]").first.click()
        page.wait_for_load_state("load")
        page.wait_for_function(PLOTS_DRAWN, timeout=30_000)
        filename = urlsplit(page.url).path.lstrip("/")
        visited.append(filename)
        counts = expected_figures(notebooks[filename])
        assert page.locator("main .jp-RenderedImage img").count() == counts["img"], filename
        assert page.evaluate("() => [...document.querySelectorAll('main .jp-RenderedImage img')]"
                             ".every(img => img.complete && img.naturalWidth > 0)"), filename
        assert page.locator("main .js-plotly-plot").count() == counts["plotly"], filename
        assert page.locator("main .lcviz-widget-note").count() == counts["widget"], filename
        if math_count(notebooks[filename]):
            box = page.locator("main math").first.bounding_box()
            assert box and box["width"] > 20 and box["height"] > 10, filename  # drawn, not TeX
        page.screenshot(path=str(SCREENSHOTS / f"site-{Path(filename).stem}.png"),
                        full_page=True)
    page.close()
    assert visited == [p.filename for p in PAGES]
    assert errors == []
    assert outside(requests) == []


@pytest.mark.slow
@browser_test
def test_code_cells_unfold_one_by_one_or_all_at_once(served, browser):
    with_code = next(p for p in PAGES if any(c.cell_type == "code" for c in read(p).cells))
    page, errors, _ = open_page(browser, f"{served}/{with_code.filename}")
    code = page.locator("details.lcviz-code").first
    assert not code.evaluate("d => d.open") and not code.locator("pre").is_visible()
    code.locator("summary").click()
    assert code.locator("pre").is_visible()
    page.locator("#lcviz-toggle-code").click()
    assert page.evaluate("() => [...document.querySelectorAll('details.lcviz-code')]"
                         ".every(d => d.open)")
    page.close()
    assert errors == []


@pytest.mark.slow
@browser_test
def test_search_box_finds_a_topic_and_opens_it(served, browser):
    topic = TOPICS[-1]
    page, errors, _ = open_page(browser, f"{served}/index.html")
    page.locator("#lcviz-search").fill(topic.title.lower())
    hit = page.locator(f'#lcviz-search-results a[href^="{topic.number:02d}-{topic.slug}.html"]')
    hit.first.wait_for(timeout=5_000)
    page.locator("#lcviz-search").fill("zzzz-no-such-word")
    assert page.locator("#lcviz-search-results").inner_text() == "no match"
    page.locator("#lcviz-search").fill(topic.title.lower())
    hit.first.click()
    page.wait_for_load_state("load")
    assert urlsplit(page.url).path.endswith(f"{topic.number:02d}-{topic.slug}.html")
    page.close()
    assert errors == []


@pytest.mark.slow
@browser_test
def test_a_plotly_figure_answers_the_mouse(served, browser):
    with_plotly = [p for p in PAGES if expected_figures(read(p))["plotly"]]
    if not with_plotly:
        pytest.skip("no notebook stores a plotly figure")
    page, errors, _ = open_page(browser, f"{served}/{with_plotly[0].filename}")
    figure = page.locator("main .lcviz-plotly").first
    figure.scroll_into_view_if_needed()
    area = figure.locator(".nsewdrag").first.bounding_box()
    hovered = False
    for fy in (0.5, 0.3, 0.7, 0.9, 0.1):  # sweep the plot area until a point answers
        for fx in [i / 20 for i in range(1, 20)]:
            page.mouse.move(area["x"] + fx * area["width"], area["y"] + fy * area["height"])
            if figure.locator(".hoverlayer .hovertext").count():
                hovered = True
                break
        if hovered:
            break
    assert hovered, "no hover label appeared anywhere over the plot area"
    figure.screenshot(path=str(SCREENSHOTS / "site-plotly-hover.png"))
    page.close()
    assert errors == []


@pytest.mark.slow
@browser_test
def test_plotly_html_and_json_outputs_draw_offline(small, browser):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(small.out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page, errors, requests = open_page(
            browser, f"http://127.0.0.1:{server.server_address[1]}/01-demo.html")
        assert page.locator("main .js-plotly-plot").count() == 2
        assert page.locator("main .js-plotly-plot .point").count() == 6  # 3 markers + 3 bars
        page.close()
    finally:
        server.shutdown()
        server.server_close()
    assert errors == []
    assert outside(requests) == []
