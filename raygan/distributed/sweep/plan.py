"""A sweep's plan: everything a trial, the driver and `--resume` need, typed and persisted as
`<storage>/<name>/raygan-sweep.json`. Built once by `make_plan`, read back by `SweepPlan.load`."""
from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict

from raygan.hosts import storage
from raygan.config import Config
from raygan.distributed.sweep.options import SweepOptions, TuneError, budget_kimg, grace_kimg, objective
from raygan.distributed.sweep.space import SearchSpace

PLAN_FILE = "raygan-sweep.json"
TRAINERS_DIR = "trainers"  # <storage>/<name>/trainers/train-<trial_id>: W>1 trials' Ray Train runs


class SweepPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 2
    name: str
    storage: str
    base: Dict[str, Any]  # the trial base config (every trial = base + its sampled values)
    space: Dict[str, Any]
    space_source: str
    space_text: str = ""
    options: SweepOptions
    objective: str  # a metric value key (fid, psnr, cas, ...)
    mode: Literal["min", "max"]
    experiment: str
    tracking_uri: Optional[str] = None
    parent_run_id: Optional[str] = None
    max_concurrent: int = 1
    reeval_samples: int
    reeval_seeds: List[int]
    register_model: Optional[str] = None
    env: Dict[str, str] = {}
    created: float = 0.0

    # ------------------------------------------------------------------ derived
    @property
    def path(self) -> str:
        return storage.join(self.storage, self.name)

    @property
    def trainers_path(self) -> str:
        return storage.join(self.storage, self.name, TRAINERS_DIR)

    @property
    def budget(self) -> float:
        return float(self.base["train"]["total_kimg"])

    def search_space(self) -> SearchSpace:
        return SearchSpace(self.space, self.space_source, self.base)

    def trial_config(self, sampled: Dict[str, Any]) -> Config:
        return self.search_space().apply(self.base, sampled)

    # ------------------------------------------------------------------ persistence
    def save(self) -> None:
        storage.write_text(storage.join(self.path, PLAN_FILE), self.model_dump_json(indent=1))

    @classmethod
    def load(cls, storage_path: str, name: str) -> "SweepPlan":
        text = storage.read_text(storage.join(storage_path, name, PLAN_FILE))
        if text is None:
            raise TuneError(f"no sweep named '{name}' in {storage_path} ({PLAN_FILE} missing): nothing to resume "
                            f"(pass the same --storage it ran with)")
        try:
            return cls.model_validate_json(text)
        except ValueError:
            raise TuneError(f"{storage.join(storage_path, name, PLAN_FILE)} is not a plan this raygan reads "
                            f"(written by another version?)") from None


def exists(storage_path: str, name: str) -> bool:
    return storage.exists(storage.join(storage_path, name, PLAN_FILE)) or \
        storage.exists(storage.join(storage_path, name, "tuner.pkl"))


def trial_base(cfg: Config, opts: SweepOptions) -> Dict[str, Any]:
    """The config every trial starts from: the user's, with the sweep's training protocol.

    Each tick is evaluated (the proxy the scheduler and sampler see) with the same sample count
    at the end as during training, and checkpointed (ASHA may stop a trial at any rung; a resumed
    trial continues from its last tick). Trials log no model; the winner's is logged after the
    re-evaluation."""
    from raygan.distributed.sweep.options import objective_metric

    d = cfg.to_dict()
    budget = budget_kimg(cfg, opts)
    tick = opts.tick_kimg if opts.tick_kimg is not None else min(cfg.train.tick_kimg, grace_kimg(cfg, opts))
    d["train"].update({"total_kimg": budget, "tick_kimg": min(tick, budget), "eval_ticks": 1, "snapshot_ticks": 1})
    d["eval"]["final_num_samples"] = d["eval"]["num_samples"]
    metric = objective_metric(objective(cfg, opts))
    if metric not in d["eval"]["metrics"]:
        d["eval"]["metrics"] = [metric] + list(d["eval"]["metrics"])
    d["tracking"]["register_model"] = None
    from raygan.precheck import build_config

    build_config(d)  # the objective applies to this task
    return d


def make_plan(cfg: Config, opts: SweepOptions, space: SearchSpace, base: Dict[str, Any], storage_path: str,
              name: str, max_concurrent: int, env: Dict[str, str]) -> SweepPlan:
    from raygan.metrics.registry import direction

    key = objective(cfg, opts)
    return SweepPlan(
        name=name, storage=storage_path, base=base, space=space.raw, space_source=space.source,
        space_text=getattr(space, "text", ""), options=opts, objective=key, mode=direction(key),
        experiment=name, tracking_uri=cfg.tracking.uri if cfg.tracking.enabled else None,
        max_concurrent=max_concurrent, reeval_samples=opts.reeval_samples or cfg.eval.final_num_samples,
        reeval_seeds=fresh_seeds(cfg, opts.reeval_seeds),
        register_model=opts.register_model or cfg.tracking.register_model, env=env, created=time.time())


def fresh_seeds(cfg: Config, n: int) -> List[int]:
    """n evaluation seeds after eval.seed that the trials' proxy never used (neither its noise seed
    nor a repair run's degradation seed)."""
    used = {cfg.eval.seed, cfg.repair.eval_seed}
    seeds, s = [], cfg.eval.seed
    while len(seeds) < n:
        s += 1
        if s not in used:
            seeds.append(s)
    return seeds


def check_batch_split(space: SearchSpace, base: Dict[str, Any], workers: int) -> None:
    if workers == 1:
        return
    from raygan.distributed.sweep.space import walk

    sizes = {base["optim"]["batch_size"]}
    for p in walk(space.params):
        if "optim.batch_size" in p.paths:
            if p.dist != "choice":
                raise TuneError(f"{space.source}: optim.batch_size must be a choice when trials have "
                                f"{workers} workers (each must split evenly)")
            sizes |= set(p.choices)
    bad = sorted(b for b in sizes if int(b) % workers)
    if bad:
        raise TuneError(f"{space.source}: optim.batch_size {bad[0]} does not split evenly across "
                        f"{workers} workers per trial")


def tpe_startup(opts: SweepOptions) -> int:
    """Random trials before TPE models the results: Optuna's 10 would leave a small sweep
    random all along; a quarter of the samples (3 to 10)."""
    return max(3, min(10, opts.samples // 4))


def describe_sampler(opts: SweepOptions) -> str:
    if opts.sampler == "tpe":
        return f"optuna TPESampler(seed={opts.seed}, n_startup_trials={tpe_startup(opts)}, constant_liar=True)"
    return f"optuna RandomSampler(seed={opts.seed})"


def describe_scheduler(cfg: Config, opts: SweepOptions) -> str:
    if opts.scheduler == "fifo":
        return f"fifo (every trial trains {budget_kimg(cfg, opts):g} kimg)"
    return (f"asha(time_attr=kimg, grace_period={grace_kimg(cfg, opts):g}, reduction_factor="
            f"{opts.reduction_factor:g}, max_t={budget_kimg(cfg, opts):g}, stop_last_trials=False)")


def describe(plan: SweepPlan, cfg: Config) -> Dict[str, Any]:
    """The plan as MLflow params of the sweep's parent run."""
    o = plan.options
    return {"sweep.samples": o.samples, "sweep.sampler": describe_sampler(o),
            "sweep.scheduler": describe_scheduler(cfg, o), "sweep.objective": f"{plan.objective} ({plan.mode})",
            "sweep.budget_kimg": plan.budget, "sweep.total_kimg": o.total_kimg,
            "sweep.workers_per_trial": o.workers_per_trial, "sweep.cpus_per_worker": o.cpus_per_worker,
            "sweep.gpus_per_worker": o.gpus_per_worker, "sweep.max_concurrent": plan.max_concurrent,
            "sweep.top_k": o.top_k, "sweep.reeval_samples": plan.reeval_samples,
            "sweep.reeval_seeds": json.dumps(plan.reeval_seeds), "sweep.space": plan.space_source,
            "sweep.proxy": f"{plan.base['eval']['extractor']} {plan.objective} on {plan.base['eval']['num_samples']} "
                           f"samples every {plan.base['train']['tick_kimg']:g} kimg"}
