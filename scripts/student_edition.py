"""Build the student edition: the book and its chapter notebooks with every solution removed.

    python scripts/student_edition.py site        # -> _build/student/html (after `make book`)
    python scripts/student_edition.py notebooks   # -> _build/student/notebooks/*.ipynb

Solutions are written as gated blocks (``solution-start`` ... ``solution-end``, the form that can
hold code cells); each block, text and code, is cut from a copy of the sources, and any other
solution syntax is refused, so nothing can slip through. The exercises stay.

The student site is not executed again: each chapter's outputs are copied from the normal
edition's execution cache, cell by cell, so it needs an up-to-date normal build. It has no Colab
buttons, since those open the repository's notebooks, which contain the solutions: hand out the
student notebooks instead. The normal edition is not touched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "student"
SOURCE = OUT / "src"
GATED = re.compile(r"^```\{solution-start\}.*?^```\{solution-end\}\n```\n?", re.S | re.M)
ANY_SOLUTION = re.compile(r"\{solution(-start|-end)?\}")


def strip_solutions(text: str, name: str = "<text>") -> str:
    """Remove every gated solution block; refuse any other solution syntax."""
    stripped = GATED.sub("", text)
    leftover = ANY_SOLUTION.search(stripped)
    if leftover:
        line = stripped[: leftover.start()].count("\n") + 1
        raise ValueError(
            f"{name}:{line}: a solution not written as a gated solution-start/"
            "solution-end block; rewrite it in that form"
        )
    return stripped


def _chapter_sources() -> list[Path]:
    return sorted((ROOT / "chapters").glob("*.md"))


def _is_notebook(md: Path) -> bool:
    return bool(re.match(r"\d\d_", md.name))


def _executed_without_solutions(md: Path):
    """The chapter as a notebook without solutions, carrying the normal build's outputs."""
    from jupyter_cache import get_cache

    full = jupytext.read(md)
    try:
        _, executed = get_cache(ROOT / "_build" / ".jupyter_cache").merge_match_into_notebook(full)
    except KeyError:
        raise SystemExit(
            f"{md.relative_to(ROOT)} has no up-to-date outputs in the normal "
            "build's cache: run `make book` first"
        ) from None
    outputs = [(c.source, c.get("outputs", [])) for c in executed.cells if c.cell_type == "code"]
    student = jupytext.reads(strip_solutions(md.read_text(), md.name), fmt="md:myst")
    position = 0
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        while outputs[position][0] != cell.source:  # skip the solutions' code cells
            position += 1
        cell.outputs = outputs[position][1]
        position += 1
    student.metadata.pop("jupytext", None)
    return student


def write_sources() -> None:
    """Copy the book's sources to _build/student/src with solutions stripped."""
    if SOURCE.exists():
        shutil.rmtree(SOURCE)
    (SOURCE / "chapters").mkdir(parents=True)
    for name in ["_toc.yml", "references.bib"]:
        shutil.copy(ROOT / name, SOURCE / name)
    shutil.copytree(ROOT / "_ext", SOURCE / "_ext", dirs_exist_ok=True)
    if (ROOT / "chapters" / "_static").exists():
        shutil.copytree(
            ROOT / "chapters" / "_static", SOURCE / "chapters" / "_static", dirs_exist_ok=True
        )
    config = (ROOT / "_config.yml").read_text()
    title = "Knowledge Distillation in the Kernel Regime"
    config = config.replace(f'title: "{title}"', f'title: "{title} (student edition)"')
    config = re.sub(r'  colab_url: "[^"]*"', '  colab_url: ""', config)
    config = config.replace("  execute_notebooks: cache", '  execute_notebooks: "off"')
    config = config.replace('  - "chapters/*.ipynb"', '  - "chapters/*.md.unused"')
    (SOURCE / "_config.yml").write_text(config)
    for md in _chapter_sources():
        if _is_notebook(md):
            jupytext.write(
                _executed_without_solutions(md),
                SOURCE / "chapters" / f"{md.stem}.ipynb",
                fmt="ipynb",
            )
        else:
            text = strip_solutions(md.read_text(), str(md.relative_to(ROOT)))
            (SOURCE / "chapters" / md.name).write_text(text)


def build_site() -> None:
    write_sources()
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run(
        [str(jupyter_book), "build", str(SOURCE), "-W", "-n", "--keep-going"], check=True
    )
    target = OUT / "html"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SOURCE / "_build" / "html", target)
    print(f"The student edition is in {target / 'index.html'}")


def write_notebooks() -> None:
    target = OUT / "notebooks"
    target.mkdir(parents=True, exist_ok=True)
    for md in _chapter_sources():
        if not _is_notebook(md):
            continue
        notebook = jupytext.reads(strip_solutions(md.read_text(), md.name), fmt="md:myst")
        notebook.metadata.pop("jupytext", None)  # a handed-out file, not a jupytext pair
        jupytext.write(notebook, target / f"{md.stem}.ipynb", fmt="ipynb")
    print(f"Student notebooks are in {target}")


if __name__ == "__main__":
    commands = {"site": build_site, "notebooks": write_notebooks}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python {sys.argv[0]} {{site|notebooks}}")
    commands[sys.argv[1]]()
