"""The student edition (`make student`, `make student-notebooks`) contains no solution.

Every solution's text and code, reduced to letters and digits, must be absent from the student
site and notebooks; the same search over the normal edition must find it, so the check can fail.
"""

import html
import importlib.util
import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[2]
STUDENT = ROOT / "_build" / "student"
GATED = re.compile(r"^```\{solution-start\}.*?^```\{solution-end\}\n```\n?", re.S | re.M)


def _letters(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _solution_lines() -> dict[str, list[str]]:
    """Lines found only in solutions, by chapter, reduced to letters and digits."""
    lines = {}
    for md in sorted((ROOT / "chapters").glob("[0-9]*.md")):
        text = md.read_text()
        elsewhere = _letters(GATED.sub("\n", text))
        found = []
        for block in GATED.findall(text):
            for line in block.splitlines():
                reduced = _letters(line)
                if (
                    not line.startswith(("```", ":"))
                    and len(reduced) >= 20
                    and reduced not in elsewhere
                ):
                    found.append(reduced)
        lines[md.stem] = found
    assert any(lines.values()), "no chapter has a solution: the check would prove nothing"
    return lines


def _page_text(path: Path) -> str:
    return _letters(html.unescape(re.sub(r"<[^>]+>", "", path.read_text())))


def _notebook_text(path: Path) -> str:
    return _letters("\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]))


def _leaks(lines, text):
    return [line for line in lines if line in text]


def test_student_site_has_exercises_and_figures_but_no_solutions():
    if not (STUDENT / "html" / "index.html").exists():
        pytest.fail("the student site is missing: run `make student`")
    for chapter, lines in _solution_lines().items():
        student_page = STUDENT / "html" / "chapters" / f"{chapter}.html"
        content = student_page.read_text()
        assert "solution" not in re.findall(r'class="([^"]*)"', content), chapter
        assert 'class="exercise' in content or not lines, f"{chapter}: exercises are missing"
        assert "<img" in content, f"{chapter}: the student page lost its figures"
        leaked = _leaks(lines, _page_text(student_page))
        assert not leaked, f"{chapter}: solution text in the student site: {leaked[:3]}"
        normal = ROOT / "_build" / "html" / "chapters" / f"{chapter}.html"
        if normal.exists() and lines:  # the same search finds the solutions in the normal edition
            assert len(_leaks(lines, _page_text(normal))) > len(lines) // 2, chapter


def test_student_notebooks_have_no_solutions():
    for chapter, lines in _solution_lines().items():
        notebook = STUDENT / "notebooks" / f"{chapter}.ipynb"
        if not notebook.exists():
            pytest.fail(f"{notebook} is missing: run `make student-notebooks`")
        cells = json.loads(notebook.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code")
        leaked = _leaks(lines, _notebook_text(notebook))
        assert not leaked, f"{chapter}: solution text in the student notebook: {leaked[:3]}"
        original = _notebook_text(ROOT / "chapters" / f"{chapter}.ipynb")
        assert len(_leaks(lines, original)) == len(lines), f"{chapter}: the check cannot fail"


def test_a_solution_in_another_syntax_is_refused():
    spec = importlib.util.spec_from_file_location(
        "student_edition", ROOT / "scripts" / "student_edition.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gated = "a\n```{solution-start} ex\n:class: dropdown\n```\nsecret\n```{solution-end}\n```\nb\n"
    assert module.strip_solutions(gated) == "a\nb\n"
    with pytest.raises(ValueError, match="gated"):
        module.strip_solutions("````{solution} ex\nsecret\n````\n", "x.md")
