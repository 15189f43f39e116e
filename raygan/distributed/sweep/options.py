"""How a sweep runs, declared once: the `raygan tune` flags, the Python API and the persisted
plan all come from `SweepOptions`; checks that involve the base config are in `check`."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import model_validator

from raygan.config import Config
from raygan.config.schema import SEED_MAX
from raygan.errors import ConfigError, RayganError
from raygan.options import Options, opt


#: bounds of the numeric options (checked by --dry-run too): the sampler's seed is what numpy's
#: RandomState (Optuna's samplers) accepts; counts stay far below what Ray and the plan can hold
MAX_SEED = SEED_MAX  # as numpy and Optuna take it
MAX_COUNT = 1_000_000
MAX_SAMPLES = 10_000_000
MAX_REEVAL_SEEDS = 1000


class TuneError(RayganError):
    """A sweep that cannot run as asked (options, resources, nothing to resume)."""


class SweepOptions(Options):
    objective: Optional[str] = opt(None, help="the metric value to optimise, its direction from the metrics "
                                              "registry (default: the config's first metric, e.g. fid or psnr)")
    samples: int = opt(8, ge=1, le=MAX_COUNT, metavar="N", help="trials to sample")
    max_concurrent: Optional[int] = opt(None, ge=1, le=MAX_COUNT, metavar="M", help="trials at once (default: as many as fit)")
    workers_per_trial: int = opt(1, ge=1, le=MAX_COUNT, metavar="W",
                                 help="1: each trial trains in its own process; W>1: a Ray Train DDP run per trial")
    cpus_per_worker: float = opt(1.0, gt=0, allow_inf_nan=False, metavar="C", help="CPUs per worker")
    gpus_per_worker: float = opt(0.0, ge=0, allow_inf_nan=False, metavar="G", help="GPUs per worker")
    budget_kimg: Optional[float] = opt(None, gt=0, allow_inf_nan=False, metavar="K",
                                       help="kimg per trial = ASHA's max_t (default: the config's train.total_kimg)")
    total_kimg: Optional[float] = opt(None, gt=0, allow_inf_nan=False, metavar="T", help="stop once all trials together trained T kimg")
    scheduler: Literal["asha", "fifo"] = opt("asha", choices=["asha", "fifo"], help="early stopping")
    sampler: Literal["tpe", "random"] = opt("tpe", choices=["tpe", "random"], help="how trials are sampled")
    seed: int = opt(0, ge=0, le=MAX_SEED, help="the sampler's seed (0 to 2**32-1, as numpy and Optuna take it)")
    grace_kimg: Optional[float] = opt(None, gt=0, allow_inf_nan=False, metavar="K",
                                      help="ASHA's first rung in kimg (default: budget / reduction-factor^2)")
    reduction_factor: float = opt(3.0, gt=1, allow_inf_nan=False, help="ASHA's reduction factor")
    tick_kimg: Optional[float] = opt(None, gt=0, allow_inf_nan=False, metavar="K",
                                     help="evaluate the proxy every K kimg (default: min(train.tick_kimg, grace))")
    top_k: int = opt(3, ge=1, le=MAX_COUNT, help="trials re-evaluated at the end")
    reeval_samples: Optional[int] = opt(None, ge=2, le=MAX_SAMPLES, help="samples per re-evaluation (default: eval.final_num_samples)")
    reeval_seeds: int = opt(3, ge=1, le=MAX_REEVAL_SEEDS, help="evaluation seeds per re-evaluated trial")
    register_model: Optional[str] = opt(None, metavar="NAME",
                                        help="registered model for the winner (default: tracking.register_model)")
    storage: Optional[str] = opt(None, metavar="PATH|URI",
                                 help="where trials' checkpoints live (default $RAYGAN_STORAGE or ./runs)")
    name: Optional[str] = opt(None, help="the sweep's name under --storage and its MLflow experiment "
                                         "(default tune-<preset>-<time>)")
    address: Optional[str] = opt(None, help="a running cluster (default: $RAY_ADDRESS, else a private local one)")
    max_failures: int = opt(0, ge=-1, le=MAX_COUNT, metavar="K", help="retry a failed trial from its last checkpoint up to K times")
    progress: bool = opt(True, flag="--progress", help="live status lines")
    finish: bool = opt(True, flag="--finish", help="re-evaluate and register the winner after the trials")

    @model_validator(mode="after")
    def _name(self):
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise ValueError(f"sweep name {self.name!r}: no slashes (it names a folder under the storage path)")
        return self


def budget_kimg(cfg: Config, opts: SweepOptions) -> float:
    return float(opts.budget_kimg if opts.budget_kimg is not None else cfg.train.total_kimg)


def grace_kimg(cfg: Config, opts: SweepOptions) -> float:
    if opts.grace_kimg is not None:
        return float(opts.grace_kimg)
    return budget_kimg(cfg, opts) / opts.reduction_factor ** 2


def objective(cfg: Config, opts: SweepOptions) -> str:
    """The metric value trials are judged by, checked against the registry and the task."""
    from raygan.metric_names import SPECS, canonical, direction, known, primary_key

    if opts.objective is None:
        if not cfg.eval.metrics:
            raise TuneError("a sweep needs an objective: add a metric to eval.metrics or pass --objective")
        return primary_key(cfg.eval.metrics[0])
    key = canonical(opts.objective)  # domain-acc is domain_acc
    if not known(key) and not any(key in s["keys"] for s in SPECS.values()):
        import raygan.metrics  # noqa: F401  (registers every metric: one beyond SPECS is known after it)
    if known(key):
        return primary_key(key)
    direction(key)  # a value some metric produces
    return key


def objective_metric(key: str) -> str:
    """The metric name that produces a value key (psnr -> psnr, precision -> pr)."""
    from raygan.metric_names import metric_of

    name = metric_of(key)
    if name is None:
        raise ConfigError(f"no metric produces '{key}'")
    return name


def check(cfg: Config, opts: SweepOptions) -> None:
    budget = budget_kimg(cfg, opts)
    grace = grace_kimg(cfg, opts)
    if not 0 < grace <= budget:
        raise TuneError(f"--grace-kimg must be in (0, budget {budget:g}], got {grace:g}")
    if opts.gpus_per_worker == 0 and cfg.train.device.startswith("cuda"):
        raise TuneError(f"config: train.device is {cfg.train.device}, but no --gpus-per-worker were asked for")
    objective(cfg, opts)
