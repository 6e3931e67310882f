# Two commands do everything on a fresh machine:
#   make book   set up .venv and build the executed book into _build/html
#   make test   set up .venv and run every check (lint, unit tests, notebooks, strict book build)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdbook-installed
NOTEBOOKS := $(wildcard chapters/[0-9]*.ipynb)
CHAPTER_MDS := $(patsubst %.ipynb,%.md,$(NOTEBOOKS))

.PHONY: setup book test lint unit notebooks book-strict site-tests sync clean help

help:
	@echo "make book   - build the executed book into _build/html"
	@echo "make test   - lint, unit tests, every chapter notebook, strict book build, site checks"
	@echo "make sync   - after editing a chapter's .md: update its paired .ipynb and strip outputs"
	@echo "make clean  - remove _build (keeps .venv)"

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

test: lint unit notebooks book-strict site-tests

lint: $(STAMP)
	$(BIN)/ruff check .

# pytest exits with 5 when it collects nothing; that is not a failure here.
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not site" -q || [ $$? -eq 5 ]

notebooks: $(STAMP)
ifneq ($(NOTEBOOKS),)
	$(BIN)/python -m pytest --nbmake --nbmake-timeout=600 -q -p no:cacheprovider \
		-o filterwarnings= $(NOTEBOOKS)
else
	@echo "No chapter notebooks yet: nothing for nbmake to run."
endif

# Warnings are errors, with a fresh execution cache so a library edit cannot hide behind old outputs.
book-strict: $(STAMP)
	rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute
	$(BIN)/jupyter-book build . -W -n --keep-going

site-tests: $(STAMP)
	$(BIN)/python -m pytest -m site -q || [ $$? -eq 5 ]

# Edit chapters/NN_topic.md, then `make sync`: --sync takes in edits made to the .ipynb (e.g. in
# Colab), then the .ipynb is rewritten from the .md without outputs.
sync: $(STAMP)
	@for md in $(wildcard chapters/[0-9]*.md); do \
		$(BIN)/jupytext --quiet --sync "$$md" && $(BIN)/jupytext --quiet --to ipynb "$$md" || exit 1; \
	done

clean:
	rm -rf _build
