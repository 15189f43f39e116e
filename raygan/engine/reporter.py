"""How the loop talks to its host: a console, MLflow, Ray Train or Ray Tune.

The loop calls `report(metrics, checkpoint_dir)` once per tick, `progress(nimg)` per
step (cheap), `artifact(path, subdir, step)` for files worth keeping (a tick's picture carries
the images seen as its step), and `finish(summary, model)` at the end with the exported model.
Hosts implement what they need; the defaults do nothing.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional


class Reporter:
    #: True when the host persists checkpoints itself (Ray): the loop then writes each
    #: checkpoint to a temp dir and hands it over instead of keeping it in the run dir.
    persists_checkpoints = False

    def start(self, info: Dict[str, Any]) -> None:
        pass

    def progress(self, nimg: int) -> None:
        pass

    def report(self, metrics: Dict[str, Any], checkpoint_dir: Optional[str] = None) -> None:
        pass

    def artifact(self, path: str, subdir: Optional[str] = None, step: Optional[int] = None) -> None:
        pass

    def finish(self, summary: Dict[str, Any], model: Any = None) -> None:
        pass

    def close(self, error: Optional[BaseException] = None) -> None:
        """End of the run; `error` is what stopped it (KeyboardInterrupt for Ctrl-C), if anything."""


class MultiReporter(Reporter):
    def __init__(self, reporters: List[Reporter]):
        self.reporters = [r for r in reporters if r is not None]
        self.persists_checkpoints = any(r.persists_checkpoints for r in self.reporters)

    def start(self, info):
        for r in self.reporters:
            r.start(info)

    def progress(self, nimg):
        for r in self.reporters:
            r.progress(nimg)

    def report(self, metrics, checkpoint_dir=None):
        for r in self.reporters:
            r.report(metrics, checkpoint_dir)

    def artifact(self, path, subdir=None, step=None):
        for r in self.reporters:
            r.artifact(path, subdir, step)

    def finish(self, summary, model=None):
        for r in self.reporters:
            r.finish(summary, model)

    def close(self, error=None):
        for r in self.reporters:
            r.close(error)


class JsonlReporter(Reporter):
    """Appends every tick's metrics to the run's metrics.jsonl (the run's own record), through
    the run store; after a resume, the ticks past the checkpoint are dropped first (redone)."""

    def __init__(self, store):
        self.store = store

    def start(self, info):
        self.store.truncate_metrics_after(int(info.get("nimg", 0)))

    def report(self, metrics, checkpoint_dir=None):
        self.store.append_metrics(metrics)


def _judged(metrics: Dict[str, Any]) -> List[str]:
    from raygan.errors import ConfigError
    from raygan.metrics.registry import direction

    out = []
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not k.startswith("loss_"):
            try:
                direction(k)
                out.append(k)
            except ConfigError:
                pass
    return out


class ConsoleReporter(Reporter):
    """A progress bar in kimg with losses, img/s and the last metric values on a terminal; one
    plain line per tick, flushed, otherwise (`--no-progress`, `> log`, a Ray worker)."""

    def __init__(self, total_kimg: float, enabled: bool = True, stream=None, bar: bool = True, prefix: str = ""):
        self.total_kimg = total_kimg
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.want_bar = bar
        self.prefix = prefix
        self.bar = None
        self.last: Dict[str, float] = {}
        self._shown = 0.0

    def start(self, info):
        if not self.enabled:
            return
        self.total_kimg = info.get("total_kimg", self.total_kimg)
        if info.get("fitted"):  # a short run of a long preset: say what was fitted, once
            print(f"raygan: {info['fitted']}", file=self.stream, flush=True)
        if not self.want_bar or not (hasattr(self.stream, "isatty") and self.stream.isatty()):
            return
        from tqdm import tqdm

        start = info.get("nimg", 0) / 1000.0
        self._shown = start
        self.bar = tqdm(total=round(self.total_kimg, 3), initial=round(start, 3), unit="kimg",
                        file=self.stream, dynamic_ncols=True, mininterval=1.0,
                        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")

    def progress(self, nimg):
        if self.bar is not None:
            kimg = min(nimg / 1000.0, self.total_kimg)  # the last step may overshoot the total
            self.bar.update(kimg - self._shown)
            self._shown = kimg

    def line(self, metrics: Dict[str, Any]) -> str:
        for k in _judged(metrics):
            self.last[k] = metrics[k]
        losses = "  ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k.startswith("loss_")
                           and isinstance(v, (int, float)))
        judged = "  ".join(f"{k} {v:.4g}" for k, v in list(self.last.items())[:3])
        return (f"kimg {metrics['kimg']:.1f}  {losses}  {metrics.get('img_per_s', 0):.0f} img/s"
                + (f"  {judged}" if judged else ""))

    def report(self, metrics, checkpoint_dir=None):
        if not self.enabled:
            return
        text = self.line(metrics)
        if self.bar is not None:
            self.bar.set_postfix_str(text.split("  ", 1)[1], refresh=True)
        else:
            print(f"{self.prefix}{text}", file=self.stream, flush=True)

    def close(self, error=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
