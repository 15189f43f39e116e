"""The run's curves as one PNG: losses on the left, its judging metrics on the right."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

SKIP = {"kimg", "tick", "img_per_s", "sec_per_tick"}


def curves_png(rows: List[Dict[str, Any]], out: Path) -> Optional[Path]:
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from raygan.errors import ConfigError
    from raygan.metrics.registry import direction

    def judged(key: str) -> bool:
        try:
            direction(key)
            return True
        except ConfigError:
            return False

    kimg = [r["kimg"] for r in rows]
    losses = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith("loss_")]
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r)
               if k not in SKIP and not k.startswith("loss_") and isinstance(rows[-1].get(k, 0), (int, float))
               and judged(k)]
    fig = Figure(figsize=(10, 3.5))
    ax_l, ax_m = fig.subplots(1, 2)
    for key in losses:
        ax_l.plot(kimg, [r.get(key, float("nan")) for r in rows], label=key)
    ax_l.set_xlabel("kimg")
    if losses:
        ax_l.legend()
    for key in metrics[:4]:
        pts = [(r["kimg"], r[key]) for r in rows if key in r]
        if pts:
            ax_m.plot(*zip(*pts), marker="o", label=f"{key} ({direction(key)})")
    ax_m.set_xlabel("kimg")
    if metrics:
        ax_m.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out


def truncation_png(rows: List[Dict[str, Any]], out: Path, title: str = "") -> Path:
    """The fidelity-diversity curve of a truncation sweep: FID (and any other minimised value) vs
    psi on the left, precision, recall (and other maximised values) vs psi on the right, written
    atomically (the caller has refused an existing `out`)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from raygan.errors import ConfigError
    from raygan.metrics.registry import direction

    def way(key: str) -> Optional[str]:
        try:
            return direction(key)
        except ConfigError:
            return None

    rows = sorted(rows, key=lambda r: r["psi"])
    psi = [r["psi"] for r in rows]
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "psi" and way(k)]
    fig = Figure(figsize=(9, 3.5))
    ax_min, ax_max = fig.subplots(1, 2)
    for ax, want in ((ax_min, "min"), (ax_max, "max")):
        for key in (k for k in keys if way(k) == want):
            ax.plot(psi, [r.get(key, float("nan")) for r in rows], marker="o", label=f"{key} ({want})")
        ax.set_xlabel("truncation psi (1 = none)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    ax_min.set_title("fidelity: lower is better", fontsize=9)
    ax_max.set_title("precision (fidelity), recall (diversity)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    from raygan.data.imagefiles import OutputWriter

    out = Path(out)
    with OutputWriter() as w:  # the one output-writing path: a temp file beside `out`, then renamed
        w.write_with(out, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    return out
