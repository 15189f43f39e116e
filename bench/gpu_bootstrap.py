"""pydantic & co. for a machine that lacks them (the lent GPU image has torch but no pydantic):
install the wheels bench/gpu_wheels.sh put in .whl/ into a target dir (pip, no index) and put it
on sys.path. Imports nothing beyond the standard library, so it runs before torch or raygan."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bootstrap(target: str = "/tmp/site") -> str:
    """'present' when pydantic imports already, else 'installed' (from ROOT/.whl into `target`);
    exits with one line when it is missing and there are no wheels. The checkout goes on sys.path."""
    state = "present"
    try:
        import pydantic  # noqa: F401
    except ImportError:
        wheels = sorted(str(p) for p in (ROOT / ".whl").glob("*.whl"))
        if not wheels:
            sys.exit("gpu_acceptance: pydantic is missing and .whl/ holds no wheels: run bench/gpu_wheels.sh "
                     "where a package index is reachable, and bring .whl/ along")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", target, *wheels], check=True)
        sys.path.insert(0, target)
        import pydantic  # noqa: F401,F811  (fails loudly if the wheels do not fit this Python)
        state = "installed"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return state
