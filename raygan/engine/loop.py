"""The training loop, counted in images seen, organised in ticks.

Per step: n_critic D steps + 1 G step (+ EMA). Per tick (every `tick_kimg`): read the
device-side statistics once, check for divergence, maybe write a sample grid, evaluate,
checkpoint, and report. The same loop runs in a plain process, in each Ray Train worker
(G and D wrapped by `prepare_model`) and inside a Tune trial: only the Reporter differs.

Exact resume: everything that affects training (weights, optimisers, scalers, counters,
data order, every RNG) is in the checkpoint, and nothing at a tick boundary draws from
the training RNG (evaluation and grids use their own seeded generators).
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

from raygan.augment import build_diffaugment, flip_horizontal
from raygan.config import Config
from raygan.data import load_dataset
from raygan.data.sampler import EpochSampler
from raygan.engine import dist
from raygan.engine.checkpoint import (load_checkpoint, load_state_dict_checked, save_checkpoint,
                                      write_checkpoint_dir)
from raygan.engine.ema import make_ema
from raygan.engine.reporter import Reporter
from raygan.engine.rng import get_rng_state, seed_all, set_rng_state
from raygan.engine.step import GANStep, unwrap
from raygan.errors import ConfigError, DivergenceError
from raygan.losses import LOSSES
from raygan.models import build_models
from raygan.regularizers import REGULARIZERS

CHECKPOINT_VERSION = 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config: train.device: {name} asked for, but no CUDA device is available")
    return dev


def make_optimizer(params, lr: float, betas, device: torch.device) -> torch.optim.Optimizer:
    # fused Adam on CUDA, foreach (multi-tensor) elsewhere: same maths, fewer kernel launches
    if device.type == "cuda":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), foreach=True)


class Trainer:
    """Builds every part from a Config and runs the loop; exposes the parts to tests."""

    def __init__(self, cfg: Config, run_dir: Optional[Path] = None, reporter: Optional[Reporter] = None,
                 prepare_model: Optional[Callable[[nn.Module], nn.Module]] = None,
                 device: Optional[torch.device] = None, evaluator: Any = "auto"):
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
        self.batch = cfg.optim.batch_size // self.world
        self.amp = cfg.train.amp if self.device.type == "cuda" else "none"

        # data: a small dataset lives on the device as one uint8 tensor and is indexed
        d = cfg.data
        self.data = load_dataset(d.name, root=d.root, split="train", resolution=d.resolution,
                                 channels=d.channels, limit=d.limit, download=d.download).to(self.device)
        self.num_classes = self.data.num_classes if cfg.model.conditional else 0
        self.sampler = EpochSampler(len(self.data.labels), self.batch, seed=cfg.seed,
                                    rank=self.rank, world_size=self.world)
        if self.sampler.batches_per_epoch < 1:
            raise ConfigError(f"config: optim.batch_size {cfg.optim.batch_size} is larger than the "
                              f"dataset ({len(self.data.labels)} images)")

        # networks: identical init on every rank (DDP also broadcasts rank 0's weights)
        seed_all(cfg.seed)
        m = cfg.model
        G, D = build_models(m.arch, resolution=d.resolution, channels=self.data.channels, z_dim=m.z_dim,
                            num_classes=self.num_classes, spectral_norm=m.spectral_norm,
                            g=dict(m.g), d=dict(m.d))
        G, D = G.to(self.device), D.to(self.device)
        if self.device.type == "cuda" and cfg.train.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        self.G_ema = make_ema(G) if cfg.ema.half_life_kimg > 0 else None
        o = cfg.optim
        self.opt_g = make_optimizer(G.parameters(), o.g_lr, o.g_betas, self.device)
        self.opt_d = make_optimizer(D.parameters(), o.d_lr, o.d_betas, self.device)
        if prepare_model is not None:
            G, D = prepare_model(G), prepare_model(D)
        if cfg.train.compile:
            G, D = torch.compile(G), torch.compile(D)
        self.G, self.D = G, D
        self.loss = LOSSES.build(cfg.loss.name)
        self.regularizer = REGULARIZERS.build(cfg.regularizer.name, **cfg.regularizer.kwargs)
        self.step = GANStep(G=G, D=D, loss=self.loss, regularizer=self.regularizer,
                            diffaugment=build_diffaugment(cfg.augment.diffaugment),
                            opt_g=self.opt_g, opt_d=self.opt_d, n_critic=o.n_critic, z_dim=m.z_dim,
                            num_classes=self.num_classes, device=self.device, amp=self.amp,
                            G_ema=self.G_ema, ema_half_life_kimg=cfg.ema.half_life_kimg,
                            ema_rampup=cfg.ema.rampup, global_batch=o.batch_size)

        # progress
        self.nimg = 0
        self.tick = 0
        self.bad_ticks = 0
        self.best: Dict[str, Any] = {}
        self.last_good_checkpoint: Optional[str] = None
        self.resumed_from: Optional[str] = None
        seed_all(cfg.seed * 1_000_003 + self.rank + 1)  # this rank's training noise stream

        # evaluation and sample grid use their own generators: they never touch training RNG
        if evaluator == "auto":
            from raygan.engine.evaluation import Evaluator
            evaluator = Evaluator(cfg, self.device, channels=self.data.channels)
        self.evaluator = evaluator
        grid_gen = torch.Generator(device=self.device).manual_seed(cfg.eval.seed)
        self.grid_z = torch.randn(64, m.z_dim, device=self.device, generator=grid_gen)
        self.grid_y = (torch.arange(64, device=self.device) % self.num_classes) if self.num_classes else None

    # ------------------------------------------------------------------ parts
    @property
    def G_plain(self) -> nn.Module:
        return unwrap(self.G)

    @property
    def D_plain(self) -> nn.Module:
        return unwrap(self.D)

    @property
    def G_eval(self) -> nn.Module:
        """The generator used for samples and metrics: the EMA one when enabled."""
        return self.G_ema if self.G_ema is not None else self.G_plain

    def next_real(self):
        idx = self.sampler.next().to(self.device)
        x = self.data.images[idx].float().div_(127.5).sub_(1.0)
        if self.cfg.augment.flip:
            x = flip_horizontal(x)
        if self.device.type == "cuda" and self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.data.labels[idx] if self.num_classes else None
        return x, y

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "models": {"G": self.G_plain.state_dict(), "D": self.D_plain.state_dict(),
                       **({"G_ema": self.G_ema.state_dict()} if self.G_ema is not None else {})},
            "optim": {"G": self.opt_g.state_dict(), "D": self.opt_d.state_dict()},
            "scaler": {"G": self.step.scaler_g.state_dict(), "D": self.step.scaler_d.state_dict()},
            "progress": {"nimg": self.nimg, "tick": self.tick, "d_steps": self.step.d_steps,
                         "bad_ticks": self.bad_ticks},
            "sampler": self.sampler.state_dict(),
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
        load_state_dict_checked(self.G_plain, st["models"]["G"], "generator", ckpt_dir)
        load_state_dict_checked(self.D_plain, st["models"]["D"], "discriminator", ckpt_dir)
        if self.G_ema is not None:
            ema_sd = st["models"].get("G_ema", st["models"]["G"])  # EMA switched on at resume: start from G
            load_state_dict_checked(self.G_ema, ema_sd, "EMA generator", ckpt_dir)
        load_state_dict_checked(self.opt_g, st["optim"]["G"], "generator optimiser", ckpt_dir)
        load_state_dict_checked(self.opt_d, st["optim"]["D"], "discriminator optimiser", ckpt_dir)
        self._apply_optim_config()  # a resumed run may change learning rates on purpose
        self.step.scaler_g.load_state_dict(st["scaler"]["G"])
        self.step.scaler_d.load_state_dict(st["scaler"]["D"])
        p = st["progress"]
        self.nimg, self.tick, self.bad_ticks = int(p["nimg"]), int(p["tick"]), int(p["bad_ticks"])
        self.step.d_steps = int(p["d_steps"])
        self.sampler.load_state_dict(st["sampler"])
        self.best = dict(st.get("best") or {})
        if st.get("rng") is not None and st.get("world_size", 1) == self.world:
            set_rng_state(st["rng"])
        else:  # another worker count: data order continues, noise streams restart per rank
            seed_all(self.cfg.seed * 1_000_003 + self.rank + 1 + self.nimg)
        self.resumed_from = str(ckpt_dir)
        self.last_good_checkpoint = str(ckpt_dir)

    def _apply_optim_config(self) -> None:
        o = self.cfg.optim
        for opt, lr, betas in ((self.opt_g, o.g_lr, o.g_betas), (self.opt_d, o.d_lr, o.d_betas)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr, tuple(betas)

    def save(self, metrics: Dict[str, Any]) -> Optional[str]:
        """Write a checkpoint: into run_dir/checkpoints locally, or hand it to the host (Ray)."""
        meta = {"nimg": self.nimg, "kimg": self.nimg / 1000.0, "tick": self.tick,
                "arch_hash": self.cfg.arch_hash(), "metrics": metrics}
        state = self.state_dict() if self.rank == 0 else {}
        rng = get_rng_state()
        if self.reporter.persists_checkpoints:
            tmp = Path(tempfile.mkdtemp(prefix="raygan-ckpt-"))
            write_checkpoint_dir(tmp, state, rng, self.rank, meta)
            return str(tmp)
        if self.run_dir is None:
            return None
        path = save_checkpoint(self.run_dir / "checkpoints", self.nimg, state, rng, meta,
                               keep=self.cfg.train.keep_checkpoints)
        return str(path)

    # ------------------------------------------------------------------ samples & metrics
    @torch.no_grad()
    def sample_grid(self, path: Path) -> Path:
        from torchvision.utils import save_image

        G = self.G_eval
        was_training = G.training
        G.eval()
        imgs = G(self.grid_z, self.grid_y).float()
        G.train(was_training)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(imgs.add(1).div(2).clamp(0, 1).cpu(), str(path), nrow=8, padding=2)
        return path

    def evaluate(self, num_samples: int):
        return self.evaluator(self.G_eval, num_samples)

    # ------------------------------------------------------------------ loop
    def run(self) -> Dict[str, Any]:
        cfg = self.cfg
        total_nimg = int(round(cfg.train.total_kimg * 1000))
        tick_nimg = int(round(cfg.train.tick_kimg * 1000))
        per_step = cfg.optim.batch_size * cfg.optim.n_critic
        self.reporter.start({"nimg": self.nimg, "rank": self.rank, "world_size": self.world,
                             "resumed_from": self.resumed_from})
        tick_start_nimg, tick_start_time = self.nimg, time.time()
        last_metrics: Dict[str, Any] = {}
        t0 = time.time()
        while self.nimg < total_nimg:
            self.step.step(self.next_real, self.nimg)
            self.nimg += per_step
            if self.rank == 0:
                self.reporter.progress(self.nimg)
            done = self.nimg >= total_nimg
            if done or self.nimg >= tick_start_nimg + tick_nimg:
                elapsed = time.time() - tick_start_time
                last_metrics = self._end_tick(done, self.nimg - tick_start_nimg, elapsed)
                tick_start_nimg, tick_start_time = self.nimg, time.time()
        if not last_metrics:  # resumed a run that had already reached total_kimg
            last_metrics = {"kimg": self.nimg / 1000.0}
        summary = {"kimg": self.nimg / 1000.0, "ticks": self.tick, "wall_s": time.time() - t0,
                   "final": last_metrics.get("final", {}), "protocol": last_metrics.get("protocol"),
                   "best": self.best, "checkpoint": self.last_good_checkpoint}
        if self.rank == 0:
            example = self.grid_z[:4].detach().cpu()
            self.reporter.finish(summary, generator=self.G_eval, example=example)
        return summary

    def _end_tick(self, done: bool, tick_imgs: int, elapsed: float) -> Dict[str, Any]:
        cfg = self.cfg
        self.tick += 1
        stats = self.step.read_stats(reduce=dist.all_reduce_sum)
        finite = all(math.isfinite(v) for v in stats.values())
        metrics: Dict[str, Any] = {"kimg": self.nimg / 1000.0, "tick": self.tick, **stats,
                                   "img_per_s": tick_imgs / max(elapsed, 1e-9), "sec_per_tick": elapsed}
        if not finite:
            self.bad_ticks += 1
            if self.bad_ticks >= cfg.train.nan_ticks:
                where = self.last_good_checkpoint or "none written yet"
                raise DivergenceError(
                    f"training diverged: non-finite losses for {self.bad_ticks} ticks in a row at "
                    f"kimg {self.nimg / 1000:.1f} ({', '.join(f'{k}={v:.3g}' for k, v in stats.items())}); "
                    f"last good checkpoint: {where}")
            self.reporter.report(metrics)
            return metrics
        self.bad_ticks = 0
        if self.rank == 0 and self.run_dir is not None and (done or self.tick % cfg.train.sample_ticks == 0):
            grid = self.sample_grid(self.run_dir / "samples" / f"grid-{self.nimg:010d}.png")
            self.reporter.artifact(str(grid), "samples")
        if self.evaluator is not None and (done or (cfg.train.eval_ticks and self.tick % cfg.train.eval_ticks == 0)):
            n = cfg.eval.final_num_samples if done else cfg.eval.num_samples
            values, protocol = self.evaluate(n)
            metrics.update(values)
            metrics["protocol"] = protocol
            if done:
                metrics["final"] = dict(values)
            for k, v in values.items():
                if k in ("fid", "kid") and (k not in self.best or v < self.best[k]["value"]):
                    self.best[k] = {"value": v, "kimg": self.nimg / 1000.0}
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
