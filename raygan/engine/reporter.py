"""How the loop talks to its host: a console, MLflow, Ray Train or Ray Tune.

The loop calls `report(metrics, checkpoint_dir)` once per tick, `progress(nimg)` per
step (cheap), `artifact(path, subdir, step)` for files worth keeping (a tick's picture carries
the images seen as its step), and `finish(summary, model)` at the end with the exported model.
Hosts implement what they need; the defaults do nothing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
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

    def close(self) -> None:
        pass


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

    def close(self):
        for r in self.reporters:
            r.close()


class JsonlReporter(Reporter):
    """Appends every tick's metrics to run_dir/metrics.jsonl (the run's own record)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def report(self, metrics, checkpoint_dir=None):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(metrics, sort_keys=True) + "\n")


class ConsoleReporter(Reporter):
    """A progress bar in kimg with losses, img/s and the last FID; plain lines when not a TTY."""

    def __init__(self, total_kimg: float, enabled: bool = True, stream=None):
        self.total_kimg = total_kimg
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.last_fid: Optional[float] = None
        self._shown = 0.0

    def start(self, info):
        if not self.enabled:
            return
        from tqdm import tqdm

        start = info.get("nimg", 0) / 1000.0
        self._shown = start
        self.bar = tqdm(total=round(self.total_kimg, 3), initial=round(start, 3), unit="kimg",
                        file=self.stream, dynamic_ncols=True, mininterval=1.0,
                        disable=not self.stream.isatty() if hasattr(self.stream, "isatty") else True,
                        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]")
        if self.bar.disable:
            self.bar = None

    def progress(self, nimg):
        if self.bar is not None:
            kimg = min(nimg / 1000.0, self.total_kimg)  # the last step may overshoot the total
            self.bar.update(kimg - self._shown)
            self._shown = kimg

    def report(self, metrics, checkpoint_dir=None):
        if not self.enabled:
            return
        fid_key = next((k for k in metrics if k.startswith("fid")), None)
        if fid_key is not None:
            self.last_fid = metrics[fid_key]
        fid = f"{self.last_fid:.2f}" if self.last_fid is not None else "-"
        text = (f"kimg {metrics['kimg']:.1f}  loss_d {metrics['loss_d']:.3f}  loss_g {metrics['loss_g']:.3f}  "
                f"{metrics['img_per_s']:.0f} img/s  fid {fid}")
        if self.bar is not None:
            self.bar.set_postfix_str(text.split("  ", 1)[1], refresh=True)
        else:
            print(text, file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
