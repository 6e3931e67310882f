"""Refresh each chapter's paired notebook from its MyST source: `make sync`.

For every ``chapters/NN_*.md``: ``jupytext --sync`` first takes in edits made to the ``.ipynb``
(for example in Colab), then the ``.ipynb`` is rewritten from the ``.md`` without outputs or
execution counts. Cell ids of unchanged cells are kept, so an edit changes only the cells it
touches in the notebook's diff.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]


def sync(md: Path) -> None:
    jupytext_cli = Path(sys.executable).with_name("jupytext")
    subprocess.run([str(jupytext_cli), "--quiet", "--sync", str(md)], check=True)
    notebook = jupytext.read(md)
    path = md.with_suffix(".ipynb")
    old_ids = defaultdict(list)
    if path.exists():
        for cell in nbformat.read(path, as_version=4).cells:
            old_ids[(cell.cell_type, cell.source)].append(cell.get("id"))
    for cell in notebook.cells:
        ids = old_ids.get((cell.cell_type, cell.source))
        if ids:
            cell["id"] = ids.pop(0)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    jupytext.write(notebook, path, fmt="ipynb")


if __name__ == "__main__":
    for md in sorted((ROOT / "chapters").glob("[0-9]*.md")):
        sync(md)
