"""Do two revisions of the code write the same outputs? Byte for byte, stream by stream.

    .venv/bin/python bench/compare_outputs.py --before 6ba96e4            # HEAD's work tree vs. a commit
    .venv/bin/python bench/compare_outputs.py --before main~3 --after HEAD --case rees46

Runs ``python -m bytewax.run flows.dmp`` from each revision (a commit is
checked out in a temporary ``git worktree``; ``--after`` defaults to the
work tree as it is, uncommitted changes included) on the same inputs, then
compares every output stream's files and ``summary.json``: byte for byte,
except where a revision's output depends on timing by design:

- ``monitoring`` (wall clock) is turned off;
- ``dead_letters`` and ``late`` come from several source partitions in
  arrival order, which read-ahead timing changes, and ``quality`` holds
  the rows of several analytics, merged in the order their steps run: their
  lines are compared as sorted lists (byte for byte, only their order may
  differ). A quality row depends only on the input (it is keyed by
  analytic, window and ``as_of``), so every row must be there, unchanged.

``--loose late`` compares the late rows on the columns both revisions write,
with ISO-8601 times parsed (for a change that only adds columns or
milliseconds to times). Prints one line per stream and exits 1 on any
difference: a refactor or a speed-up proves it changed nothing this way.
"""

from __future__ import annotations

import argparse
import json
import os
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
_ARRIVAL_ORDER = ("dead_letters", "late", "quality")


def run(tree: Path, out: Path, case: dict[str, str], extra: dict[str, str]) -> None:
    settings = {k: v for k, v in case.items() if not k.startswith("--")}
    args = ["-w", case["--workers"]] if "--workers" in case else []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMP_", "BYTEWAX_"))}
    env.update({"DMP_OUT_DIR": str(out), "DMP_MONITOR_INTERVAL": "0", "PYTHONPATH": str(tree), **settings, **extra})
    done = subprocess.run([sys.executable, "-m", "bytewax.run", "flows.dmp", *args], cwd=tree, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{tree}: flows.dmp failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _time(value: object) -> object:
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value.endswith("Z"):
        return value.replace(".000Z", "Z")
    return value


def normalised(stream: str, data: bytes, loose: set[str]) -> object:
    """What of a stream's file must be equal (see the module docstring)."""
    lines = data.splitlines()
    if stream in loose:
        return sorted(json.dumps({k: _time(v) for k, v in json.loads(line).items()}, sort_keys=True) for line in lines)
    if stream in _ARRIVAL_ORDER:
        return sorted(lines)
    return data


def contents(out: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and "sqlite" not in path.name:
            files[str(path.relative_to(out))] = path.read_bytes()
    return files


def same(name: str, before: bytes | None, after: bytes | None, loose: set[str]) -> bool:
    if before is None or after is None:
        return before == after
    stream = Path(name).parts[0]
    if stream in loose and before != after:
        old_rows = [json.loads(line) for line in before.splitlines()]
        new_rows = [json.loads(line) for line in after.splitlines()]
        keys = sorted(set(old_rows[0]) & set(new_rows[0])) if old_rows and new_rows else []

        def common(rows: list[dict]) -> list[str]:
            return sorted(json.dumps({k: _time(row[k]) for k in keys}) for row in rows)

        return len(old_rows) == len(new_rows) and common(old_rows) == common(new_rows)
    return normalised(stream, before, loose) == normalised(stream, after, loose)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a git revision")
    parser.add_argument("--after", default=None, help="a git revision (default: the work tree as it is)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="inputs (default: sim and rees46)")
    parser.add_argument("--set", action="append", default=[], metavar="DMP_X=value", help="extra settings for both")
    parser.add_argument("--loose", action="append", default=[], metavar="STREAM",
                        help="compare a stream on the columns both revisions write, times parsed")
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
                    equal = same(name, before.get(name), after.get(name), set(args.loose))
                    size = len(after.get(name, before.get(name, b"")))
                    exact = before.get(name) == after.get(name)
                    verdict = "identical" if exact else "equal (normalised)" if equal else "DIFFERENT"
                    print(f"  {case:<8} {name:<40} {size:>12,} bytes  {verdict}")
                    failed |= not equal
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True,
                                   check=False)
    print("every output identical" if not failed else "outputs DIFFER")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
