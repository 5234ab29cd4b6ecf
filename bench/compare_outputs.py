"""Do two revisions of the code write the same outputs? Byte for byte, stream by stream.

    .venv/bin/python bench/compare_outputs.py --before 6ba96e4            # HEAD's work tree vs. a commit
    .venv/bin/python bench/compare_outputs.py --before main~3 --after HEAD --case rees46

Runs ``python -m bytewax.run flows.dmp`` from each revision (a commit is
checked out in a temporary ``git worktree``; ``--after`` defaults to the
work tree as it is, uncommitted changes included) on the same inputs, then
compares every output stream's files and ``summary.json``. Wall-clock data
is left out on purpose: the ``monitoring`` stream is turned off, and
quality rows' ``reported_at`` and ``watermark_lag_s`` (wall clock) are
blanked before comparing, if the revision still writes them. Everything
else must be identical bytes. Prints one line per stream and exits 1 on any
difference: a refactor or a speed-up proves it changed nothing this way.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "sim": {},
    "rees46": {"DMP_SOURCE": "file", "DMP_INPUT": str(ROOT / "tests" / "data" / "rees46-2019-oct-sample.csv")},
    "sim-2w": {"--workers": "2"},
}
_WALL_CLOCK = re.compile(rb',"(watermark_lag_s|reported_at)":[^,}]*')


def run(tree: Path, out: Path, case: dict[str, str], extra: dict[str, str]) -> None:
    settings = {k: v for k, v in case.items() if not k.startswith("--")}
    args = ["-w", case["--workers"]] if "--workers" in case else []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}
    env.update({"DMP_OUT_DIR": str(out), "DMP_MONITOR_INTERVAL": "0", "PYTHONPATH": str(tree), **settings, **extra})
    done = subprocess.run([sys.executable, "-m", "bytewax.run", "flows.dmp", *args], cwd=tree, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{tree}: flows.dmp failed ({done.returncode}):\n{done.stderr[-3000:]}")


def contents(out: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and not path.name.endswith(".sqlite") and "sqlite" not in path.suffix:
            data = path.read_bytes()
            if path.parent.name == "quality":
                data = _WALL_CLOCK.sub(b"", data)
            files[str(path.relative_to(out))] = data
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a git revision")
    parser.add_argument("--after", default=None, help="a git revision (default: the work tree as it is)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="inputs (default: sim and rees46)")
    parser.add_argument("--set", action="append", default=[], metavar="DMP_X=value", help="extra settings for both")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    failed = False
    with tempfile.TemporaryDirectory(prefix="compare-") as scratch:
        trees = {}
        for label, rev in (("before", args.before), ("after", args.after)):
            if rev is None:
                trees[label] = ROOT
                continue
            tree = Path(scratch) / label
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True,
                           capture_output=True)
            trees[label] = tree
        try:
            for case in args.case or ["sim", "rees46"]:
                outs = {}
                for label, tree in trees.items():
                    outs[label] = Path(scratch) / f"out-{case}-{label}"
                    run(tree, outs[label], CASES[case], extra)
                before, after = contents(outs["before"]), contents(outs["after"])
                for name in sorted(set(before) | set(after)):
                    same = before.get(name) == after.get(name)
                    size = len(after.get(name, before.get(name, b"")))
                    print(f"  {case:<8} {name:<40} {size:>12,} bytes  {'identical' if same else 'DIFFERENT'}")
                    failed |= not same
        finally:
            for label, tree in trees.items():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    print("every output identical" if not failed else "outputs DIFFER")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
