"""Checks of the book's source tree, shared by the book-level tests.

Each function takes the repository root and returns a list of problems, each a sentence naming the
file and what to do, so a failing test says how to fix it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jupytext
import yaml

CHAPTERS = "chapters"

# What may stand at the repository root: the layout in the README, nothing else.
ROOT_ENTRIES = frozenset(
    {
        ".ci",
        ".gitignore",
        "_config.yml",
        "_toc.yml",
        "_ext",
        "references.bib",
        "chapters",
        "kdbook",
        "tests",
        "benchmarks",
        "scripts",
        "requirements.txt",
        "requirements-floor.txt",
        "pyproject.toml",
        "Makefile",
        "README.md",
        "LICENSE",
        "LICENSE-TEXT.md",
    }
)


def root_entries(root: Path) -> list[str]:
    """Top-level names of the files git tracks or would add (untracked, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted({path.split("/", 1)[0] for path in listed if (root / path).exists()})


def root_problems(entries: list[str]) -> list[str]:
    """Files or folders at the repository root that the README's layout does not name."""
    return [
        f"'{name}' at the repository root is not in the README's layout: remove it (an "
        "accidental shell redirect?) or move it where it belongs."
        for name in entries
        if name not in ROOT_ENTRIES
    ]


def toc_entries(root: Path) -> list[str]:
    """All page paths (without suffix) listed in `_toc.yml`, root page first."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                entries.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [
        str(Path(e).with_suffix("")) if Path(e).suffix in {".md", ".ipynb"} else e for e in entries
    ]


def toc_problems(root: Path) -> list[str]:
    """Pages missing from the toc, and toc entries with no page."""
    problems = []
    entries = toc_entries(root)
    listed = set(entries)
    for entry in entries:
        if not any((root / f"{entry}{suffix}").exists() for suffix in (".md", ".ipynb")):
            problems.append(
                f"_toc.yml lists '{entry}' but neither {entry}.md nor {entry}.ipynb exists: "
                "add the page or remove the entry."
            )
    if len(entries) != len(listed):
        dupes = sorted({e for e in entries if entries.count(e) > 1})
        problems.append(f"_toc.yml lists these pages more than once: {dupes}.")
    for page in sorted((root / CHAPTERS).glob("*")):
        if page.suffix not in {".md", ".ipynb"} or page.name.startswith(("_", ".")):
            continue
        entry = f"{CHAPTERS}/{page.stem}"
        if entry not in listed:
            problems.append(
                f"{page.relative_to(root)} is not in _toc.yml: add '- file: {entry}' "
                "to the right part, or the book will not show it."
            )
    return problems


def _is_notebook_md(path: Path) -> bool:
    text = path.read_text()
    return text.startswith("---") and "jupytext:" in text.split("---", 2)[1]


def _cells(notebook) -> list[tuple[str, str, list[str]]]:
    return [
        (c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in notebook.cells
    ]


def notebook_problems(root: Path) -> list[str]:
    """Unpaired notebooks, notebooks with outputs, and pairs out of sync."""
    problems = []
    chapters = root / CHAPTERS
    for md in sorted(chapters.glob("*.md")):
        if _is_notebook_md(md) and not md.with_suffix(".ipynb").exists():
            problems.append(
                f"{md.relative_to(root)} is a notebook with no paired .ipynb: "
                f"run `jupytext --to ipynb {md.relative_to(root)}`."
            )
    for nb_path in sorted(chapters.glob("*.ipynb")):
        rel = nb_path.relative_to(root)
        md = nb_path.with_suffix(".md")
        if not md.exists():
            problems.append(
                f"{rel} has no paired {md.name}: the .md is the source; create it with "
                f"`jupytext --set-formats ipynb,md:myst {rel}`."
            )
            continue
        raw = json.loads(nb_path.read_text())
        dirty = [
            i
            for i, c in enumerate(raw["cells"])
            if c["cell_type"] == "code"
            and (c.get("outputs") or c.get("execution_count") is not None)
        ]
        if dirty:
            problems.append(
                f"{rel} has outputs or execution counts in code cells {dirty}: "
                "strip them with `make sync` (notebooks are committed without outputs)."
            )
        formats = raw.get("metadata", {}).get("jupytext", {}).get("formats", "")
        if "md:myst" not in formats:
            problems.append(
                f"{rel} is not paired with its .md (metadata jupytext.formats is "
                f"'{formats}'): run `jupytext --set-formats ipynb,md:myst {rel}`."
            )
        from_md = _cells(jupytext.read(md))
        from_nb = _cells(jupytext.read(nb_path))
        if from_md != from_nb:
            first = next(
                (i for i, (a, b) in enumerate(zip(from_md, from_nb, strict=False)) if a != b),
                min(len(from_md), len(from_nb)),
            )
            problems.append(
                f"{rel} is out of sync with {md.name} (first difference at cell {first}; "
                f"{len(from_md)} cells in the .md, {len(from_nb)} in the .ipynb): "
                "edit the .md, then run `make sync`."
            )
    return problems
