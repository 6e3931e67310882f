"""Execute the chapter notebooks at a chosen seed: the notebook tests and `make seeds`.

The book build runs every chapter at ``SEED = 0``, the seed readers see. The tests run each chapter
once more at a *different* seed, so a claim check tuned to seed 0 fails:

    python scripts/run_chapters.py test [NOTEBOOK ...]        # nbmake at the test seed
    python scripts/run_chapters.py seeds [--ch 04] [-n 10]    # many seeds, one table

The seed is injected the way papermill does it: a cell tagged ``injected-parameters`` with
``SEED = <seed>`` is inserted right after the cell tagged ``parameters``, in a copy of the notebook
under ``.cache/seeded/seed-<seed>/`` (the committed notebooks are never touched). The test seed is
``$KDBOOK_SEED`` when set, else derived from the commit hash, so it changes from commit to commit
and a failure can be reproduced with ``KDBOOK_SEED=<seed> make notebooks``.

Both commands run the notebooks as strictly as the unit tests: JAX's implicit rank promotion
raises, and a warning raised from kdbook's code is an error (an IPython start-up file, since
environment variables are all that reach the kernel).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SEEDED = ROOT / ".cache" / "seeded"  # not under _build/: nbmake skips any path through _build
STARTUP = """\
# Written by scripts/run_chapters.py: warnings raised from kdbook's code are errors in tests.
import warnings

warnings.filterwarnings("error", module=r"kdbook(\\..*)?$")
"""


def chapters(selection: str | None = None) -> list[Path]:
    """The chapter notebooks ``chapters/NN_*.ipynb``, or those whose number is ``selection``."""
    found = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    if selection is not None:
        wanted = {f"{int(n):02d}" for n in selection.replace(",", " ").split()}
        found = [p for p in found if p.name[:2] in wanted]
        if not found:
            raise SystemExit(f"no chapter notebook numbered {selection!r} in chapters/")
    return found


def test_seed() -> int:
    """``$KDBOOK_SEED``, else a seed in [1, 10^6) derived from the current commit."""
    if os.environ.get("KDBOOK_SEED"):
        return int(os.environ["KDBOOK_SEED"])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = format(time.time_ns(), "x")  # not a git checkout: a fresh seed, printed
    return int(commit[:12], 16) % 999_999 + 1


def with_seed(notebook: Path, seed: int) -> Path:
    """Copy ``notebook`` to ``.cache/seeded/seed-<seed>/`` with ``SEED = seed`` injected."""
    nb = nbformat.read(notebook, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise SystemExit(
            f"{notebook.name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
        )
    cell = nbformat.v4.new_code_cell(
        f"# Injected parameters\nSEED = {seed}", metadata={"tags": ["injected-parameters"]}
    )
    nb.cells.insert(tagged[0] + 1, cell)
    out = SEEDED / f"seed-{seed}" / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


def strict_env() -> dict[str, str]:
    """The environment for a strict kernel: rank promotion raises, kdbook warnings are errors."""
    ipython_dir = ROOT / ".cache" / "ipython"
    startup = ipython_dir / "profile_default" / "startup" / "00-kdbook-strict.py"
    startup.parent.mkdir(parents=True, exist_ok=True)
    startup.write_text(STARTUP)
    return {**os.environ, "JAX_NUMPY_RANK_PROMOTION": "raise", "IPYTHONDIR": str(ipython_dir)}


def run_test(notebooks: list[Path]) -> int:
    """Every notebook, at the test seed, under nbmake (in parallel over the cores)."""
    seed = test_seed()
    seeded = [with_seed(nb, seed) for nb in notebooks]
    names = ", ".join(nb.name[:2] for nb in notebooks)
    print(f"Chapters {names} at SEED = {seed} (the book shows SEED = 0).", flush=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbmake",
        "--nbmake-timeout=600",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "filterwarnings=",
        "--rootdir",
        str(ROOT),
    ]
    if len(seeded) > 1:
        command += ["-n", str(min(len(seeded), os.cpu_count() or 1))]
    code = subprocess.run(command + [str(p) for p in seeded], cwd=ROOT, env=strict_env()).returncode
    if code:
        print(
            f"\nA chapter failed at SEED = {seed}. Reproduce it with\n"
            f"    KDBOOK_SEED={seed} make notebooks\n"
            f"or one chapter with `make seeds CH=NN SEEDS={seed}`."
        )
    return code


def run_one(notebook: Path, seed: int, timeout: int) -> dict:
    """Execute one seeded notebook in a fresh kernel; return status, message and seconds."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    path = with_seed(notebook, seed)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    status, message = "pass", ""
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    except CellExecutionError as error:
        status = "FAIL"
        message = f"{error.ename}: {error.evalue}".replace("\n", " ")
    except CellTimeoutError:
        status, message = "FAIL", f"a cell ran longer than {timeout} s"
    if status == "pass":  # an error shown without failing the cell, e.g. a figure that cannot draw
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and status == "pass":
                    status = "FAIL"
                    message = f"error output: {output['ename']}: {output['evalue']}"
    nbformat.write(nb, path)  # the executed copy, outputs included, to read what was measured
    return {
        "chapter": notebook.name,
        "seed": seed,
        "status": status,
        "message": message,
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_seeds(notebooks: list[Path], seeds: list[int], jobs: int, timeout: int) -> int:
    """Every notebook at every seed, ``jobs`` at a time, each in its own process; one table."""
    env = strict_env()

    def job(pair):
        notebook, seed = pair
        result = subprocess.run(
            [sys.executable, __file__, "one", str(notebook), str(seed), str(timeout)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        try:
            return json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return {
                "chapter": notebook.name,
                "seed": seed,
                "status": "FAIL",
                "message": f"runner crashed: {tail}",
                "seconds": float("nan"),
            }

    pairs = [(nb, s) for nb in notebooks for s in seeds]
    print(
        f"{len(pairs)} runs: chapters {[nb.name[:2] for nb in notebooks]} x seeds {seeds}, "
        f"{jobs} at a time",
        flush=True,
    )
    results = []
    with ThreadPoolExecutor(jobs) as pool:
        for r in pool.map(job, pairs):
            results.append(r)
            print(
                f"  {r['chapter'][:2]} seed {r['seed']:>7}: {r['status']} "
                f"({r['seconds']} s) {r['message'][:200]}",
                flush=True,
            )
    print(f"\nExecuted copies, with their outputs: {SEEDED.relative_to(ROOT)}/seed-<seed>/\n")
    print(f"{'chapter':<36} {'seed':>7} {'result':>6} {'seconds':>8}  failing assertion")
    for r in results:
        print(
            f"{r['chapter']:<36} {r['seed']:>7} {r['status']:>6} {r['seconds']:>8}  "
            f"{r['message'][:160]}"
        )
    failed = [r for r in results if r["status"] != "pass"]
    for nb in notebooks:
        mine = [r for r in results if r["chapter"] == nb.name]
        times = [r["seconds"] for r in mine]
        print(
            f"{nb.name}: {sum(r['status'] == 'pass' for r in mine)}/{len(mine)} passed, "
            f"{min(times)}-{max(times)} s"
        )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test", help="nbmake over the chapters at the test seed")
    test.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    seeds = sub.add_parser("seeds", help="every chapter at many seeds, one table")
    seeds.add_argument("--ch", help="chapter number(s), e.g. 04 or '2 4' (default: all)")
    seeds.add_argument("-n", type=int, default=10, help="number of seeds (default 10)")
    seeds.add_argument("--seeds", help="explicit seeds, e.g. '3 17' (overrides -n)")
    seeds.add_argument("--start", type=int, default=1, help="first seed of 1..n (default 1)")
    seeds.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    seeds.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    one = sub.add_parser("one", help=argparse.SUPPRESS)
    one.add_argument("notebook", type=Path)
    one.add_argument("seed", type=int)
    one.add_argument("timeout", type=int)
    args = parser.parse_args(argv)

    if args.command == "test":
        return run_test([p.resolve() for p in args.notebooks] or chapters())
    if args.command == "one":
        print(json.dumps(run_one(args.notebook, args.seed, args.timeout)))
        return 0
    if args.seeds:
        chosen = [int(s) for s in args.seeds.replace(",", " ").split()]
    else:
        chosen = list(range(args.start, args.start + args.n))
    if 0 in chosen:
        print("note: seed 0 is the book's own seed; `make seeds` is meant for others")
    return run_seeds(chapters(args.ch), chosen, max(1, args.jobs), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
