"""Why a trial failed, in one line: read by the driver's summary and the sweep's progress callback
(its own module, so the callback module need not import the driver)."""
from __future__ import annotations

import os
from pathlib import Path


def trial_error_reason(trial_or_error) -> str:
    """The one line that says why a trial failed (DivergenceError's message when it diverged)."""
    err = None
    if hasattr(trial_or_error, "get_error"):
        try:
            err = trial_or_error.get_error()
        except Exception:
            err = None
        if err is None:
            ef = getattr(trial_or_error, "error_file", None)
            if ef and os.path.isfile(ef):
                err = Path(ef).read_text()
    else:
        err = trial_or_error
    if err is None:
        return "unknown error"
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(err)):
        err = cause
    text = str(err)
    for line in reversed(text.strip().splitlines()):
        for cls in ("DivergenceError", "ConfigError", "DataError", "CheckpointError", "RayganError"):
            if f"{cls}: " in line:
                return line.split(f"{cls}: ", 1)[1].strip()[:500]
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else type(err).__name__)[:500]
