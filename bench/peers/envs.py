"""The peers' virtualenvs under ``bench/data/peers/``: pinned, installed once, reused.

In: a peer's name. Out: the path of its virtualenv's ``python``, creating
the virtualenv and pip-installing its pins first when it is missing or was
made with other pins. Their pins conflict with the project's (PyFlink wants
an old pyarrow, Pathway its own everything), so they never go into
``pyproject.toml``; the project's own systems run in the project's venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "bench" / "data" / "peers"

# What each peer's virtualenv holds; the first pin is the system measured.
PINS = {
    "flink": ("apache-flink==2.3.0",),
    "pathway": ("pathway==0.33.0",),
    "quix": ("quixstreams==3.28.1", "confluent-kafka==2.12.2", "rocksdict==0.3.29"),
}


def python(peer: str) -> Path:
    """The peer's virtualenv python, installed first if it is missing or its pins changed."""
    venv = HOME / peer
    marker = venv / "pins.json"
    pins = list(PINS[peer])
    if marker.exists() and json.loads(marker.read_text()) == pins:
        return venv / "bin" / "python"
    print(f"installing {' '.join(pins)} into {venv.relative_to(ROOT)} (once; a few minutes) ...", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *pins],
                          check=False, capture_output=True, text=True)
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        msg = f"pip install {' '.join(pins)} into {venv} failed (exit {done.returncode})"
        raise SystemExit(msg)
    marker.write_text(json.dumps(pins))
    print(f"  installed in {time.perf_counter() - started:.0f}s", flush=True)
    return venv / "bin" / "python"


def version(interpreter: Path, distribution: str) -> str:
    """The installed version of ``distribution`` in ``interpreter``'s environment."""
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    return subprocess.run([str(interpreter), "-c", code], capture_output=True, text=True, check=True).stdout.strip()
