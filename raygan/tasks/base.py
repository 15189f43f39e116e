"""What the engine hosts: a task owns everything that differs between generation, repair and
translation; the loop, checkpoints, NaN guard, DDP, Ray hosts, MLflow and the CLI only talk to
this interface and never ask which task runs.

A task owns
- its data and the batch it draws (latents + labels; a degraded/clean pair; an A and a B batch),
- the networks it builds (by registry name) and their optimisers and grad scalers,
- its D and G phases (registered losses, regularisers, augmentations plus its own terms),
- the statistics it reports per tick, by name,
- how it is judged: its evaluator (the metrics registry says which metrics apply to which task,
  their directions and what each needs),
- its state beyond networks and optimisers (data position, image pools, ADA p),
- the picture it logs per tick, and the network it exports (with what rebuilds it without data).

Construction happens in two phases so that every task draws its initial weights from the same
seeded stream: `setup_data()` (no random draws), then `build()` under `seed_all(cfg.seed)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple

import torch
from torch import nn

from raygan.config.sections import register_task, unregister_task
from raygan.engine.checkpoint import load_state_dict_checked
from raygan.engine.stats import StepStats
from raygan.errors import ConfigError
from raygan.registry import Registry

#: the shared GAN parts a task may leave out: name -> (does this config use it?, the key that sets it).
#: A task lists those it does not use in `Task.unused`; a config that sets one is refused in one line.
SHARED_PARTS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "conditional": (lambda c: c.model.conditional, "model.conditional"),
    "regularizer": (lambda c: c.regularizer.name != "none", "regularizer.name"),
    "diffaugment": (lambda c: bool(c.augment.diffaugment), "augment.diffaugment"),
    "ada": (lambda c: c.augment.ada is not None, "augment.ada"),
    "n_critic": (lambda c: c.optim.n_critic != 1, "optim.n_critic"),
    "ema": (lambda c: c.ema.half_life_kimg > 0, "ema.half_life_kimg"),
    "per_class": (lambda c: c.data.per_class is not None, "data.per_class"),
    "crop": (lambda c: c.data.crop is not None, "data.crop"),
    "stream": (lambda c: c.data.stream is not None, "data.stream"),
    "init_from": (lambda c: bool(c.train.init_from), "train.init_from (--init-from)"),
    "freeze_d": (lambda c: c.model.freeze_d > 0, "model.freeze_d"),
}


class TaskRegistry(Registry):
    """Tasks by name; registering one also registers its `Options` model with the config layer, so
    the config's section named after the task is validated by it (raygan.config.sections)."""

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        add = super().register(name, **meta)

        def deco(cls: Any) -> Any:
            add(cls)
            register_task(name, getattr(cls, "Options", None))
            return cls

        return deco

    def unregister(self, name: str) -> None:
        super().unregister(name)
        unregister_task(name)


#: tasks by `cfg.task`; a Task subclass registers itself with `@TASKS.register("name")` in its own
#: module, and raygan.tasks imports every module of the package
TASKS = TaskRegistry("task")


def task_class(name: str) -> type:
    return TASKS.get(name)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP (or compile) wrapper; the module itself otherwise."""
    inner = getattr(module, "module", None)
    if isinstance(inner, nn.Module) and type(module).__name__ in ("DistributedDataParallel", "DataParallel"):
        module = inner
    return getattr(module, "_orig_mod", module)


@dataclass
class TaskContext:
    """Where and how a task runs; filled in by the engine."""

    device: torch.device
    rank: int = 0
    world: int = 1
    batch: int = 0  # per-rank batch size
    amp: str = "none"  # resolved: "none" off CUDA
    prepare_model: Optional[Callable[[nn.Module], nn.Module]] = None  # Ray Train's DDP wrapper
    compile: bool = False
    channels_last: bool = False
    init: Any = None  # raygan.tasks.transfer.InitWeights: start the networks from another run's


@dataclass
class ExportedModel:
    """The network a run delivers, with what rebuilds it from raygan's registries (no pickle):
    `spec` is JSON (task, config, model spec); `example` is an input batch for signatures."""

    module: nn.Module
    spec: Dict[str, Any]
    example: Optional[torch.Tensor] = None
    extra: Dict[str, Any] = field(default_factory=dict)


class Task:
    name: ClassVar[str] = ""
    #: the checkpointed network that is exported (and loaded by `raygan sample/repair/...`)
    export_network: ClassVar[str] = "G"
    #: the shipped search space `raygan tune` uses for this task when none is given
    search_space: ClassVar[str] = "default"
    #: the task can train AC-GAN's class term (`loss.ac_weight`): it has class-conditional G and D
    class_term: ClassVar[bool] = False
    #: the task's own options, a `raygan.config.TaskOptions` model validating the config section named
    #: after the task (`cfg.<name>`); None: the task has none
    Options: ClassVar[Optional[type]] = None
    #: shared parts (SHARED_PARTS) this task does not use, each with why; set in a config -> refused
    unused: ClassVar[Dict[str, str]] = {}

    @classmethod
    def default_search_space(cls, cfg) -> str:
        """The shipped space `raygan tune` uses for this config when none is given."""
        return cls.search_space

    def __init__(self, cfg, ctx: TaskContext):
        self.cfg, self.ctx = cfg, ctx
        self.device = ctx.device
        self.networks: Dict[str, nn.Module] = {}  # plain modules, checkpointed by name
        self.optimizers: Dict[str, torch.optim.Optimizer] = {}
        self.scalers: Dict[str, torch.amp.GradScaler] = {}
        self.stats: Optional[StepStats] = None
        self.evaluator: Any = None

    # ------------------------------------------------------------------ config
    @classmethod
    def check_config(cls, cfg) -> None:
        """Fail on names and combinations this task cannot run, before any data is read."""
        from raygan.metrics.registry import METRICS, applies_to

        for m in cfg.eval.metrics:
            if not applies_to(m, cls.name):
                ours = [n for n in METRICS.names() if applies_to(n, cls.name)]
                raise ConfigError(f"config: eval.metrics: '{m}' is not computed for task '{cls.name}'; "
                                  f"use {', '.join(ours)}")
        for part, why in cls.unused.items():
            used, key = SHARED_PARTS[part]
            if used(cfg):
                raise ConfigError(f"config: {key}: task '{cls.name}' does not use it ({why})")
        if cfg.data.crop is not None and cfg.data.crop > cfg.data.resolution:
            raise ConfigError(f"config: data.crop {cfg.data.crop} is larger than data.resolution "
                              f"{cfg.data.resolution} (the images' longer side): use data.crop 8..{cfg.data.resolution}, "
                              f"or raise data.resolution")
        if cfg.loss.ac_weight and not cls.class_term:
            raise ConfigError(f"config: loss.ac_weight: the AC-GAN class term is for a class-conditional "
                              f"generate run; task '{cls.name}' has no classes to learn")

    # ------------------------------------------------------------------ building
    def setup_data(self) -> None:
        raise NotImplementedError

    def build(self) -> None:
        raise NotImplementedError

    def setup_evaluation(self, evaluator: Any = "auto") -> None:
        """`evaluator`: "auto" (the task's own), None (no metrics) or a callable
        `(network, num_samples) -> (values, protocol)`."""
        self.evaluator = self.default_evaluator() if evaluator == "auto" else evaluator

    def default_evaluator(self) -> Any:
        return self.evaluator_for(self.cfg, self.device, self.model_spec())

    @classmethod
    def with_eval_seed(cls, cfg, seed: int):
        """The config with another evaluation seed (a sweep re-evaluates its best trials on seeds the
        proxy never used): the noise of generated samples by default; a task whose evaluation draws
        something else (e.g. the test set's degradations) overrides this."""
        return cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"seed": int(seed)})})

    @classmethod
    def eval_uses_seed(cls, cfg) -> bool:
        """Whether another evaluation seed (`with_eval_seed`) can change the values: a task whose
        evaluation draws nothing at random is re-evaluated once, not N times for N equal values."""
        return True

    @classmethod
    def evaluator_for(cls, cfg, device: torch.device, model_spec: Dict[str, Any]) -> Any:
        """A callable `(network, num_samples) -> (values, protocol)` for this task's metrics, built
        from the config and model spec alone, so a loaded model is judged exactly as in training."""
        return None

    # ------------------------------------------------------------------ training
    def images_per_step(self) -> int:
        """Real images shown to D per train_step, over all ranks (the kimg clock)."""
        raise NotImplementedError

    def train_step(self, nimg: int) -> None:
        raise NotImplementedError

    def read_stats(self, reduce=None) -> Dict[str, float]:
        return self.stats.read(reduce) if self.stats is not None else {}

    def end_tick(self, nimg: int) -> Dict[str, float]:
        """Per-tick values beyond the step statistics (e.g. ADA p); called on every rank."""
        return {}

    # ------------------------------------------------------------------ evaluation and pictures
    def eval_network(self) -> nn.Module:
        return self.networks[self.export_network]

    def evaluate(self, num_samples: int) -> Optional[Tuple[Dict[str, float], Dict[str, Any]]]:
        if self.evaluator is None:
            return None
        return self.evaluator(self.eval_network(), num_samples)

    def picture(self, path: Path) -> Path:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state(self) -> Dict[str, Any]:
        """Task state beyond networks/optimisers/scalers (tensors and plain values only)."""
        return {}

    def load_state(self, state: Dict[str, Any], same_world: bool) -> None:
        pass

    def load_networks(self, models: Dict[str, Any], where: Path) -> None:
        for name, module in self.networks.items():
            if name not in models:
                raise ConfigError(f"checkpoint {where} has no network '{name}'")
            load_state_dict_checked(module, models[name], f"network {name}", where)

    def apply_optim_config(self) -> None:
        """Re-apply the config's learning rates/betas after a resume (they may change on purpose)."""

    def applied(self) -> Dict[str, Any]:
        """Hyperparameters as the built objects use them (read back, not from the config)."""
        return {}

    # ------------------------------------------------------------------ export
    def model_spec(self) -> Dict[str, Any]:
        """What, beyond the config, rebuilds the exported network without reading data."""
        return {}

    @classmethod
    def exported_state(cls, models: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
        """(which network, its state dict) out of a checkpoint's networks: the EMA copy of
        `export_network` when the run kept one. A task exporting several networks as one
        module (e.g. both translation directions) overrides this to compose them."""
        name = f"{cls.export_network}_ema" if f"{cls.export_network}_ema" in models else cls.export_network
        if name not in models:
            raise ConfigError(f"checkpoint has no network '{name}'")
        return name, models[name]

    @classmethod
    def build_inference(cls, cfg, spec: Dict[str, Any]) -> nn.Module:
        """The exported network, freshly built (weights to be loaded by the caller)."""
        raise NotImplementedError

    def export(self) -> ExportedModel:
        raise NotImplementedError
