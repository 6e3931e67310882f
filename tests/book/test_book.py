"""Book-level tests: the toc matches the pages, and every chapter notebook is a clean jupytext pair.

The checks live in `book_checks.py`; the last tests build broken trees to prove each check fails.
"""

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from book_checks import (
    notebook_problems,
    root_entries,
    root_problems,
    toc_entries,
    toc_problems,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_page_is_in_the_toc_and_every_toc_entry_exists():
    problems = toc_problems(ROOT)
    assert not problems, "\n".join(problems)


def test_every_chapter_notebook_is_paired_stripped_and_in_sync():
    problems = notebook_problems(ROOT)
    assert not problems, "\n".join(problems)


def test_nothing_stands_at_the_root_but_the_readme_layout():
    problems = root_problems(root_entries(ROOT))
    assert not problems, "\n".join(problems)


def test_an_unexpected_file_at_the_root_is_reported():
    (problem,) = root_problems(["README.md", "kdbook", "distances[1.0]"])
    assert "'distances[1.0]' at the repository root" in problem


def test_root_entries_see_untracked_files(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("_build/\n")
    (tmp_path / "_build").mkdir()
    (tmp_path / "_build" / "x").write_text("ignored")
    (tmp_path / "stray,").write_text("oops")
    assert root_entries(tmp_path) == [".gitignore", "stray,"]


def test_toc_has_the_root_and_appendix():
    entries = toc_entries(ROOT)
    assert entries[0] == "chapters/intro"
    assert "chapters/bibliography" in entries and "chapters/appendix_api" in entries


CHAPTER_MD = """---
jupytext:
  formats: ipynb,md:myst
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
x = 1 + 1
```
"""


@pytest.fixture
def tree(tmp_path):
    """A minimal valid book tree with one paired chapter."""
    (tmp_path / "chapters").mkdir()
    shutil.copy(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    for entry in toc_entries(ROOT):
        (tmp_path / f"{entry}.md").write_text("# page\n")
    md = tmp_path / "chapters" / "01_test.md"
    md.write_text(CHAPTER_MD)
    jupytext.write(jupytext.read(md), md.with_suffix(".ipynb"), fmt="ipynb")
    toc = (tmp_path / "_toc.yml").read_text()
    (tmp_path / "_toc.yml").write_text(
        toc.replace(
            "parts:\n",
            "parts:\n  - caption: Test\n    chapters:\n      - file: chapters/01_test\n",
            1,
        )
    )
    assert toc_problems(tmp_path) == [] and notebook_problems(tmp_path) == []
    return tmp_path


def test_a_page_missing_from_the_toc_is_reported(tree):
    (tree / "chapters" / "02_orphan.md").write_text("# orphan\n")
    (problem,) = toc_problems(tree)
    assert "chapters/02_orphan.md is not in _toc.yml" in problem


def test_a_toc_entry_without_a_page_is_reported(tree):
    (tree / "chapters" / "01_test.md").unlink()
    (tree / "chapters" / "01_test.ipynb").unlink()
    (problem,) = toc_problems(tree)
    assert "lists 'chapters/01_test'" in problem


def test_a_notebook_with_outputs_is_reported(tree):
    path = tree / "chapters" / "01_test.ipynb"
    nb = json.loads(path.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["2\n"]}]
    code["execution_count"] = 1
    path.write_text(json.dumps(nb))
    (problem,) = notebook_problems(tree)
    assert "01_test.ipynb has outputs" in problem and "make sync" in problem


def test_a_notebook_out_of_sync_is_reported(tree):
    md = tree / "chapters" / "01_test.md"
    md.write_text(md.read_text().replace("x = 1 + 1", "x = 1 + 2"))
    (problem,) = notebook_problems(tree)
    assert "01_test.ipynb is out of sync with 01_test.md" in problem


def test_an_unpaired_notebook_is_reported(tree):
    (tree / "chapters" / "01_test.md").unlink()
    problems = notebook_problems(tree)
    assert any("01_test.ipynb has no paired 01_test.md" in p for p in problems)


def _run_chapters(monkeypatch, tmp_path):
    """scripts/run_chapters.py as a module, writing its seeded copies under tmp_path."""
    spec = importlib.util.spec_from_file_location(
        "run_chapters", ROOT / "scripts" / "run_chapters.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "SEEDED", tmp_path / "seeded")
    return module


def test_the_test_seed_is_injected_right_after_the_parameters_cell(monkeypatch, tmp_path):
    run_chapters = _run_chapters(monkeypatch, tmp_path)
    notebook = ROOT / "chapters" / "01_distillation_basics.ipynb"
    copy = nbformat.read(run_chapters.with_seed(notebook, 4321), as_version=4)
    original = nbformat.read(notebook, as_version=4)
    (at,) = [i for i, c in enumerate(copy.cells) if "parameters" in c.metadata.get("tags", [])]
    injected = copy.cells[at + 1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert "SEED = 4321" in injected.source
    assert [c.source for c in copy.cells[: at + 1] + copy.cells[at + 2 :]] == [
        c.source for c in original.cells
    ]
    assert "seed-4321" in str(run_chapters.with_seed(notebook, 4321))


def test_a_notebook_without_a_parameters_cell_is_refused(monkeypatch, tmp_path):
    run_chapters = _run_chapters(monkeypatch, tmp_path)
    path = tmp_path / "01_test.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("SEED = 0")]), path)
    with pytest.raises(SystemExit, match="exactly one cell tagged 'parameters'"):
        run_chapters.with_seed(path, 1)


def test_the_test_seed_comes_from_the_environment_or_the_commit(monkeypatch, tmp_path):
    run_chapters = _run_chapters(monkeypatch, tmp_path)
    monkeypatch.setenv("KDBOOK_SEED", "17")
    assert run_chapters.test_seed() == 17
    monkeypatch.delenv("KDBOOK_SEED")
    seed = run_chapters.test_seed()
    assert seed == run_chapters.test_seed() and 1 <= seed < 1_000_000


def _set_repository():
    spec = importlib.util.spec_from_file_location(
        "set_repository", ROOT / "scripts" / "set_repository.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_repository_address_agrees_with_the_config():
    set_repository = _set_repository()
    assert len(set_repository.occurrences(ROOT)) >= 5  # config, README, pyproject, chapters
    problems = set_repository.problems(ROOT)
    assert not problems, "\n".join(problems)


def test_set_repository_moves_every_address_and_the_check_sees_a_straggler(tmp_path):
    set_repository = _set_repository()
    (tmp_path / "chapters").mkdir()
    for path in set_repository.files(ROOT):
        shutil.copy(path, tmp_path / path.relative_to(ROOT))
    before = len(set_repository.occurrences(tmp_path))
    assert set_repository.main(["https://github.com/someone/kd-fork"], root=tmp_path) == 0
    after = set_repository.occurrences(tmp_path)
    assert len(after) == before and {(o, n) for *_, o, n in after} == {("someone", "kd-fork")}
    assert set_repository.problems(tmp_path) == []
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text() + "\nSee https://github.com/kdbook/kdbook.\n")
    (problem,) = set_repository.problems(tmp_path)
    assert problem.startswith("README.md:") and "set_repository.py" in problem


def _find_macros(node):
    """The MathJax macros of _config.yml (under any key named ``macros``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "macros" and isinstance(value, dict):
                return list(value)
            found = _find_macros(value)
            if found:
                return found
    return []


def _mathjax_in_code(text: str, macros: list[str]) -> list[str]:
    """Lines of code cells with a string literal that uses one of the book's MathJax macros."""
    pattern = re.compile(r"\\(" + "|".join(m for m in macros if len(m) > 1) + r")(?![A-Za-z])")
    found, in_code = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```{code-cell}"):
            in_code = True
        elif line.startswith("```"):
            in_code = False
        elif in_code and not line.lstrip().startswith("#") and pattern.search(line):
            if re.search(r"""["'][^"']*\$[^"']*\\""", line):
                found.append(f"{number}: {line.strip()}")
    return found


def test_no_figure_label_uses_a_mathjax_only_macro():
    """Matplotlib's mathtext knows no book macro (\\Tmp, \\norm...): a label using one fails only
    when the figure is drawn, after the cell has run, so the notebook test would not see it."""
    macros = _find_macros(yaml.safe_load((ROOT / "_config.yml").read_text()))
    assert "Tmp" in macros
    offenders = {
        md.name: lines
        for md in sorted((ROOT / "chapters").glob("[0-9]*.md"))
        if (lines := _mathjax_in_code(md.read_text(), macros))
    }
    assert not offenders, offenders
    broken = '```{code-cell} ipython3\nax.set(xlabel=r"temperature $\\Tmp$")\n```\n'
    assert _mathjax_in_code(broken, macros) == ['2: ax.set(xlabel=r"temperature $\\Tmp$")']
    assert _mathjax_in_code(broken.replace("\\Tmp", "T"), macros) == []
