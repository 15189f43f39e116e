"""Aligned text tables and cell formatting for `raygan runs` and the sweep summary (no MLflow)."""
from __future__ import annotations

import math
import time
from typing import Any, List, Optional, Sequence


def _fmt_time(ms: Optional[int]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else "-"


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    if isinstance(v, str):
        try:
            return fmt(float(v)) if any(c in v for c in ".eE") and v.strip() else v
        except ValueError:
            return v
    return str(v)


def format_table(headers: Sequence[str], rows: List[Sequence[Any]], numeric: Sequence[bool] = ()) -> str:
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    num = list(numeric) + [False] * (len(headers) - len(numeric))
    lines = []
    for j, r in enumerate(cells):
        parts = [c.rjust(w) if num[i] and j else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
