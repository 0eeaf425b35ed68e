# lcviz: the two commands of the quick start are `make app` and `make test`.
# Each does its own set-up: a virtualenv in .venv with requirements.txt (lcviz installed -e).
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup app lab test unit notebooks checkpoints bench bench-longcontext site browser-deps clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

app: setup  ## the lecturer's app on http://127.0.0.1:8501 (.streamlit/config.toml)
	@echo "lcviz app: open http://127.0.0.1:8501 in a browser (Ctrl-C stops it)"
	$(PY) -m streamlit run app.py

# `make lab` opens the learner's own copies in workspace/ (git-ignored, never overwritten), so
# exercises can be edited and saved while notebooks/ stays as the tests execute it.
WORKSPACE ?= workspace
LAB ?= $(PY) -m jupyter lab

lab: setup  ## the notebooks in JupyterLab, on your own copies in workspace/
	@mkdir -p $(WORKSPACE)
	@for f in notebooks/*.ipynb; do \
	  [ -e "$(WORKSPACE)/$${f##*/}" ] || { cp "$$f" "$(WORKSPACE)/" && echo "copied $$f to $(WORKSPACE)/"; }; \
	done
	$(LAB) $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(WORKSPACE)/

browser-deps:  ## Debian's chromium for the end-to-end browser test (root or sudo)
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Two pytest workers each run a notebook kernel: one torch thread per process keeps two busy
# processes on two cores instead of four threads spinning for them (several times slower).
test: setup browser-deps  ## lint, every lcviz/app test, then every notebook with nbval
	$(PY) -m ruff check .
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile tests notebooks --nbval-lax --nbval-current-env --durations=15

unit: setup  ## the fast lcviz/app tests (no checkpoint reproduction, no browser, no notebooks)
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests -m "not slow"

notebooks: setup  ## re-execute every notebook and store its outputs
	$(PY) -m lcviz.notebooks

checkpoints: setup  ## retrain every recipe into data/
	$(PY) -m lcviz.train all

site: setup  ## the course as a static web site in site/ (open site/index.html; it loads nothing from the internet)
	$(PY) -m lcviz.site --out site

bench: setup  ## benchmarks (numbers for README)
	$(PY) -m lcviz.bench all

bench-longcontext: setup  ## one benchmark of every technique (<= 20 min): data/bench-longcontext.json
	$(PY) -m lcviz.bench longcontext

clean:
	rm -rf .venv site  # never workspace/: it holds the learner's work
