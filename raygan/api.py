"""raygan from Python (a notebook, a script): the same doors as the CLI, which is built on them.

    import raygan.api as rg

    cfg = rg.config("quickstart", overrides=["train.total_kimg=20"])
    summary = rg.train(cfg, run_dir="runs/nb")              # or ray=rg.RayOptions(workers=2)
    values, protocol = rg.evaluate("runs/nb", metrics=["fid", "kid"])
    images, labels = rg.sample("runs/nb", num=16)           # uint8 NCHW (+ labels if conditional)
    grid, _ = rg.sample("runs/nb", num=4, interp=8, trunc=0.7)  # 4 rows of 8-step interpolations
    curve = rg.trunc_sweep([0.5, 0.7, 1.0], "runs/nb", plot="sweep.png")  # FID, precision, recall vs psi
    result = rg.tune(cfg, rg.SweepOptions(samples=8, budget_kimg=40))

Every user mistake raises a `raygan.errors.RayganError` subclass with a one-line message.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple, Union

from raygan.config import Config
from raygan.distributed.options import RayOptions
from raygan.distributed.sweep.options import SweepOptions
from raygan.errors import ArgumentError, ConfigError, RayganError
from raygan.hosts.runstore import RunStore

if TYPE_CHECKING:  # torch loads where a network does: `import raygan.api` stays cheap
    import torch

__all__ = ["config", "train", "evaluate", "trunc_sweep", "sample", "load", "tune", "resume_tune", "RayOptions",
           "SweepOptions"]


def config(preset: Optional[str] = None, file: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """Typed defaults <- preset <- file <- overrides ("a.b=value"), checked."""
    from raygan.tasks import load_config

    return load_config(preset, file, list(overrides))


def _store(run_dir: Union[str, Path, RunStore]) -> RunStore:
    return run_dir if isinstance(run_dir, RunStore) else RunStore(run_dir)


def train(cfg: Optional[Config] = None, run_dir: Union[str, Path, None] = None, resume: bool = False,
          overrides: Sequence[str] = (), ray: Optional[RayOptions] = None, progress: bool = True,
          init_from: Optional[str] = None) -> Dict[str, Any]:
    """Train `cfg` into `run_dir` (default runs/<preset>-<time>), in this process or on Ray
    Train (`ray`). `resume=True` continues the run in `run_dir` with its own config (+ overrides);
    a run started on Ray resumes on Ray with its recorded workers unless `ray` says otherwise.
    `init_from` (a run dir, checkpoint dir or models:/NAME/VERSION; or `train.init_from` in cfg)
    starts the networks from that run's (transfer learning: fresh optimisers and counters)."""
    from raygan.tracking.store import pin

    if resume and init_from is not None:
        raise RayganError("--init-from starts a new run; a resumed run continues from its own checkpoint")
    if resume:
        if run_dir is None:
            raise RayganError("train(resume=True) needs run_dir, the run to continue")
        if cfg is not None:
            raise RayganError("train(resume=True) continues with the run's own config.yaml: pass cfg=None and "
                              "change values with overrides=[...]")
        store = _store(run_dir)
        cfg = store.read_config(list(overrides))
        record = store.read_record()
        if ray is None and record.get("host") == "ray-train":
            try:
                ray = RayOptions(workers=int(record.get("workers", 1)),
                                 cpus_per_worker=float(record.get("cpus_per_worker", 1.0)),
                                 gpus_per_worker=float(record.get("gpus_per_worker", 0.0)))
            except (TypeError, ValueError, OverflowError) as e:  # pydantic's ValidationError is a ValueError
                raise RayganError(f"{store.join('run.json')}: its workers / cpus_per_worker / gpus_per_worker "
                                  f"are not a valid Ray setup ({str(e).splitlines()[0][:80]})") from None
    else:
        if cfg is None:
            raise RayganError("train() needs cfg: raygan.api.config(preset, ...)")
        if overrides:
            from raygan.tasks import with_overrides

            cfg = with_overrides(cfg, overrides)
        if init_from is not None:
            cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": str(init_from)})})
        if cfg.train.init_from:  # absolute: Ray workers run in other directories
            from raygan.hosts.init_source import absolute
            from raygan.tasks import check_config

            cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
                update={"init_from": absolute(cfg.train.init_from)})})
            check_config(cfg)  # a task that cannot start from another run says so
        store = _store(run_dir) if run_dir is not None else None
    cfg = pin(cfg)
    if ray is not None:
        from raygan.hosts import storage
        from raygan.distributed.launch import train_ray

        if store is not None:  # the run dir names the storage (its parent) and the run (its name)
            if ray.storage or ray.name:
                raise RayganError("give either run_dir or ray=RayOptions(storage=..., name=...), not both")
            parent = storage.join(store.location.rstrip("/").rsplit("/", 1)[0]) if storage.is_uri(store.location) \
                else str(Path(store.location).parent)
            ray = ray.model_copy(update={"storage": parent, "name": store.name})
        return train_ray(cfg, ray, resume=resume, progress=progress)
    from raygan.hosts.local import train_local

    return train_local(cfg, store or RunStore.new_default(cfg.preset), resume=resume, progress=progress)


def load(run_dir: Union[str, Path, None] = None, model_uri: Optional[str] = None, checkpoint: Optional[str] = None,
         tracking_uri: Optional[str] = None, device: Union[str, "torch.device"] = "cpu",
         expect_task: Optional[str] = None):
    """(network in eval mode, its config, info) from a run dir's checkpoint or a model URI;
    cheap (no dataset, no trainer) and safe (no pickle)."""
    import torch

    if (run_dir is None) == (model_uri is None):
        raise RayganError("give run_dir or model_uri (one of them)")
    device = torch.device(device)
    if model_uri is not None:
        from raygan.tasks import build_config
        from raygan.tracking.models import load_model_uri
        from raygan.tracking.store import resolve_tracking_uri

        module, spec = load_model_uri(model_uri, resolve_tracking_uri(tracking_uri), expect_task)
        return module.to(device), build_config(spec["config"]), {"source": model_uri, **spec.get("model_spec", {}),
                                                                 "model_spec": spec.get("model_spec", {})}
    from raygan.tasks.loading import load_model

    store = _store(run_dir)
    if checkpoint is None and not store.holds_run():
        raise RayganError(f"run dir {store} holds no run")
    with store.local_checkpoint(checkpoint) as d:
        loaded = load_model(d, device=device, expect_task=expect_task)
    return loaded.module, loaded.config, {"source": loaded.checkpoint, "kimg": loaded.nimg / 1000.0,
                                          "network": loaded.network, "model_spec": loaded.model_spec}


def evaluate(run_dir: Union[str, Path, None] = None, model_uri: Optional[str] = None,
             metrics: Optional[Sequence[str]] = None, num_samples: Optional[int] = None,
             extractor: Optional[str] = None, inception_weights: Optional[str] = None,
             checkpoint: Optional[str] = None, tracking_uri: Optional[str] = None,
             seed: Optional[int] = None, trunc: Optional[float] = None) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """The run's metrics (or others) on its exported network, with their protocol. `trunc` (psi in
    [0, 1]) judges the truncated generator (see `sample`); the protocol then records psi."""
    if trunc is not None:
        check_trunc(trunc)
    module, _, info, evaluator, n = _evaluation(run_dir, model_uri, metrics, num_samples, extractor,
                                                inception_weights, checkpoint, tracking_uri, seed)
    return _judge(module, evaluator, n, trunc, info)


def _evaluation(run_dir, model_uri, metrics, num_samples, extractor, inception_weights, checkpoint, tracking_uri,
                seed, default_metrics: Optional[Sequence[str]] = None, generator_only: bool = False):
    """(network on its device, config, info, the task's evaluator, sample count) of a saved run."""
    from raygan.tasks import build_config
    from raygan.engine.device import resolve_device
    from raygan.tasks import check_config, task_class

    module, cfg, info = load(run_dir, model_uri, checkpoint, tracking_uri,
                             expect_task="generate" if generator_only else None)
    data = cfg.to_dict()
    if metrics is not None or default_metrics is not None:
        data["eval"]["metrics"] = list(metrics if metrics is not None else default_metrics)
    if extractor:
        data["eval"]["extractor"] = extractor
    if inception_weights:
        data["eval"]["inception_weights"] = inception_weights
    cfg = build_config(data)
    check_config(cfg)
    n = num_samples if num_samples is not None else cfg.eval.final_num_samples
    check_sample_count(cfg, n)
    cls = task_class(cfg.task)
    if seed is not None:
        check_seed(seed, "seed")
        cfg = cls.with_eval_seed(cfg, seed)
    device = resolve_device(cfg.train.device)
    evaluator = cls.evaluator_for(cfg, device, info["model_spec"])
    if evaluator is None:
        raise RayganError(f"task '{cfg.task}' has no evaluator")
    return module.to(device), cfg, info, evaluator, n


def _judge(module, evaluator, n: int, trunc: Optional[float], info) -> Tuple[Dict[str, float], Dict[str, Any]]:
    extra: Dict[str, Any] = {}
    if trunc is not None:
        from raygan.tasks.generate.sampling import Truncated, truncation_space

        if not hasattr(module, "z_dim"):
            raise ArgumentError("{name} truncates a generator's latent; this model has none", "trunc")
        extra = {"truncation_psi": float(trunc), "truncation_space": truncation_space(module)}
        module = Truncated(module, trunc)
    values, protocol = evaluator(module, n)
    return values, {**protocol, **extra, "source": info["source"]}


#: what `trunc_sweep` scores when no metrics are given: fidelity (FID, precision) and diversity (recall)
SWEEP_METRICS = ("fid", "pr")


def trunc_sweep(psis: Sequence[float], run_dir: Union[str, Path, None] = None, model_uri: Optional[str] = None,
                metrics: Optional[Sequence[str]] = None, num_samples: Optional[int] = None,
                extractor: Optional[str] = None, inception_weights: Optional[str] = None,
                checkpoint: Optional[str] = None, tracking_uri: Optional[str] = None, seed: Optional[int] = None,
                plot: Union[str, Path, None] = None, log: Optional[bool] = None) -> Dict[str, Any]:
    """The fidelity-diversity curve of truncation: the metrics (default FID, precision, recall) at
    each psi, on the same latents (common random numbers). `plot`: a new PNG of the curve. Logged
    to MLflow (a run of kind `truncation`: values per psi as metrics with step = round(1000 psi),
    the plot and a JSON table) when `log` is True, or when `log` is None and the run tracked to
    MLflow (or `tracking_uri` is given). Returns {"rows": [{"psi", **values}], "protocol", "plot",
    "mlflow_run_id", "tracking_uri"}."""
    psis = [check_trunc(p, "trunc_sweep") for p in psis]
    if not psis or len(set(psis)) != len(psis) or len(psis) > 50:
        raise ArgumentError(f"{{name}} must be 1 to 50 different psi values, got {psis}", "trunc_sweep")
    plot_path = Path(plot) if plot is not None else None
    if plot_path is not None:
        if plot_path.suffix.lower() != ".png":
            raise ArgumentError(f"{{name}} {plot}: the plot is a .png file", "plot")
        if plot_path.exists():
            raise ArgumentError(f"{{name}} {plot} exists; name a new file", "plot")
        if not plot_path.resolve().parent.is_dir():
            raise ArgumentError(f"{{name}} {plot}: no folder {plot_path.parent}", "plot")
    module, cfg, info, evaluator, n = _evaluation(run_dir, model_uri, metrics, num_samples, extractor,
                                                  inception_weights, checkpoint, tracking_uri, seed,
                                                  default_metrics=SWEEP_METRICS, generator_only=True)
    uri = None
    if log or (log is None and (tracking_uri is not None or cfg.tracking.enabled)):
        from raygan.tracking.store import open_client, resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri or (cfg.tracking.uri if cfg.tracking.enabled else None))
        open_client(uri)  # checked before minutes of evaluation
    rows, protocol = [], {}
    for psi in sorted(psis):
        values, protocol = _judge(module, evaluator, n, psi, info)
        rows.append({"psi": psi, **values})
    protocol = {k: v for k, v in protocol.items() if k != "truncation_psi"}
    protocol["truncation_psis"] = sorted(psis)
    out: Dict[str, Any] = {"rows": rows, "protocol": protocol, "plot": None, "mlflow_run_id": None,
                           "tracking_uri": uri}
    if plot_path is not None:
        from raygan.tracking.plots import truncation_png

        out["plot"] = str(truncation_png(rows, plot_path, title=f"{cfg.data.name} {cfg.model.arch}: truncation "
                                                               f"in {protocol['truncation_space']}, {n} samples"))
    if uri is not None:
        from raygan.tracking.truncation import log_truncation_sweep

        source_run = None
        if run_dir is not None:
            source_run = _store(run_dir).read_record().get("run_id")
        out["mlflow_run_id"] = log_truncation_sweep(uri, cfg.tracking.experiment, rows, protocol, out["plot"],
                                                    source=str(info["source"]), source_run_id=source_run)
    return out


def check_seed(seed: int, param: str) -> None:
    """Seeds reach numpy, torch and Python's random: one range for all (as the config's seeds)."""
    from raygan.config.schema import SEED_MAX

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ArgumentError(f"{{name}} must be an integer from 0 to {SEED_MAX} (2**32 - 1), got {seed}", param)


#: most images `sample` makes in memory at once: latents (4 bytes x z_dim) + uint8 pixels each
SAMPLE_MEMORY_BYTES = 2 << 30


def check_sample_count(cfg: Config, n: int) -> None:
    """Enough samples for every metric asked (each metric's `min_samples` in the metrics registry)."""
    from raygan.config.schema import MAX_SAMPLES
    from raygan.metrics.registry import min_samples

    if n < 2:
        raise ArgumentError(f"{{name}} must be at least 2, got {n}", "num_samples")
    if n > MAX_SAMPLES:
        raise ArgumentError(f"{{name}} must be at most {MAX_SAMPLES}, got {n}", "num_samples")
    for m in cfg.eval.metrics:
        need = min_samples(m)
        if n < need:
            raise ArgumentError(f"metric '{m}' needs at least {need} samples, got {{name}} {n}", "num_samples")


#: defaults of `sample`'s num: images; interpolation rows; mixing grid rows (and columns)
SAMPLE_NUM, INTERP_ROWS, MIX_SOURCES = 64, 8, 5
#: most steps of an interpolation row, most sources of a mixing grid
MAX_INTERP, MAX_MIX = 64, 32


def check_trunc(trunc: float, param: str = "trunc") -> float:
    from raygan.tasks.generate.sampling import check_psi

    why = check_psi(trunc)
    if why:
        raise ArgumentError(f"{{name}} {why}", param)
    return float(trunc)


def sample(run_dir: Union[str, Path, None] = None, model_uri: Optional[str] = None, num: Optional[int] = None,
           seed: int = 0, tracking_uri: Optional[str] = None, labels: Optional[Sequence[int]] = None,
           trunc: float = 1.0, class_: Optional[int] = None, interp: Optional[int] = None, mix: bool = False
           ) -> Tuple["torch.Tensor", Optional["torch.Tensor"]]:
    """Generated images as uint8 (N, C, H, W), row-major, and for a conditional G their labels.

    `num` images (default 64); with `interp=N`, `num` rows (default 8) of N images each going
    from one latent to another (slerp in z; lerp in w for a style-based G); with `mix=True`
    (style-based G only) StyleGAN's style-mixing grid of `num` (default 5) row and column sources,
    (num+1)^2 images, labels None. `trunc` (psi in [0, 1]) truncates toward the mean latent: in w
    for a style-based G, else z scaled by psi (psi=0: G(0, y)). `class_=K`: every image of class K
    (conditional G), else `labels`, else classes in turn. The same seed gives the same images."""
    import torch

    from raygan.metrics import to_uint8
    from raygan.tasks.generate.sampling import draw, is_style_based

    check_trunc(trunc)
    check_seed(seed, "seed")
    if interp is not None and mix:
        raise ConfigError("interp and mix are two different grids: give one")
    bad_interp = isinstance(interp, bool) or not isinstance(interp, int) or not 2 <= interp <= MAX_INTERP
    if interp is not None and bad_interp:
        raise ArgumentError(f"{{name}} must be an integer from 2 to {MAX_INTERP} (images per row), got {interp}",
                            "interp")
    if num is None:
        num = INTERP_ROWS if interp else MIX_SOURCES if mix else SAMPLE_NUM
    if num < 1:
        raise ArgumentError(f"{{name}} must be at least 1, got {num}", "num")
    if mix and num > MAX_MIX:
        raise ArgumentError(f"{{name}} {num}: a mixing grid has at most {MAX_MIX} sources a side", "num")
    if class_ is not None and labels is not None:
        raise ArgumentError("{name} and labels: give one", "class_")
    G, cfg, _ = load(run_dir, model_uri, tracking_uri=tracking_uri, expect_task="generate")
    total = num * interp if interp else (num + 1) ** 2 if mix else num
    per_image = 4 * int(G.z_dim) + int(getattr(G, "channels", 3)) * cfg.data.resolution ** 2
    if total * per_image > SAMPLE_MEMORY_BYTES:
        raise ArgumentError(f"{{name}} {num}: that many images need {total * per_image / 2**30:.1f} GiB at once "
                            f"(at most {SAMPLE_MEMORY_BYTES >> 30} GiB, i.e. {SAMPLE_MEMORY_BYTES // per_image} images "
                            f"of this model); sample in several calls with different seeds", "num")
    k = int(getattr(G, "num_classes", 0) or 0)
    if class_ is not None:
        if not k:
            raise ArgumentError(f"{{name}} {class_}: this generator is unconditional (trained without labels); "
                                f"leave out {{name}}", "class_")
        if isinstance(class_, bool) or not isinstance(class_, int) or not 0 <= class_ < k:
            raise ArgumentError(f"{{name}} {class_}: this generator has {k} classes, 0 to {k - 1}", "class_")
    if mix and not is_style_based(G):
        raise ArgumentError(f"{{name}}: style mixing needs a style-based generator (model.arch stylegan2); "
                            f"this one is {cfg.model.arch}", "mix")
    y = None
    if labels is not None:
        if not k:
            raise ConfigError("labels: this generator is unconditional (trained without labels)")
        y = torch.tensor(list(labels), dtype=torch.long)
        if y.shape[0] != num or int(y.min()) < 0 or int(y.max()) >= k:
            raise ConfigError(f"labels must be {num} class indices in 0..{k - 1}")
    images, y, _ = draw(G, seed=seed, num=num, psi=trunc, labels=y, class_=class_, interp=interp, mix=mix)
    return to_uint8(images), y


def tune(cfg: Config, options: Optional[SweepOptions] = None, search_space: Optional[str] = None) -> Dict[str, Any]:
    """A sweep over `search_space` (default: the shipped one) from base config `cfg`."""
    from raygan.distributed.sweep.driver import run_sweep
    from raygan.tracking.store import pin

    return run_sweep(pin(cfg), options or SweepOptions(), search_space)


def resume_tune(name: str, storage: Optional[str] = None, address: Optional[str] = None,
                progress: bool = True) -> Dict[str, Any]:
    from raygan.distributed.sweep.driver import resume_sweep

    return resume_sweep(name, storage, address, progress)
