# genni: every target sets up its own virtual environment from nothing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
GENNI  := $(VENV)/bin/genni
# torch is pinned where we install it: a CPU build these machines hold locally
# (an unpinned torch pulls a several-GB CUDA build). The code runs on torch >= 2.2.
TORCH  ?= torch==2.13.0

.PHONY: install test test-load figures docs bench stress lint clean experiments hidden_symmetries genni_toy equivalent_paths ricci_accuracy layer_paths lenet underspecification

# experiment scripts (experiments/*.py): runs/<name>/, figures/<name>/ and figures/<name>/results.md;
# minutes on 2 cores by default, ARGS=--full for the published scale
EXPERIMENTS := hidden_symmetries genni_toy equivalent_paths ricci_accuracy layer_paths lenet underspecification
experiments: $(EXPERIMENTS)

hidden_symmetries: install
	$(PY) experiments/hidden_symmetries.py $(ARGS)

genni_toy: install
	$(PY) experiments/genni_toy.py $(ARGS)

equivalent_paths: install
	$(PY) experiments/equivalent_paths.py $(ARGS)

ricci_accuracy: install
	$(PY) experiments/ricci_accuracy.py $(ARGS)

layer_paths: install
	$(PY) experiments/layer_paths.py $(ARGS)

lenet: install
	$(PY) experiments/lenet.py $(ARGS)

underspecification: install
	$(PY) experiments/underspecification.py $(ARGS)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# the documentation packages (mkdocs, mkdocs-material, mkdocstrings) on top of install; test does not need them
$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,docs]'
	touch $@

# the suite on JOBS worker processes (pytest-xdist), each test file on one worker so module fixtures run once
JOBS ?= 2
test: install
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile

# the built-in default experiment (moons, 2-16-16-1 ReLU): run file + figures
figures: install
	$(GENNI) run -o runs/moons_relu.h5 --figures figures/moons_relu

# the documentation site into site/ (open site/index.html); --strict: a broken link, anchor or API
# cross-reference, or a docstring mkdocstrings cannot parse, fails the build
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: install
	$(PY) benchmarks/bench_search.py
	$(PY) benchmarks/bench_grid.py
	$(PY) benchmarks/bench_paths.py
	$(PY) benchmarks/bench_paths.py --widths 2,32,32,32,2 --out paths_wide
	$(PY) benchmarks/bench_ricci.py
	$(PY) benchmarks/bench_walk.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_crash.py

# the whole suite three times in a row while a burner keeps every core busy (about 2 hours here)
test-load: install
	$(PY) -m tools.under_load --runs 3 --jobs $(JOBS)

# kill -9 at 20 random moments for find, walk, project and sweep on real processes (about 15 minutes)
stress: install
	$(PY) -m tools.stress_crash

lint: install
	$(VENV)/bin/ruff check genni tests benchmarks experiments

clean:
	rm -rf $(VENV) runs figures site build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
