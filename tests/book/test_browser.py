"""The built site as readers meet it: every page opened in headless Chromium.

Fails on a JavaScript error, math left untypeset, an image that did not load, an internal link to
a missing page or anchor, or a notebook page whose Colab button does not open that chapter's
notebook. Saves screenshots under ``_build/screenshots/`` for review.

Needs Debian's Chromium (``apt-get install chromium``) and a local MathJax 3 (``make
browser-deps`` fetches it from the npm registry): the site loads MathJax from a CDN, and the test
machine has no network, so those requests are answered from the local copy. Every other request
that leaves the site is blocked.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("KDBOOK_CHROMIUM", "/usr/bin/chromium")
MATHJAX = Path(os.environ.get("KDBOOK_MATHJAX", ROOT / ".cache" / "mathjax" / "package"))
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _pages() -> list[str]:
    """Every page of the book (relative paths), from the toc."""
    from book_checks import toc_entries

    return [f"{entry}.html" for entry in toc_entries(ROOT)]


def _notebook_pages() -> set[str]:
    return {f"chapters/{nb.stem}.html" for nb in (ROOT / "chapters").glob("[0-9]*.ipynb")}


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML}/index.html is missing: build the book first (`make book`).")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package (`apt-get "
            "install chromium`, or `make browser-deps`), or set KDBOOK_CHROMIUM."
        )
    if not (MATHJAX / "es5" / "tex-mml-chtml.js").exists():
        pytest.fail(f"no local MathJax 3 in {MATHJAX}: run `make browser-deps`.")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield chromium
    chromium.close()
    playwright.stop()


def _route(site: str, route) -> None:
    url = route.request.url
    if url.startswith(MATHJAX_CDN):
        local = MATHJAX / urlparse(url).path.split("/mathjax@3/", 1)[1]
        if local.is_file():
            content_type = "application/javascript" if local.suffix == ".js" else None
            route.fulfill(path=str(local), content_type=content_type)
            return
    if url.startswith(site):
        route.continue_()
    else:
        route.abort()


# Typesetting is checked on the text a reader sees: code and program output are excluded.
VISIBLE_PROSE = """() => {
  const main = document.querySelector('main') || document.body;
  const copy = main.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, mjx-container, .MathJax, .highlight,'
                        + ' .cell_output').forEach(e => e.remove());
  return copy.innerText;
}"""
BROKEN_IMAGES = """async () => {
  const images = [...document.images];
  images.forEach(i => { i.loading = 'eager'; });
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  return images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
}"""
WAIT_FOR_MATHJAX = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    return document.querySelectorAll('mjx-container').length;
  }
  return -1;
}"""
UNTYPESET = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\s][^$]*\$")


def test_every_page_renders_cleanly_in_chromium(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", functools.partial(_route, site))
    problems = []
    for path in _pages():
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
        page.on(
            "console",
            lambda message, errors=errors: (
                errors.append(message.text)
                if message.type == "error" and "net::ERR_FAILED" not in message.text
                else None
            ),
        )
        page.goto(site + path, wait_until="load")
        typeset = page.evaluate(WAIT_FOR_MATHJAX)
        if typeset < 0 and page.locator(".math").count():
            problems.append(f"{path}: the page has math but MathJax did not load")
        raw = UNTYPESET.findall(page.evaluate(VISIBLE_PROSE))
        if raw:
            problems.append(f"{path}: math left untypeset: {raw[:3]}")
        broken = page.evaluate(BROKEN_IMAGES)
        if broken:
            problems.append(f"{path}: images that did not load: {broken}")
        if errors:
            problems.append(f"{path}: JavaScript errors: {errors[:3]}")
        colab = page.eval_on_selector_all(
            "a[href*='colab.research.google.com']", "links => links.map(a => a.href)"
        )
        if path in _notebook_pages():
            expected = _colab_url(Path(path).with_suffix(".ipynb"))
            if set(colab) != {expected}:
                problems.append(f"{path}: Colab links {colab}, expected {expected}")
        elif colab:
            problems.append(f"{path}: a Colab button on a page with no notebook: {colab}")
        if path in SCREENSHOT_PAGES:
            page.screenshot(path=str(SCREENSHOTS / f"{Path(path).stem}.png"))
        page.close()
    context.close()
    assert not problems, "\n".join(problems)


SCREENSHOT_PAGES = ("chapters/intro.html", "chapters/01_distillation_basics.html")


# The contrast of an element's text with the first opaque background behind it (WCAG 2 formula).
CONTRAST = """selector => {
  const rgba = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92
                                                   : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c;
    }
    return [255, 255, 255];
  };
  return [...document.querySelectorAll(selector)].filter(el => el.offsetParent !== null)
    .slice(0, 20).map(el => {
      const [a, b] = [luminance(rgba(getComputedStyle(el).color)), luminance(background(el))];
      return [el.tagName, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
    });
}"""


def test_dark_mode_text_is_readable(site, browser):
    """In the theme's dark mode, prose, code and outputs keep a WCAG AA contrast (>= 4.5) with
    their background; screenshots scrolled to the first figure are kept for review."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    context.add_init_script(
        "localStorage.setItem('mode', 'dark'); localStorage.setItem('theme', 'dark');"
    )
    context.route("**/*", functools.partial(_route, site))
    problems = []
    for path in SCREENSHOT_PAGES:
        page = context.new_page()
        page.goto(site + path, wait_until="load")
        page.evaluate(WAIT_FOR_MATHJAX)
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        for selector in ("article p", "article li", "div.cell_input pre", "div.cell_output pre"):
            for tag, ratio in page.evaluate(CONTRAST, selector):
                if ratio < 4.5:
                    problems.append(f"{path}: {selector} ({tag}) contrast {ratio:.2f} < 4.5")
        figures = page.locator("figure img")
        if figures.count():
            figures.first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"{Path(path).stem}-dark.png"))
        page.close()
    context.close()
    assert not problems, "\n".join(problems)


def _colab_url(notebook: Path) -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    return (
        f"https://colab.research.google.com/github/{repo}/blob/"
        f"{config['repository']['branch']}/{notebook.as_posix()}"
    )


class _LinksAndIds(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


@functools.cache
def _parse(path: Path) -> _LinksAndIds:
    parser = _LinksAndIds()
    parser.feed(path.read_text(errors="replace"))
    return parser


def test_internal_links_point_at_existing_pages_and_anchors(site):
    problems = []
    for path in _pages():
        page = HTML / path
        for href in _parse(page).links:
            target = urlparse(urljoin(f"http://site/{path}", href))
            if target.netloc != "site":
                continue
            file = HTML / unquote(target.path.lstrip("/"))
            if target.path.endswith("/"):
                file = file / "index.html"
            if not file.exists():
                problems.append(f"{path}: link {href!r} points at a missing file")
            elif (
                target.fragment
                and file.suffix == ".html"
                and target.fragment not in _parse(file).ids
            ):
                problems.append(f"{path}: link {href!r} points at a missing anchor")
    assert not problems, "\n".join(sorted(set(problems)))


def test_figures_have_opaque_backgrounds_for_dark_mode(site):
    import matplotlib.image

    transparent = []
    for png in sorted((HTML / "_images").glob("*.png")):
        image = matplotlib.image.imread(png)
        if image.ndim == 3 and image.shape[2] == 4 and np.any(image[..., 3] < 1.0):
            transparent.append(png.name)
    assert not transparent, (
        f"figures with transparent pixels (unreadable in dark mode): {transparent}"
    )
