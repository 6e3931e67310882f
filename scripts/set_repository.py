"""Point the book at another repository (a fork, a new home) in one command.

The repository's address appears where readers and tools need it: `_config.yml` (the source of
truth: the book's repository button and Colab launch links), the setup cell of every chapter
(Colab installs kdbook from it), the README's Colab badge and install lines, `pyproject.toml`,
and the appendix on running the book. This script rewrites every one of them:

    python scripts/set_repository.py https://github.com/OWNER/NAME

and `tests/book/test_book.py` fails, naming the file, if any of them disagrees with `_config.yml`.
Edit the chapters' `.md` sources; run `make sync` afterwards to refresh the notebooks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# github.com/OWNER/NAME and Colab's colab.research.google.com/github/OWNER/NAME
ADDRESS = re.compile(
    r"(github\.com/|colab\.research\.google\.com/github/)([\w.-]+)/([\w.-]+?)(?=[/\"'`)\s.,;:]|$)"
)


def configured(root: Path = ROOT) -> tuple[str, str]:
    """(owner, name) of the repository in `_config.yml`."""
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url.rstrip("/"))
    if not match:
        raise SystemExit(f"_config.yml repository.url must be https://github.com/OWNER/NAME: {url}")
    return match.group(1), match.group(2)


def files(root: Path = ROOT) -> list[Path]:
    """The files that spell the repository's address."""
    found = [root / "README.md", root / "pyproject.toml", root / "_config.yml"]
    return found + sorted((root / "chapters").glob("*.md"))


def occurrences(root: Path = ROOT) -> list[tuple[Path, int, str, str]]:
    """(file, line, owner, name) of every address of this book's repository in `files`.

    An address counts as this book's when its name is the configured name or "kdbook", so that
    links to other projects (e.g. in further reading) are left alone.
    """
    _, name = configured(root)
    found = []
    for path in files(root):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for match in ADDRESS.finditer(line):
                if match.group(3) in {name, "kdbook"}:
                    found.append((path, number, match.group(2), match.group(3)))
    return found


def problems(root: Path = ROOT) -> list[str]:
    """Addresses that disagree with `_config.yml`, as sentences naming the file and the fix."""
    owner, name = configured(root)
    return [
        f"{path.relative_to(root)}:{line} points at github.com/{o}/{n}, but _config.yml says "
        f"{owner}/{name}: run `python scripts/set_repository.py https://github.com/{owner}/{name}`"
        for path, line, o, n in occurrences(root)
        if (o, n) != (owner, name)
    ]


def main(argv: list[str], root: Path = ROOT) -> int:
    if len(argv) != 1 or not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", argv[0]):
        print(__doc__)
        return 2
    new_owner, new_name = argv[0].split("/")[-2:]
    old = {(owner, name) for _, _, owner, name in occurrences(root)}
    for path in files(root):
        text = path.read_text()
        for owner, name in old:
            text = re.sub(
                rf"(github\.com/|colab\.research\.google\.com/github/){re.escape(owner)}/"
                rf"{re.escape(name)}(?=[/\"'`)\s.,;:]|$)",
                rf"\g<1>{new_owner}/{new_name}",
                text,
                flags=re.MULTILINE,
            )
        path.write_text(text)
    print(f"repository set to {argv[0]} in {len(files(root))} files; now run `make sync`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
