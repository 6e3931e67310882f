"""Checks of the built HTML book (`make test` runs them after the strict `jupyter-book build`)."""

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def html():
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML}/index.html is missing: build the book first (`make book`).")
    return HTML


def test_every_toc_page_was_built(html):
    from book_checks import toc_entries

    missing = [e for e in toc_entries(ROOT) if not (html / f"{e}.html").exists()]
    assert not missing, f"pages in _toc.yml with no HTML: {missing}"


def test_notebook_pages_have_a_colab_button_pointing_at_their_ipynb(html):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    branch = config["repository"]["branch"]
    notebooks = sorted((ROOT / "chapters").glob("[0-9]*.ipynb"))
    for nb in notebooks:
        page = (html / "chapters" / f"{nb.stem}.html").read_text()
        expected = (
            f"https://colab.research.google.com/github/{repo}/blob/{branch}/chapters/{nb.name}"
        )
        links = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page)
        assert links == [expected], f"{nb.stem}.html: Colab links {links}, expected [{expected}]"


def test_pages_without_a_notebook_have_no_colab_button(html):
    page = (html / "chapters" / "intro.html").read_text()
    assert "colab.research.google.com" not in page


def test_bibliography_is_rendered(html):
    page = (html / "chapters" / "bibliography.html").read_text()
    for author in ["Phuong", "Rahbar", "Harutyunyan", "Jacot", "Frankle"]:
        assert author in page, f"{author} missing from the rendered bibliography"


def test_intro_citations_resolve_to_the_bibliography(html):
    page = (html / "chapters" / "intro.html").read_text()
    assert 'href="bibliography.html#id' in page, "intro citations do not link to the bibliography"
    assert "Hinton" in page and "2015" in page


def test_api_reference_is_rendered_from_docstrings(html):
    page = (html / "chapters" / "appendix_api.html").read_text()
    assert 'id="module-kdbook"' in page, "autodoc did not render the kdbook module"
