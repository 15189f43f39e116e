"""`raygan augment` with a real GAN: the entry point behind the command (torch only; MLflow
logging lives in raygan.tracking.augment and is called by the CLI layer).

    from raygan.experiments.augment_run import run_augment
    out = run_augment(run_dir=None, real_per_class=[10, 50, 100], synthetic_per_class=1000,
                      classic="flip,translate,rotate,scale", seeds=3)
    print(out.table)

Where the generated images come from:
* no `run_dir` (the experiment's own protocol): for every K and seed s a conditional GAN is
  trained with the engine (`raygan.engine.loop.Trainer`) on exactly the K-per-class subset the
  classifiers use (`data.per_class=K`, `data.subset_seed=s`, checked index for index after
  the GAN's data is built), from `base` (a preset name or a Config; default
  `fmnist-cgan-100pc`) and `gan_kimg`. Nothing any model of a cell learns from lies outside
  its subset.
* `run_dir`: one given run's conditional generator (its last checkpoint, loaded without a
  trainer) serves every cell. It learnt from that run's training data, which is recorded in the
  protocol (`gan_train_images`, its subset hash if any); when that is more than a cell's K per
  class the +gan conditions see more data than real-only does, and a warning says so.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from raygan.engine.checkpoint import CHECKPOINT_NAME, list_checkpoints
from raygan.engine.reporter import Reporter
from raygan.errors import ConfigError
from raygan.experiments.augment import (CONDITIONS, AugmentResult, OnResult, plot, render_table,
                                        run_augment_experiment, validate)
from raygan.experiments.augment_outputs import Outputs, prepare_outputs
from raygan.experiments.augment_plan import (Plan, Progress, Rates, _timed, build_plan, classifier_rates,
                                             median_step)
from raygan.metrics.cas import Sampler
from raygan.metrics.classify import RECIPE, Recipe

DEFAULT_BASE = "fmnist-cgan-100pc"


@dataclass
class AugmentOutcome:
    result: AugmentResult
    table: str
    plot_path: Optional[str]
    protocol: Dict[str, Any]
    gans: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # "K=10 seed=0" -> what trained it
    table_path: Optional[str] = None


def generator_sampler(G: nn.Module, device: Union[str, torch.device] = "cpu") -> Sampler:
    """labels -> uint8 images of a conditional G (eval mode, latents from torch's RNG, which
    `raygan.metrics.cas.generate` forks and seeds); images come back on the CPU."""
    from raygan.metrics import to_uint8

    dev = torch.device(device)
    G = G.to(dev).eval()

    @torch.no_grad()
    def sample(labels: torch.Tensor) -> torch.Tensor:
        z = torch.randn(labels.shape[0], G.z_dim, device=dev)
        return to_uint8(G(z, labels.to(dev)).float()).cpu()

    return sample


def _base_config(base: Any, overrides: Sequence[str]):
    from raygan.config import Config
    from raygan.tasks import load_config, with_overrides

    if isinstance(base, Config):
        return with_overrides(base, overrides)
    return load_config(base, None, list(overrides))


def subset_gan_config(base_cfg, k: int, seed: int, gan_kimg: Optional[float] = None, num_classes: int = 10,
                      log: Callable[[str], None] = lambda s: None):
    """The base config on exactly the K-per-class subset of `seed`: conditional, no tracking,
    no evaluation. A batch larger than the subset (K x num_classes images) is lowered to the
    largest power of two that fits (logged)."""
    from raygan.tasks import build_config

    data = base_cfg.to_dict()
    data["data"].update(per_class=int(k), subset_seed=int(seed))
    data["model"]["conditional"] = True
    data["tracking"]["enabled"] = False
    data["eval"]["metrics"] = []
    data["train"]["eval_ticks"] = 0
    if gan_kimg is not None:
        data["train"]["total_kimg"] = float(gan_kimg)
    n = k * num_classes
    if data["optim"]["batch_size"] > n:
        b = 1 << (n.bit_length() - 1)
        log(f"K={k}: optim.batch_size {data['optim']['batch_size']} > {n} images; using {b}")
        data["optim"]["batch_size"] = b
    return build_config(data)


def train_subset_gan(base_cfg, k: int, seed: int, subset: torch.Tensor, gan_kimg: Optional[float] = None,
                     run_dir: Optional[Path] = None, device: Optional[torch.device] = None, num_classes: int = 10,
                     log: Callable[[str], None] = lambda s: None, progress: Optional[Progress] = None,
                     init: Any = None):
    """Train a conditional GAN with the engine on the K-per-class subset; returns (sampler, info).
    Refuses to go on if the engine's training images are not exactly `subset`. `init`
    (raygan.tasks.transfer.InitWeights): start from those networks (an unconditional G pretrained
    on the unlabelled set: its class inputs start at zero, raygan.models.transfer)."""
    import time

    from raygan.engine.loop import Trainer

    cfg = subset_gan_config(base_cfg, k, seed, gan_kimg, num_classes, log)
    reporter = _GanProgress(progress, cfg.train.total_nimg) if progress is not None else None
    trainer = Trainer(cfg, run_dir, reporter=reporter, device=device, evaluator=None, init=init)
    done = list_checkpoints(Path(run_dir) / "checkpoints") if run_dir is not None else []
    if done:  # this cell's run is there (an earlier call with the same work dir): resume it exactly
        trainer.load(done[-1])
    got = trainer.task.subset_indices
    if got is None or not torch.equal(got.cpu(), subset.cpu()):
        raise RuntimeError(f"K={k} seed={seed}: the GAN's training images are not the classifiers' subset")
    t0 = time.time()
    summary = trainer.run()
    G = trainer.task.eval_network()
    info = {"source": "trained", "per_class": int(k), "subset_seed": int(seed), "kimg": float(summary["kimg"]),
            "subset_hash": trainer.task.subset["subset_hash"], "train_images": int(len(trainer.task.data.labels)),
            "wall_s": round(time.time() - t0, 1), "network": "G_ema" if trainer.task.G_ema is not None else "G",
            "augment": trainer.task.applied().get("applied_augment", "")}
    if init is not None:
        info["init_from"] = init.source
    if done:
        info["resumed_from"] = done[-1].name
    log(f"K={k} seed={seed}: GAN trained on {info['train_images']} images, {info['kimg']:g} kimg "
        f"in {info['wall_s']:.0f} s ({info['augment'] or 'no D augmentation'})"
        + (f", resumed from its {done[-1].name}" if done else ""))
    return generator_sampler(G, trainer.device), info


class _GanProgress(Reporter):
    """A line at most every `progress.every_s` seconds while a cell's GAN trains: kimg and ETA."""

    def __init__(self, progress: Progress, total_nimg: int):
        self.prog, self.total, self.start_nimg = progress, total_nimg, 0

    def start(self, info: Dict[str, Any]) -> None:
        self.start_nimg = int(info.get("nimg") or 0)

    def progress(self, nimg: int) -> None:
        self.prog.step(nimg - self.start_nimg, self.total - self.start_nimg,
                       f"{nimg / 1000:.1f}/{self.total / 1000:g} kimg")


def load_run_generator(run_dir: Union[str, Path], device: Optional[torch.device] = None):
    """The exported (EMA) generator of a run's last checkpoint (or of a checkpoint directory)."""
    from raygan.tasks.loading import load_model

    p = Path(run_dir)
    ckpt = p if (p / "state.pt").is_file() else None
    if ckpt is None:
        found = list_checkpoints(p / "checkpoints") if (p / "checkpoints").is_dir() else []
        if not found:
            raise ConfigError(f"--run-dir {run_dir}: no checkpoint found (looked in {p / 'checkpoints'})")
        ckpt = Path(found[-1])
    loaded = load_model(ckpt, device=device, expect_task="generate")
    if int(loaded.model_spec.get("num_classes") or 0) < 2:
        raise ConfigError(f"--run-dir {run_dir}: the generator is unconditional; +gan needs a class-conditional one "
                          f"(model.conditional: true)")
    return loaded


def run_augment(
    run_dir: Union[str, Path, None] = None,
    real_per_class: Sequence[int] = (10, 50, 100),
    synthetic_per_class: int = 1000,
    classic: Union[str, Sequence[str]] = "flip,translate,rotate,scale",
    seeds: Union[int, Sequence[int]] = 3,
    *,
    base: Any = DEFAULT_BASE,
    overrides: Sequence[str] = (),
    gan_kimg: Optional[float] = None,
    conditions: Sequence[str] = CONDITIONS,
    recipe: Recipe = RECIPE,
    work_dir: Union[str, Path, None] = None,
    plot_path: Union[str, Path, None] = None,
    table_path: Union[str, Path, None] = None,
    outputs: Optional[Outputs] = None,
    make_plot: bool = True,
    device: Union[str, torch.device, None] = None,
    log: Callable[[str], None] = print,
    real_fraction: Optional[float] = None,
    estimate: bool = True,
    dry_run: bool = False,
    progress_s: float = 30.0,
    on_result: Optional[OnResult] = None,
    init_from: Optional[str] = None,
) -> Optional[AugmentOutcome]:
    """The whole `raygan augment` experiment; see the module docstring.

    `seeds`: a count n (seeds 0..n-1) or the seeds themselves. `base`/`overrides`/`gan_kimg`:
    the GAN each cell trains (ignored with `run_dir`, whose data format the classifiers then
    use). `work_dir` keeps each cell's GAN run (checkpoints, sample grids); default: a temp
    dir; a cell whose run is already there resumes it (exactly) instead of starting again.
    `table_path` / `plot_path`: where the table (text) and the PNG go (default work_dir/augment.txt,
    .png); all outputs are checked before anything trains (or given, checked, as `outputs`), the
    table is written first and the plot last (`make_plot=False` leaves the plot to the caller).
    `estimate`: time a few steps here and log the plan with its expected duration before
    training (`dry_run`: only that; returns None). `progress_s`: a progress line at most this
    often inside a long GAN or classifier. `on_result`: see run_augment_experiment.
    `real_fraction`: the share of real images in the +gan training sets (default: concatenate).
    `init_from` (a run dir, checkpoint or models:/NAME/VERSION, typically an unconditional G trained
    on the whole unlabelled training set): each cell's GAN starts from it (the few-labels recipe);
    the source's own config (+ `overrides`) is then the base, made conditional on the subset."""
    from raygan.data import load_dataset
    from raygan.engine.device import resolve_device

    seed_list = list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) else list(seeds)
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"--seeds needs a positive count or a list of seeds, got {seeds!r}")
    need_gan = any("gan" in c for c in conditions)
    validate(list(real_per_class), seed_list, (lambda *a: None) if need_gan else None, synthetic_per_class,
             classic, recipe, conditions, real_fraction)
    out = outputs or prepare_outputs(work_dir, plot_path, table_path)
    dev = resolve_device(str(device) if device is not None else "auto")
    work = out.work
    gans: Dict[str, Dict[str, Any]] = {}

    init = None
    if init_from is not None:
        if run_dir is not None:
            raise ConfigError("--init-from trains each cell's GAN from a pretrained one; --run-dir samples one "
                              "generator as it is: give one of them")
        from raygan.hosts.init_source import absolute, load_source
        from raygan.tasks import build_config

        init = load_source(absolute(init_from))
        # every cell's GAN is conditional: so is the base (class terms such as loss.ac_weight can be set)
        src = dict(init.config, train=dict(init.config.get("train") or {}, init_from=init.source),
                   model=dict(init.config.get("model") or {}, conditional=True))
        base = build_config(src)
    if run_dir is not None:
        loaded = load_run_generator(run_dir, dev) if need_gan else None
        cfg = loaded.config if loaded is not None else _base_config(base, overrides)
    else:
        loaded = None
        cfg = _base_config(base, overrides)
    d = cfg.data
    channels = int(loaded.model_spec["channels"]) if loaded is not None else d.channels
    train = load_dataset(d.name, root=d.root, split="train", resolution=d.resolution, channels=channels,
                         download=d.download)
    test = load_dataset(d.name, root=d.root, split="test", resolution=d.resolution, channels=channels,
                        download=d.download)

    run_info: Dict[str, Any] = {}
    sample: Optional[Sampler] = None
    if loaded is not None:
        sample = generator_sampler(loaded.module, dev)
        sub = loaded.model_spec.get("train_subset") or {}
        run_info = {"source": f"run {run_dir}", "checkpoint": loaded.checkpoint, "kimg": loaded.nimg / 1000,
                    "train_images": int(sub.get("subset_size") or (loaded.config.data.limit or len(train.labels))),
                    "subset_hash": sub.get("subset_hash", "")}
        too_much = [k for k in real_per_class if run_info["train_images"] > k * train.num_classes]
        if too_much:
            log(f"warning: the given generator learnt from {run_info['train_images']} training images, more than "
                f"K per class for K={','.join(map(str, too_much))}: +gan there uses data real-only does not see")

    plan = Plan([], Rates(0.0, 0.0, 0.0), "")
    if estimate or dry_run:
        plan = _plan(cfg, run_dir is None and need_gan, sample, train, test, list(real_per_class), seed_list,
                     conditions, recipe, classic, synthetic_per_class, gan_kimg, work, dev)
        log(plan.describe())
    if dry_run:
        return None
    prog = Progress(plan, log, every_s=progress_s)

    if loaded is not None:
        def make_sampler(k: int, s: int, idx: torch.Tensor) -> Sampler:
            gans[f"K={k} seed={s}"] = run_info
            assert sample is not None
            return sample
    else:
        def make_sampler(k: int, s: int, idx: torch.Tensor) -> Sampler:
            smp, info = train_subset_gan(cfg, k, s, idx, gan_kimg, work / f"gan-K{k}-s{s}", dev, train.num_classes,
                                         log, prog, init)
            gans[f"K={k} seed={s}"] = info
            return smp

    result = run_augment_experiment(
        (train.images, train.labels), (test.images, test.labels), train.num_classes, list(real_per_class),
        seed_list, make_sampler if need_gan else None, synthetic_per_class, classic, recipe, conditions, log,
        train_name=f"{d.name}:train", test_name=f"{d.name}:test", real_fraction=real_fraction, progress=prog,
        on_result=on_result)
    protocol = dict(result.protocol)
    protocol["gan_source"] = f"run {run_dir}" if run_dir is not None else "trained per (K, seed) on the subset" + (
        f", from {init.source}" if init is not None else "")
    if run_dir is None and need_gan:
        gcfg = subset_gan_config(cfg, max(real_per_class), 0, gan_kimg, train.num_classes)
        protocol.update({"gan_base": cfg.preset or "config", "gan_arch": gcfg.model.arch,
                         "gan_kimg": gcfg.train.total_kimg, "gan_augment": _augment_name(gcfg)})
    elif loaded is not None:
        protocol.update({"gan_checkpoint": loaded.checkpoint, "gan_train_images": run_info["train_images"],
                         "gan_subset_hash": run_info["subset_hash"]})
    result = dataclasses.replace(result, protocol=protocol)
    table = render_table(result)
    out.table.write_text(table + "\n")  # the table first: a late failure (the plot) loses nothing
    png = plot(result, str(out.plot)) if make_plot else None
    return AugmentOutcome(result, table, png, protocol, gans, str(out.table))


def _plan(cfg, train_gans: bool, sample: Optional[Sampler], train, test, ks: List[int], seeds: List[int],
          conditions: Sequence[str], recipe: Recipe, classic, synthetic_per_class: int, gan_kimg: Optional[float],
          work: Path, dev: torch.device) -> Plan:
    """Measure the rates here (a few seconds) and lay out every item with its expected time."""
    from raygan.metrics.classify import classic_augmentation

    nc = train.num_classes
    few = min(len(train.labels), 512)
    clf, clf_classic, pred = classifier_rates(train.images[:few].to(dev), train.labels[:few].to(dev),
                                              test.images.to(dev), nc, recipe, classic_augmentation(classic))
    rates = Rates(clf, clf_classic, pred)
    gan_steps: Dict[Tuple[int, int], Tuple[int, int]] = {}
    note = ""
    if train_gans:
        first = subset_gan_config(cfg, max(ks), seeds[0], gan_kimg, nc)
        rates.gan_step, rates.gan_batch, rates.sample_image = gan_rates(first, dev, nc)
        for k in ks:
            for s in seeds:
                gcfg = subset_gan_config(cfg, k, s, gan_kimg, nc)
                batch, total = gcfg.optim.batch_size, gcfg.train.total_nimg
                done = list_checkpoints(work / f"gan-K{k}-s{s}" / "checkpoints")
                start = int(CHECKPOINT_NAME.match(done[-1].name).group(1)) if done else 0
                gan_steps[(k, s)] = (math.ceil(max(total - start, 0) / batch), batch)
        note = f" ({cfg.preset or 'config'}, {first.train.total_kimg:g} kimg each)"
    elif sample is not None:
        rates.sample_image = _timed(lambda: sample(torch.arange(200) % nc)) / 200
    cells = [(k, s) for k in ks for s in seeds]
    return build_plan(cells, conditions, recipe, rates, len(test.labels), synthetic_per_class * nc, gan_steps, note)


def gan_rates(gcfg, dev: torch.device, num_classes: int) -> Tuple[float, int, float]:
    """(s per GAN training step, its batch, s per generated image) of this config, from a few
    steps of a throwaway trainer (no run dir: nothing is written)."""
    from raygan.engine.loop import Trainer

    trainer = Trainer(gcfg, None, device=dev, evaluator=None)
    task = trainer.task
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def steps(tick):
        for _ in range(5):
            task.train_step(0)
            sync()
            tick()

    step = median_step(steps)
    sample = generator_sampler(task.eval_network(), dev)
    image = _timed(lambda: sample(torch.arange(200) % num_classes)) / 200
    return step, int(gcfg.optim.batch_size), image


def _augment_name(cfg) -> str:
    parts: List[str] = []
    if cfg.augment.diffaugment:
        parts.append(f"diffaugment({cfg.augment.diffaugment})")
    if cfg.augment.ada is not None and cfg.augment.ada.enabled:
        parts.append(f"ada(target={cfg.augment.ada.target})")
    return "+".join(parts) or "none"
