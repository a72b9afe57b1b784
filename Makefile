# adlib: every command sets up what it needs. `make reproduce` regenerates the figures, `make test` tests.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.adlib-installed
PROFILE ?= synthetic
# `make reproduce PROFILE=paper` without DATA fetches MVTec AD (and the ImageNet weights) first.
ifeq ($(PROFILE)-$(origin DATA),paper-undefined)
DATA := data/mvtec_ad
FETCH := yes
endif
DATA ?= data/synthetic
export ADLIB_CACHE_DIR ?= $(CURDIR)/cache
export PYTHONHASHSEED := 0

.PHONY: setup data data-quick data-loco lint test exercises test-lab test-explore book test-book reproduce lab explore bench bench-load lock clean

setup: $(STAMP)

# The project virtualenv with the exact versions of requirements.lock, the adlib package (editable)
# and a Jupyter kernel named `adlib`. Re-made only when the lock file or pyproject.toml change.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	$(BIN)/python -m ipykernel install --sys-prefix --name adlib --display-name "Python (adlib)" >/dev/null
	touch $@

# The embedded benchmark (MVTec AD layout) and its LOCO-style scenes (MVTec LOCO AD's layout, their own root as
# LOCO has its own), deterministic: re-made only when the generator changes.
data: data/synthetic/README.md data/synthetic-loco/README.md
data/synthetic/README.md: $(wildcard adlib/synth/*.py) | $(STAMP)
	$(BIN)/python -m adlib.synth --out data/synthetic

# Quick mode (make test, make test-lab) runs on a smaller copy of the benchmark: the same generator and seed
# with synth 1.1's test split (20 good and 40 defective images per category), byte for byte those images of
# data/synthetic, so that the notebooks' quick runs stay quick; another DATA is used as it is.
ifeq ($(DATA),data/synthetic)
QUICK_DATA := data/synthetic-quick
else
QUICK_DATA := $(DATA)
endif
LOCO_DATA ?= data/synthetic-loco
ifeq ($(LOCO_DATA),data/synthetic-loco)
QUICK_LOCO := data/synthetic-loco-quick
else
QUICK_LOCO := $(LOCO_DATA)
endif
data-quick: data/synthetic-quick/README.md data/synthetic-loco-quick/README.md
data/synthetic-quick/README.md: $(wildcard adlib/synth/*.py) | $(STAMP)
	$(BIN)/python -m adlib.synth --out data/synthetic-quick --n-test-good 20 --n-test-defect 40
# ... and of the LOCO-style scenes (adlib.synth.loco.QUICK_COUNTS: the first images of each split of data/synthetic-loco).
data/synthetic-loco-quick/README.md: $(wildcard adlib/synth/*.py) | $(STAMP)
	$(BIN)/python -m adlib.synth --layout loco --quick --out data/synthetic-loco-quick

# The LOCO-style companion benchmark (adlib.synth.loco): scenes of several parts with logical and structural
# anomalies in MVTec LOCO AD's layout, in its own root like LOCO itself (kc_table2_logical's loco_root; part of make
# data). LOCO_DATA: the root the notebooks get (MVTec LOCO AD for PROFILE=paper: python -m adlib fetch mvtec_loco).
data-loco: data/synthetic-loco/README.md
data/synthetic-loco/README.md: $(wildcard adlib/synth/*.py) | $(STAMP)
	$(BIN)/python -m adlib.synth --layout loco --out data/synthetic-loco

# Unit and end-to-end tests, then every notebook in quick mode under nbval (prepared by papermill);
# PROFILE=paper DATA=/path/to/mvtec runs the notebooks' quick mode on MVTec AD with WideResNet-50.
# TEST_WORKERS=N: pytest-xdist workers (default 2, one per core, one thread each; a notebook stays on one worker).
TEST_WORKERS ?= 2
QUICK_LOCO_DATA := $(if $(filter data/synthetic-loco-quick,$(QUICK_LOCO)),data/synthetic-loco-quick/README.md)
test: lint $(STAMP) $(if $(filter data/synthetic-quick,$(QUICK_DATA)),data-quick) $(QUICK_LOCO_DATA)
	$(BIN)/python scripts/prepare_notebooks.py --profile $(PROFILE) --data $(QUICK_DATA) --loco-data $(QUICK_LOCO) \
		--out build/nbval
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile tests build/nbval --nbval-lax \
		--nbval-kernel-name adlib

# Every notebook's "Try it yourself" exercises in quick mode, each checked on its own run (adlib.companion.exercises):
# fails, naming them, when an exercise's outcome is not the one its text expects; the table (notebook, exercise,
# status, seconds) in build/exercises/exercises.md. NB=name runs one notebook's; TEST_WORKERS as for make test.
exercises: $(STAMP) $(if $(filter data/synthetic-quick,$(QUICK_DATA)),data-quick) $(QUICK_LOCO_DATA)
	OMP_NUM_THREADS=1 $(BIN)/python scripts/run_exercises.py --profile $(PROFILE) --data $(QUICK_DATA) \
		--loco-data $(QUICK_LOCO) --out build/exercises --workers $(TEST_WORKERS) $(if $(NB),--notebook $(NB))

# ruff (pinned in requirements.lock, configured in pyproject.toml): lint, import order and format, whole tree.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# JupyterLab in headless Chromium (Debian's chromium + chromium-driver): runs 00_quickstart and 01_explore
# in quick mode on the adlib kernel, checks the outputs, moves one widget; screenshots in build/test-lab/.
test-lab: $(STAMP) $(if $(filter data/synthetic-quick,$(QUICK_DATA)),data-quick)
	$(BIN)/python scripts/test_lab.py --profile $(PROFILE) --data $(QUICK_DATA) --out build/test-lab

# The explorer app (make explore) in headless Chromium: Voilà on a quick-mode copy, waits for the panel's first
# update, moves the coreset share slider and waits for the next; screenshots and the server's log in build/test-explore/.
test-explore: $(STAMP) $(if $(filter data/synthetic-quick,$(QUICK_DATA)),data-quick)
	$(BIN)/python scripts/test_explore.py --profile $(PROFILE) --data $(QUICK_DATA) --out build/test-explore

# The course site in build/book/ (Sphinx, myst-nb, sphinx-book-theme; book/conf.py): every notebook as a page, in
# the order of figures/index.md, built from notebooks/executed/ where `make reproduce` left a copy, else from the
# committed notebook; nothing is executed. Warnings (a missing image, a broken reference) fail the build.
book: $(STAMP)
	$(BIN)/python scripts/book.py --out build/book

# The built site in headless Chromium: every page, failing on console errors, broken images, links or anchors,
# untypeset formulas and empty pages; screenshots in build/test-book/. Run `make book` first.
test-book: $(STAMP)
	$(BIN)/python scripts/test_book.py --book build/book --out build/test-book

# JOBS=N runs N notebooks at a time (default 2: the 2-core budget; timing notebooks run alone); an interrupted
# run resumes (only changed notebooks re-run; FORCE=1: all). SCALE=full: every category, 5 seeds (hours).
JOBS ?= 2
reproduce: $(STAMP) data
	$(if $(FETCH),$(BIN)/python -m adlib fetch mvtec_ad --to $(DATA))
	$(if $(FETCH),$(BIN)/python -m adlib fetch weights)
	$(BIN)/python scripts/reproduce.py --profile $(PROFILE) --data $(DATA) --loco-data $(LOCO_DATA) \
		$(if $(NB),--notebook $(NB)) \
		$(if $(JOBS),--jobs $(JOBS)) $(if $(FORCE),--force) $(if $(SCALE),--scale $(SCALE)) \
		$(if $(STAGES),--stage-profile $(STAGES))

lab: $(STAMP) data
	$(BIN)/jupyter lab --notebook-dir=notebooks

# The explorer alone in the browser, no code and no JupyterLab (app/explore.ipynb served by Voilà on the adlib
# kernel, scripts/explore.py): prints its address (127.0.0.1, port 8866 or the next free one, a token) and opens it.
explore: $(STAMP) data
	$(BIN)/python scripts/explore.py --profile $(PROFILE) --data $(DATA)

# Speed reports (medians, ratios against reference loops measured in the same run): figures/bench_*.md (exact
# search: faiss against the bfloat16 screen in bench_search.md),
# and figures/bench.md (+ .csv, bench_scaling.png): adlib's PatchCore side by side with anomalib's (run from
# its own virtualenv) on the full training sets, the scaling sweep on a bench-only category with more
# training images, and the reference loops. Run it on an idle machine (~80-92 min on 2 cores with the 600 s
# cap, benchmarks/NOTES.md); the report flags a load average above 0.5 per core before make bench's first
# step (bench-load, listed first, reads it before any prerequisite is built). BENCH_FLAGS=--quick for a
# smoke test of the plumbing.
BENCH_LARGE := build/bench/large
BENCH_LOAD := build/bench/load-at-start.txt
bench: bench-load $(STAMP) data build/anomalib-venv/.installed $(BENCH_LARGE)/README.md
	$(BIN)/python benchmarks/features.py --data $(DATA) --out figures/bench_features.md
	$(BIN)/python benchmarks/coreset_search.py --out figures/bench_coreset.md
	$(BIN)/python benchmarks/screened_search.py --data $(DATA) --out figures/bench_search.md
	$(BIN)/python benchmarks/anomalib_vs_adlib.py --data $(DATA) --sweep-data $(BENCH_LARGE) --sweep-category pill \
		--anomalib-python build/anomalib-venv/bin/python --load-at-start $(BENCH_LOAD) --out figures/bench.md \
		$(BENCH_FLAGS)

# The load average before make bench does anything (UTC time, then /proc/loadavg), for bench.md's idle flag.
bench-load:
	mkdir -p $(dir $(BENCH_LOAD))
	{ date -u +%Y-%m-%dT%H:%M:%SZ; cat /proc/loadavg; } > $(BENCH_LOAD)

# The bench-only category of the scaling sweep: pill with 240 training images and a small test set.
$(BENCH_LARGE)/README.md: $(wildcard adlib/synth/*.py) | $(STAMP)
	$(BIN)/python -m adlib.synth --out $(BENCH_LARGE) --categories pill --n-train 240 --n-test-good 4 \
		--n-test-defect 10 --no-progress

# The separate virtualenv with anomalib for `make bench` only (never the project's dependencies, never CI).
build/anomalib-venv/.installed: benchmarks/anomalib-requirements.txt
	$(PYTHON) -m venv build/anomalib-venv
	build/anomalib-venv/bin/python -m pip install --quiet --requirement benchmarks/anomalib-requirements.txt
	touch $@

# Re-pin requirements.lock from a working virtualenv (after changing a dependency on purpose).
lock: $(STAMP)
	{ echo "# Exact versions of the project virtualenv; made by 'make lock'."; \
	  $(BIN)/python -m pip freeze --exclude-editable --all | grep -v -E '^(pip|adlib)=='; } > requirements.lock

# Removes the feature cache and the result store (cache/results, or $ADLIB_CACHE_DIR/results and
# $ADLIB_STORE_DIR where those are set), so that the next run recomputes everything.
clean:
	rm -rf cache notebooks/executed .pytest_cache "$(ADLIB_CACHE_DIR)/results" $(if $(ADLIB_STORE_DIR),"$(ADLIB_STORE_DIR)")
