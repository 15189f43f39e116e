"""The training loop, counted in images seen, organised in ticks, hosting one registered task.

Per step the task runs its phases (`task.train_step`). Per tick (every `tick_kimg`): read the
task's device-side statistics once, check for divergence, maybe write the task's picture,
evaluate, checkpoint, and report. The same loop runs in a plain process, in each Ray Train
worker (networks wrapped by `prepare_model`) and inside a Tune trial: only the Reporter differs.
Nothing here asks which task runs.

Exact resume: everything that affects training (weights, optimisers, scalers, counters, the
task's state such as its data position, every RNG) is in the checkpoint, and nothing at a tick
boundary draws from the training RNG (evaluation and pictures use their own seeded generators).
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn

from raygan.config import Config, budget
from raygan.engine import dist
from raygan.engine.checkpoint import load_checkpoint, save_checkpoint, write_checkpoint_dir
from raygan.engine.device import resolve_device
from raygan.engine.reporter import Reporter
from raygan.engine.rng import get_rng_state, seed_all, set_rng_state
from raygan.errors import CheckpointError, ConfigError, DivergenceError, Interrupted
from raygan.metrics.registry import better
from raygan.tasks import TaskContext, task_class

CHECKPOINT_VERSION = 2


def training_seed(seed: int, rank: int) -> int:
    """This rank's training noise stream (distinct from the init seed and from other ranks)."""
    return seed * 1_000_003 + rank + 1


class Trainer:
    """Builds the task from a Config and runs the loop; exposes the task to tests and hosts."""

    def __init__(self, cfg: Config, run_dir: Optional[Path] = None, reporter: Optional[Reporter] = None,
                 prepare_model: Optional[Callable[[nn.Module], nn.Module]] = None,
                 device: Optional[torch.device] = None, evaluator: Any = "auto", init: Any = None):
        cfg, self.fitted = budget.fit(cfg)  # a short run of a long preset: intervals and warm-up fitted
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.reporter = reporter or Reporter()
        self.rank, self.world = dist.rank(), dist.world_size()
        self.device = device or resolve_device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if cfg.optim.batch_size % self.world:
            raise ConfigError(f"config: optim.batch_size {cfg.optim.batch_size} does not split evenly "
                              f"across {self.world} workers")
        cuda = self.device.type == "cuda"
        ctx = TaskContext(device=self.device, rank=self.rank, world=self.world,
                          batch=cfg.optim.batch_size // self.world, amp=cfg.train.amp if cuda else "none",
                          prepare_model=prepare_model, compile=cfg.train.compile,
                          channels_last=cuda and cfg.train.channels_last, init=init)
        self.task = task_class(cfg.task)(cfg, ctx)
        self.task.setup_data()  # no random draws: fails on bad data before anything is built
        seed_all(cfg.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
        self.task.build()

        self.nimg = 0
        self.tick = 0
        self.bad_ticks = 0
        self.best: Dict[str, Any] = {}
        self.last_good_checkpoint: Optional[str] = None
        self.resumed_from: Optional[str] = None
        self.tick_start_nimg = 0  # where the current tick began (kept in a checkpoint taken mid-tick)
        self.saved_nimg: Optional[int] = None  # the newest checkpoint's nimg
        self.stop_signal: Optional[int] = None  # set by the host (Ctrl-C, SIGTERM): stop at the next step
        seed_all(training_seed(cfg.seed, self.rank))
        self.task.setup_evaluation(evaluator)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        t = self.task
        return {
            "version": CHECKPOINT_VERSION,
            "task": t.name,
            "models": {k: m.state_dict() for k, m in t.networks.items()},
            "optim": {k: o.state_dict() for k, o in t.optimizers.items()},
            "scaler": {k: s.state_dict() for k, s in t.scalers.items()},
            "task_state": t.state(),
            "model_spec": t.model_spec(),
            "progress": {"nimg": self.nimg, "tick": self.tick, "bad_ticks": self.bad_ticks,
                         "tick_start_nimg": self.tick_start_nimg},
            "best": dict(self.best),
            "config": self.cfg.to_dict(),
            "arch_hash": self.cfg.arch_hash(),
            "config_hash": self.cfg.config_hash(),
            "world_size": self.world,
        }

    def load(self, ckpt_dir: Path) -> None:
        """Restore a checkpoint written by `save`; refuses one made for other networks."""
        ckpt_dir = Path(ckpt_dir)
        st = load_checkpoint(ckpt_dir, rank=self.rank, expected_arch_hash=self.cfg.arch_hash())
        t = self.task
        if st.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"checkpoint {ckpt_dir} has format version {st.get('version')}; this raygan "
                                  f"reads version {CHECKPOINT_VERSION}")
        t.load_networks(st["models"], ckpt_dir)
        for what, parts in (("optim", t.optimizers), ("scaler", t.scalers)):
            for k, obj in parts.items():
                try:
                    obj.load_state_dict(st[what][k])
                except (KeyError, ValueError, RuntimeError) as e:
                    raise CheckpointError(f"checkpoint {ckpt_dir}: {what} {k} does not fit: "
                                          f"{str(e).splitlines()[0][:160]}") from None
        t.apply_optim_config()  # a resumed run may change learning rates on purpose
        p = st["progress"]
        self.nimg, self.tick, self.bad_ticks = int(p["nimg"]), int(p["tick"]), int(p["bad_ticks"])
        self.tick_start_nimg = int(p.get("tick_start_nimg", self.nimg))  # a stop mid-tick resumes that tick
        self.saved_nimg = self.nimg
        same_world = st.get("world_size", 1) == self.world
        t.load_state(st["task_state"], same_world)
        self.best = dict(st.get("best") or {})
        if st.get("rng") is not None and same_world:
            set_rng_state(st["rng"])
        else:  # another worker count: data order continues, noise streams restart per rank
            seed_all(training_seed(self.cfg.seed, self.rank) + self.nimg)
        self.resumed_from = str(ckpt_dir)
        self.last_good_checkpoint = str(ckpt_dir)

    def save(self, metrics: Dict[str, Any]) -> Optional[str]:
        """Write a checkpoint: into run_dir/checkpoints locally, or hand it to the host (Ray)."""
        meta = {"nimg": self.nimg, "kimg": self.nimg / 1000.0, "tick": self.tick, "task": self.task.name,
                "arch_hash": self.cfg.arch_hash(), "metrics": metrics}
        state = self.state_dict() if self.rank == 0 else {}
        rng = get_rng_state()
        self.saved_nimg = self.nimg
        if self.reporter.persists_checkpoints:
            tmp = Path(tempfile.mkdtemp(prefix="raygan-ckpt-"))
            write_checkpoint_dir(tmp, state, rng, self.rank, meta)
            return str(tmp)
        if self.run_dir is None:
            return None
        path = save_checkpoint(self.run_dir / "checkpoints", self.nimg, state, rng, meta,
                               keep=self.cfg.train.keep_checkpoints)
        return str(path)

    # ------------------------------------------------------------------ loop
    def run(self) -> Dict[str, Any]:
        cfg, task = self.cfg, self.task
        total_nimg = cfg.train.total_nimg
        tick_nimg = int(round(cfg.train.tick_kimg * 1000))
        per_step = task.images_per_step()
        self.reporter.start({"nimg": self.nimg, "rank": self.rank, "world_size": self.world,
                             "resumed_from": self.resumed_from, "total_kimg": cfg.train.total_kimg,
                             "fitted": budget.describe(cfg, self.fitted) if self.fitted else None})
        if self.resumed_from is None:
            self.tick_start_nimg = self.nimg
        tick_start_time = time.time()
        last_metrics: Dict[str, Any] = {}
        t0 = time.time()
        while self.nimg < total_nimg:
            if self.stop_signal is not None:
                self._stop()
            task.train_step(self.nimg)
            self.nimg += per_step
            if self.rank == 0:
                self.reporter.progress(self.nimg)
            done = self.nimg >= total_nimg
            if done or self.nimg >= self.tick_start_nimg + tick_nimg:
                elapsed, tick_imgs = time.time() - tick_start_time, self.nimg - self.tick_start_nimg
                self.tick_start_nimg = self.nimg
                last_metrics = self._end_tick(done, tick_imgs, elapsed)
                tick_start_time = time.time()
        if not last_metrics:  # resumed a run that had already reached total_kimg
            last_metrics = {"kimg": self.nimg / 1000.0}
        summary = {"task": task.name, "kimg": self.nimg / 1000.0, "ticks": self.tick, "wall_s": time.time() - t0,
                   "final": last_metrics.get("final", {}), "protocol": last_metrics.get("protocol"),
                   "best": self.best, "checkpoint": self.last_good_checkpoint}
        if self.rank == 0:
            self.reporter.finish(summary, model=task.export())
        return summary

    def _end_tick(self, done: bool, tick_imgs: int, elapsed: float) -> Dict[str, Any]:
        cfg, task = self.cfg, self.task
        self.tick += 1
        stats = task.read_stats(reduce=dist.all_reduce_sum)
        stats.update(task.end_tick(self.nimg))
        finite = all(math.isfinite(v) for v in stats.values())
        metrics: Dict[str, Any] = {"kimg": self.nimg / 1000.0, "tick": self.tick, **stats,
                                   "img_per_s": tick_imgs / max(elapsed, 1e-9), "sec_per_tick": elapsed}
        if not finite:
            self.bad_ticks += 1
            if self.bad_ticks >= cfg.train.nan_ticks or done:  # a run never ends on a non-finite tick
                where = self.last_good_checkpoint or "none written yet"
                when = f"for {self.bad_ticks} ticks in a row" if self.bad_ticks > 1 else "on the last tick"
                raise DivergenceError(
                    f"training diverged: non-finite losses {when} at "
                    f"kimg {self.nimg / 1000:.1f} ({', '.join(f'{k}={v:.3g}' for k, v in stats.items())}); "
                    f"last good checkpoint: {where}")
            self.reporter.report(metrics)
            return metrics
        self.bad_ticks = 0
        if self.rank == 0 and self.run_dir is not None and (done or self.tick % cfg.train.sample_ticks == 0):
            picture = task.picture(self.run_dir / "samples" / f"grid-{self.nimg:010d}.png")
            self.reporter.artifact(str(picture), "samples", step=self.nimg)
        if done or (cfg.train.eval_ticks and self.tick % cfg.train.eval_ticks == 0):
            result = task.evaluate(cfg.eval.final_num_samples if done else cfg.eval.num_samples)
            if result is not None:
                values, protocol = result
                metrics.update(values)
                metrics["protocol"] = protocol
                if done:
                    metrics["final"] = dict(values)
                self._track_best(values)
        ckpt = None
        if done or self.tick % cfg.train.snapshot_ticks == 0:
            ckpt = self.save({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        self.reporter.report(metrics, checkpoint_dir=ckpt)
        if ckpt is not None:
            if self.reporter.persists_checkpoints:
                shutil.rmtree(ckpt, ignore_errors=True)  # the host has copied it to its storage
            else:
                self.last_good_checkpoint = ckpt
        return metrics

    def request_stop(self, signum: int) -> None:
        """Stop at the next step boundary (a signal handler may call this): checkpoint, then raise."""
        self.stop_signal = int(signum)

    def _stop(self) -> None:
        """Save what was trained since the last checkpoint (between steps, so a resume continues
        exactly, mid-tick included) and raise Interrupted; nothing is saved at nimg 0."""
        ckpt = None
        if self.nimg > 0 and self.saved_nimg != self.nimg and not self.reporter.persists_checkpoints:
            ckpt = self.save({})
            if ckpt is not None:
                self.last_good_checkpoint = ckpt
        raise Interrupted(self.stop_signal, ckpt or self.last_good_checkpoint)

    def _track_best(self, values: Dict[str, float]) -> None:
        from raygan.metrics.registry import direction

        for k, v in values.items():
            try:
                direction(k)
            except ConfigError:  # a value without a direction (e.g. kid_std)
                continue
            if math.isfinite(v) and (k not in self.best or better(k, v, self.best[k]["value"])):
                self.best[k] = {"value": v, "kimg": self.nimg / 1000.0}
