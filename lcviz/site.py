"""Read the course without installing anything: the executed notebooks as a static web site.

    python -m lcviz.site               # writes site/ (`make site`), then open site/index.html
    python -m lcviz.site --out DIR     # somewhere else (a new or empty folder, or an earlier site)

One page per notebook in course order (lcviz.course), after a home page with the README's course
map. Every page has the course in a sidebar, previous/next links, a search box, its code cells
folded into <details>, its figures inline (plotly figures stay interactive), its math rendered,
and a header linking the notebook file, the app scene of the same topic
(http://127.0.0.1:8501/?page=<slug>, the `make app` URL) and the run time stored by
`python -m lcviz.notebooks`. The pages show the stored outputs: nothing is executed.

Tool: nbconvert's HTMLExporter (the `lab` template's cells inside a small template of ours,
lcviz/site_assets/templates/lcviz-site) rather than MkDocs + mkdocs-jupyter + Material, because
- the site must load nothing from another host. nbconvert's cell templates take no network; only
  its page frame pulls require.js, MathJax and the widget manager from CDNs, and that frame is the
  part we replace. Material would need `font: false`, a local MathJax, and mkdocs-jupyter (itself
  built on nbconvert) patched the same way for plotly and widgets;
- nbconvert is already installed with JupyterLab and is maintained by the Jupyter project, while
  MkDocs 1.x has had no release since 2024 and Material for MkDocs is in maintenance mode: three
  more dependencies for a frame we can write in one template;
- the build is one pass over the notebooks in Python (a few seconds), with no config file at
  the repository's top level and no copy of the notebooks into a docs folder.

Math is rendered to MathML when the site is built (latex2mathml, pure Python), which every current
browser draws natively: no MathJax or KaTeX script, no font download. Plotly figures are drawn by
the plotly.js that the `plotly` package ships (plotly/package_data/plotly.min.js), copied into
assets/ and loaded only by pages that have a plotly figure. Widgets cannot run without a kernel:
where a widget stood, the page says so and shows the output the notebook stored for it (the
widget's Output area at its starting values, saved in the notebook's widget state).
"""

import argparse
import copy
import html
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
from jinja2 import pass_context
from latex2mathml import exceptions as latex_errors
from latex2mathml.converter import convert as latex_to_mathml
from nbconvert import HTMLExporter, TemplateExporter
from nbconvert.filters import DataTypeFilter, Highlight2HTML
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from traitlets.config import Config

from lcviz.course import INTRO_NOTEBOOK, ROOT, TOPICS, course_map_markdown

APP_URL = "http://127.0.0.1:8501"  # `make app`
ASSETS = Path(__file__).resolve().parent / "site_assets"
MARKER = ".lcviz-site"  # written into every built site; only such a folder is ever replaced

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE_MIME = "application/x-lcviz-widget-note+json"  # ours: drawn by the site template
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")
EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script>",
                             re.IGNORECASE)
NBVAL_MARKER = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$")
# what latex2mathml raises on TeX it cannot read (its own exception classes, and the plain ones a
# malformed group can lead to); a command it does not know comes back as <mi>\name</mi>
LATEX_ERRORS = tuple(v for v in vars(latex_errors).values()
                     if isinstance(v, type) and issubclass(v, Exception)) + (
    IndexError, KeyError, ValueError)
UNKNOWN_COMMAND = re.compile(r">\\[A-Za-z]+<")
SEARCH_TEXT_LIMIT = 4000  # characters of text kept per section in the search index


@dataclass(frozen=True)
class Page:
    number: int
    slug: str
    title: str
    notebook: str  # relative to the repository
    app_url: str

    @property
    def filename(self):
        return f"{self.number:02d}-{self.slug}.html"


def course_pages():
    """The site's pages in course order: the introduction, then every topic of lcviz.course."""
    intro_slug = Path(INTRO_NOTEBOOK).stem.split("-", 1)[1]
    pages = [Page(0, intro_slug, "Start here", INTRO_NOTEBOOK, f"{APP_URL}/")]
    pages += [Page(t.number, t.slug, t.title, t.notebook, f"{APP_URL}/?page={t.slug}")
              for t in TOPICS]
    return pages


@dataclass
class BuildReport:
    out: Path
    pages: list  # Page, in course order
    seconds: float
    warnings: list  # str: math that did not convert, links that lead nowhere

    def size_bytes(self):
        return sum(p.stat().st_size for p in self.out.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# Notebook -> notebook the template can draw (widgets, plotly, folded code)

def _widget_states(notebook):
    return notebook.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})


def _control_text(state):
    """'length = 32' for a slider, dropdown or text box in a widget's saved state, else None."""
    description = state.get("description")
    if not description:
        return None
    if "_options_labels" in state and isinstance(state.get("index"), int):
        labels = state["_options_labels"]
        value = labels[state["index"]] if 0 <= state["index"] < len(labels) else None
    else:
        value = state.get("value")
    if value is None or isinstance(value, (list, dict)):
        return None
    value = " ".join(value.split()) if isinstance(value, str) else json.dumps(value)
    if len(value) > 40:
        value = value[:37] + "..."
    return f"{description} = {value}"


def widget_snapshot(states, model_id):
    """(control texts, stored outputs) of a widget and its children, from the notebook's saved
    widget state: what an `interact` showed at its starting values when the notebook ran."""
    controls, outputs, seen = [], [], set()

    def visit(mid):
        if mid in seen or mid not in states:
            return
        seen.add(mid)
        model = states[mid]
        state = model.get("state", {})
        if model.get("model_name") == "OutputModel":
            outputs.extend(copy.deepcopy(state.get("outputs", [])))
        text = _control_text(state)
        if text:
            controls.append(text)
        for child in state.get("children", []):
            if isinstance(child, str) and child.startswith("IPY_MODEL_"):
                visit(child[len("IPY_MODEL_"):])

    visit(model_id)
    return controls, outputs


def _is_widget_output(output):
    data = output.get("data", {})
    if WIDGET_VIEW_MIME in data:
        return True
    text = data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return set(data) == {"text/plain"} and text.startswith("interactive(children=")


def _code_summary(source):
    """The first line worth showing of a code cell (its comment or first statement)."""
    for line in source.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 90 else line[:87] + "..."
    return ""


def prepare(notebook):
    """A copy of `notebook` ready for the template; returns (notebook, has_plotly).

    NBVAL markers leave the code; every widget output becomes a note plus the outputs stored for
    it; the widget state leaves the metadata (no page loads a widget manager); HTML outputs lose
    the scripts they would load from other hosts."""
    notebook = copy.deepcopy(notebook)
    states = _widget_states(notebook)
    notebook.metadata.pop("widgets", None)
    has_plotly = False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if not NBVAL_MARKER.match(line)]
        cell.source = "\n".join(lines).strip("\n")
        cell.metadata["lcviz_site"] = {"summary": _code_summary(cell.source),
                                       "lines": len(cell.source.splitlines())}
        outputs = []
        for output in cell.get("outputs", []):
            if not _is_widget_output(output):
                outputs.append(output)
                continue
            model_id = output.get("data", {}).get(WIDGET_VIEW_MIME, {}).get("model_id")
            controls, stored = widget_snapshot(states, model_id) if model_id else ([], [])
            note = {"controls": controls, "snapshot": bool(stored)}
            outputs.append(nbformat.from_dict({"output_type": "display_data", "metadata": {},
                                               "data": {WIDGET_NOTE_MIME: note}}))
            outputs.extend(nbformat.from_dict(o) for o in stored)
        for output in outputs:
            has_plotly |= PLOTLY_MIME in output.get("data", {}) or _offline_html(output)
        cell.outputs = outputs
    return notebook, has_plotly


def _offline_html(output):
    """Drop the scripts an HTML output loads from other hosts (plotly's notebook renderers pull
    plotly.js and MathJax from CDNs); True when what is left draws a plotly figure, which the page
    then gets from its local plotly.js."""
    data = output.get("data", {})
    if "text/html" not in data or PLOTLY_MIME in data:
        return False
    text = data["text/html"]
    text = "".join(text) if isinstance(text, list) else text
    data["text/html"] = EXTERNAL_SCRIPT.sub("", text)
    return "Plotly.newPlot" in data["text/html"]


# ---------------------------------------------------------------------------------------------
# Markdown: math to MathML, links between notebooks to links between pages

class _SiteRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, with math converted to MathML at build time and relative
    links rewritten for the site (see SiteExporter.site_link)."""

    def __init__(self, exporter, **kwargs):
        super().__init__(**kwargs)
        self.exporter = exporter

    def _math(self, tex, display):
        try:
            mathml = latex_to_mathml(tex, display=display)
            problem = None if not UNKNOWN_COMMAND.search(mathml) else (
                f"unknown command {UNKNOWN_COMMAND.search(mathml).group(0)[1:-1]}")
        except LATEX_ERRORS as error:
            problem = f"{type(error).__name__} {error}".strip()
        if problem is None:
            return mathml
        self.exporter.warnings.append(f"{self.exporter.current}: math not converted ({problem}): "
                                      f"{tex.strip()[:80]}")
        return f'<code class="lcviz-math-error">{html.escape(tex)}</code>'

    def block_math(self, body):
        return self._math(body, "block")

    def inline_math(self, body):
        return self._math(body, "inline")

    def latex_environment(self, name, body):
        return self._math(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")

    def link(self, text, url, title=None):
        return super().link(text, self.exporter.site_link(url), title)

    def image(self, text, url, title=None):
        return super().image(text, self.exporter.site_link(url), title)


class SiteExporter(HTMLExporter):
    """HTMLExporter with the lcviz-site template, math as MathML and site-relative links."""

    def __init__(self, out, root, pages, **kwargs):
        config = Config()
        config.HTMLExporter.extra_template_basedirs = [str(ASSETS / "templates")]
        config.HTMLExporter.template_name = "lcviz-site"
        config.ExtractOutputPreprocessor.enabled = True  # figures become files in figures/
        config.NbConvertBase.display_data_priority = [
            WIDGET_NOTE_MIME, PLOTLY_MIME, "text/html", "text/markdown", "image/svg+xml",
            "text/latex", "image/png", "image/jpeg", "text/plain"]
        super().__init__(config=config, **kwargs)
        self.out, self.root = Path(out), Path(root)
        self.page_of = {(self.root / p.notebook).resolve(): p for p in pages}
        self.warnings, self.current = [], ""
        self.rendered_markdown = []  # the current page's markdown cells, rendered, in order

    def site_link(self, url):
        """A relative link written in a notebook, made to work from the site: a course notebook
        becomes its page, any other file of the repository a path to it."""
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path:
            return url
        target = (self.root / "notebooks" / unquote(parts.path)).resolve()
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        if target in self.page_of:
            return self.page_of[target].filename + fragment
        if not target.exists():
            self.warnings.append(f"{self.current}: link to {url}, which does not exist")
            return url
        return Path(os.path.relpath(target, self.out)).as_posix() + fragment

    def from_notebook_node(self, nb, resources=None, **kw):
        """HTMLExporter.from_notebook_node without its closing BeautifulSoup pass over the whole
        page (alt text and tabindex attributes), which took half of the build; images get their
        alt text here."""
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        self.register_filter("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
        self.register_filter("filter_data_type", DataTypeFilter(parent=self))
        body, resources = TemplateExporter.from_notebook_node(
            self, nb, self._init_resources(resources), **kw)
        return re.sub(r"<img(?![^>]*\balt=)", '<img alt="figure drawn by the code above"', body), \
            resources

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = _SiteRenderer(self, escape=False, attachments=cell.get("attachments", {}),
                                 anchor_link_text="¶", **self.lexer_options)
        rendered = MarkdownWithMath(renderer=renderer).render(source)
        if cell.get("cell_type") == "markdown":
            self.rendered_markdown.append(rendered)
        return rendered


# ---------------------------------------------------------------------------------------------
# The search index: one entry per section (a heading and the text up to the next one), made from
# the markdown cells as rendered for the page (so the anchors match) and the code cells' source

HEADING = re.compile(r'<h[1-3][^>]*\bid="([^"]+)"[^>]*>(.*?)</h[1-3]>', re.DOTALL)


def _plain(fragment):
    fragment = re.sub(r"<math\b.*?</math>|<a class=\"anchor-link\".*?</a>", " ", fragment,
                      flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def search_entries(notebook, rendered_markdown, href, page_title):
    """[{u: link, h: heading, t: text}] for `notebook`, whose markdown cells rendered (in order)
    to `rendered_markdown`."""
    sections = [{"u": href, "h": page_title, "t": []}]
    rendered = iter(rendered_markdown)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            sections[-1]["t"].append(cell.source)
            continue
        if cell.cell_type != "markdown":
            continue
        fragment = next(rendered, "")
        position = 0
        for match in HEADING.finditer(fragment):
            sections[-1]["t"].append(_plain(fragment[position:match.start()]))
            sections.append({"u": f"{href}#{match.group(1)}",
                             "h": f"{page_title}: {_plain(match.group(2))}", "t": []})
            position = match.end()
        sections[-1]["t"].append(_plain(fragment[position:]))
    entries = []
    for section in sections:
        text = " ".join(" ".join(section["t"]).split())[:SEARCH_TEXT_LIMIT]
        if text or section["u"] != href:
            entries.append({"u": section["u"], "h": section["h"], "t": text})
    return entries


# ---------------------------------------------------------------------------------------------
# The build

def _run_time(notebook):
    seconds = notebook.metadata.get("lcviz", {}).get("seconds")
    return (f"{seconds:.1f} s", True) if isinstance(seconds, (int, float)) else ("not recorded",
                                                                                 False)


def _nav(pages, current):
    return [{"href": p.filename, "number": f"{p.number:02d}", "title": p.title,
             "current": p == current} for p in pages]


def _home_notebook(root, pages):
    """The home page as a one-cell notebook: the README's opening paragraph and course map."""
    readme = (Path(root) / "README.md").read_text() if (Path(root) / "README.md").exists() else ""
    title = next((line[2:].strip() for line in readme.splitlines() if line.startswith("# ")),
                 "lcviz")
    opening = readme.split("\n## ", 1)[0].split("\n", 1)[-1].strip() if readme else ""
    course_map = course_map_markdown()
    for page in pages:
        course_map = course_map.replace(f"`{page.notebook}`",
                                        f"[`{page.notebook}`]({Path(page.notebook).name})")
    text = (f"# {title}\n\n{opening}\n\n## Course map\n\n{course_map}\n\n"
            "Each page shows a notebook as it was last executed (`make notebooks`), with links to "
            "the notebook file and to the same topic in the lecturer's app (`make app`). To run "
            "the cells and move the widgets, open the notebooks in JupyterLab: `make lab`.\n")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])


def _prepare_out(out):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file is in the way; choose a folder")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ValueError(f"--out {out}: the folder is not empty and was not built by "
                             "lcviz.site; choose a new or empty folder")
        shutil.rmtree(out)
    (out / "assets").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("built by python -m lcviz.site; replaced on every build\n")
    return out


def _copy_assets(out, exporter, plotly):
    assets = out / "assets"
    for name in ("site.css", "site.js"):
        shutil.copyfile(ASSETS / name, assets / name)
    lab = next(Path(d) / "static" for d in exporter.template_paths
               if (Path(d) / "static" / "index.css").exists() and Path(d).name == "lab")
    (assets / "jupyterlab.css").write_text(
        (lab / "index.css").read_text() + "\n" + (lab / "theme-light.css").read_text())
    if plotly:
        import plotly as plotly_package  # the plotly.js that the plotly package ships
        shutil.copyfile(Path(plotly_package.__file__).parent / "package_data" / "plotly.min.js",
                        assets / "plotly.min.js")


def build(out=ROOT / "site", root=ROOT, pages=None):
    """Write the site into `out`; returns a BuildReport (warnings are listed, not raised)."""
    start = time.perf_counter()
    root, pages = Path(root), list(pages or course_pages())
    missing = [p.notebook for p in pages if not (root / p.notebook).exists()]
    if missing:
        raise FileNotFoundError(f"notebooks missing: {', '.join(missing)} (the course table "
                                "lcviz/course.py lists them)")
    out = _prepare_out(out)
    exporter = SiteExporter(out, root, pages)
    entries, any_plotly = [], False
    for index, page in enumerate(pages):
        notebook, plotly = prepare(nbformat.read(root / page.notebook, as_version=4))
        any_plotly |= plotly
        run_time, recorded = _run_time(notebook)
        facts = {"notebook": page.notebook,
                 "notebook_href": Path(os.path.relpath(root / page.notebook, out)).as_posix(),
                 "app_url": page.app_url, "run_time": run_time, "recorded": recorded,
                 "code_cells": any(c.cell_type == "code" for c in notebook.cells)}
        neighbour = [{"href": p.filename, "number": f"{p.number:02d}", "title": p.title}
                     for p in pages]
        site = {"title": f"{page.number:02d} {page.title}", "nav": _nav(pages, page),
                "facts": facts, "plotly": plotly,
                "prev": neighbour[index - 1] if index > 0 else {"href": "index.html",
                                                                "number": "", "title": "Home"},
                "next": neighbour[index + 1] if index + 1 < len(pages) else None}
        exporter.current, exporter.rendered_markdown = page.notebook, []
        body, resources = exporter.from_notebook_node(
            notebook, resources={"lcviz": site, "output_files_dir": f"figures/{Path(page.filename).stem}"})
        (out / page.filename).write_text(body)
        for name, data in resources.get("outputs", {}).items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        entries += search_entries(notebook, exporter.rendered_markdown, page.filename,
                                  site["title"])
    home = {"title": "Course map", "nav": _nav(pages, None), "facts": None, "plotly": False,
            "prev": None, "next": {"href": pages[0].filename, "number": f"{pages[0].number:02d}",
                                   "title": pages[0].title}}
    exporter.current, exporter.rendered_markdown = "README.md", []
    home_notebook = _home_notebook(root, pages)
    body, _ = exporter.from_notebook_node(home_notebook, resources={"lcviz": home})
    (out / "index.html").write_text(body)
    entries = search_entries(home_notebook, exporter.rendered_markdown, "index.html",
                             "Course map") + entries
    (out / "assets" / "search-index.js").write_text(
        "window.LCVIZ_SEARCH = " + json.dumps(entries, ensure_ascii=False) + ";\n")
    _copy_assets(out, exporter, any_plotly)
    return BuildReport(out, pages, time.perf_counter() - start, exporter.warnings)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lcviz.site", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "site",
                        help="folder to write (default: site/ in the repository)")
    args = parser.parse_args(argv)
    try:
        report = build(args.out)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {len(report.pages)} notebook pages and index.html to {report.out} in "
          f"{report.seconds:.1f} s ({report.size_bytes() / 1e6:.1f} MB); open "
          f"{report.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
