"""Sphinx extension: drop duplicate <script> lines from every HTML page.

sphinx-thebe and sphinx-togglebutton register their inline configuration scripts each time
documents are read, and Jupyter Book reads them more than once, so every page declared
``const THEBE_JS_URL`` twice: a JavaScript error in every reader's console. After the build, this
keeps the first copy of each identical ``<script>`` line of a page's head.
"""

from pathlib import Path


def _unique_script_lines(html: str) -> str:
    head, separator, body = html.partition("</head>")
    seen, lines = set(), []
    for line in head.splitlines(keepends=True):
        key = line.strip()
        if key.startswith("<script") and key in seen:
            continue
        seen.add(key)
        lines.append(line)
    return "".join(lines) + separator + body


def _on_build_finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        unique = _unique_script_lines(text)
        if unique != text:
            page.write_text(unique, encoding="utf-8")


def setup(app):
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
