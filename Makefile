# Two commands do everything on a fresh machine:
#   make book   set up .venv and build the executed book into _build/html
#   make test   set up .venv and run every check (lint, unit tests, notebooks, strict book build)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdbook-installed
NOTEBOOKS := $(wildcard chapters/[0-9]*.ipynb)
CHAPTER_MDS := $(patsubst %.ipynb,%.md,$(NOTEBOOKS))

.PHONY: setup book test lint unit notebooks seeds book-strict site-tests sync clean help \
	student student-notebooks browser-deps test-floor

help:
	@echo "make book               - build the executed book into _build/html"
	@echo "make test               - lint, unit tests, chapter notebooks, strict book build,"
	@echo "                          student edition, site checks in headless Chromium"
	@echo "make test-floor         - unit tests and chapter 1 on the oldest supported stack"
	@echo "make seeds [CH=04] [N=10] [SEEDS='3 17'] - chapters at many seeds: a pass/fail table"
	@echo "make student            - the book without solutions, in _build/student/html"
	@echo "make student-notebooks  - chapter notebooks without solutions, in _build/student/notebooks"
	@echo "make sync               - after editing a chapter's .md: refresh its .ipynb, no outputs"
	@echo "make clean              - remove _build (keeps .venv)"

# (Re)install only when the pinned stack or the package metadata changed.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build .
	@echo "The book is in _build/html/index.html"

# Each stage in turn, with its seconds printed at the end (also when one fails).
TEST_STAGES := setup lint unit notebooks book-strict student student-notebooks site-tests
test:
	@t0=$$(date +%s); times=""; status=0; \
	for stage in $(TEST_STAGES); do t=$$(date +%s); \
		$(MAKE) --no-print-directory $$stage || { status=$$?; times="$$times  $$stage FAILED\n"; break; }; \
		times="$$times$$(printf '  %-18s %5d s' $$stage $$(( $$(date +%s) - t )))\n"; done; \
	printf "\nmake test, seconds per stage:\n$$times$$(printf '  %-18s %5d s' total $$(( $$(date +%s) - t0 )))\n"; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits with 5 when it collects nothing; that is not a failure here.
# -n auto: pytest-xdist runs test files (and notebooks) on every core; --dist loadfile keeps each
# file on one worker, so its tests share their XLA compilations (a fifth faster than spreading
# them). --doctest-modules kdbook: the examples in the library's docstrings run too.
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not site" -q -n auto --dist loadfile tests kdbook \
		--doctest-modules || [ $$? -eq 5 ]

# Every chapter once, at a seed that changes from commit to commit (KDBOOK_SEED=<n> to choose it);
# the strict book build below runs them at SEED = 0. See scripts/run_chapters.py.
notebooks: $(STAMP)
	$(BIN)/python scripts/run_chapters.py test

# Not in CI: every chapter (or CH=04) at N seeds (default 10: 1..N), or at SEEDS="3 17", in
# parallel over the cores; prints chapter x seed -> pass / the failing assertion, and seconds.
N ?= 10
seeds: $(STAMP)
	$(BIN)/python scripts/run_chapters.py seeds -n $(N) $(if $(CH),--ch "$(CH)") \
		$(if $(SEEDS),--seeds "$(SEEDS)")

# Warnings are errors, with a fresh execution cache so a library edit cannot hide behind old outputs.
book-strict: $(STAMP)
	rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute
	$(BIN)/jupyter-book build . -W -n --keep-going

site-tests: $(STAMP) browser-deps
	$(BIN)/python -m pytest -m site -q || [ $$? -eq 5 ]

# The student edition reuses the normal build's outputs (it needs `make book` or `book-strict`).
student: $(STAMP)
	@test -d _build/.jupyter_cache || $(MAKE) book
	$(BIN)/python scripts/student_edition.py site

student-notebooks: $(STAMP)
	$(BIN)/python scripts/student_edition.py notebooks

# Headless Chromium (Debian's package; browser downloads are impossible here) and a local
# MathJax 3 from the npm registry, which the browser test serves in place of the CDN.
MATHJAX_DIR := .cache/mathjax/package
browser-deps:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "Install Chromium: apt-get install chromium"; exit 1; }
	@test -f $(MATHJAX_DIR)/es5/tex-mml-chtml.js || { mkdir -p .cache/mathjax && \
		cd .cache/mathjax && npm pack --silent mathjax@3.2.2 >/dev/null && \
		tar xzf mathjax-3.2.2.tgz && rm mathjax-3.2.2.tgz; }

# The oldest stack Colab users may have (requirements-floor.txt), in its own environment.
FLOOR := .venv-floor
FLOOR_STAMP := $(FLOOR)/.kdbook-installed
$(FLOOR_STAMP): requirements-floor.txt pyproject.toml
	@test -x $(FLOOR)/bin/python || $(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR)/bin/python -m pip install --quiet -r requirements-floor.txt
	$(FLOOR)/bin/python -m pip install --quiet --no-deps -e .
	@touch $(FLOOR_STAMP)

test-floor: $(FLOOR_STAMP)
	$(FLOOR)/bin/python -c "import jax, flax, optax; print('floor:', jax.__version__, \
		flax.__version__, optax.__version__)"
	$(FLOOR)/bin/python -m pytest -m "not site" -q -n auto --dist loadfile -p no:cacheprovider tests kdbook \
		--doctest-modules
	$(FLOOR)/bin/python scripts/run_chapters.py test chapters/01_distillation_basics.ipynb

# Edit chapters/NN_topic.md, then `make sync` (see scripts/sync_notebooks.py).
sync: $(STAMP)
	$(BIN)/python scripts/sync_notebooks.py

clean:
	rm -rf _build
