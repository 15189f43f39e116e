"""The checks bench/gpu_acceptance.py runs, one Row each (see its docstring for what each row means).

Every check trains through raygan's own loop and task (raygan.engine.loop.Trainer, the generate
task's step, raygan.engine.precision) on scikit-learn's digits fitted to the row's size and to RGB:
no download, no Ray, no MLflow.
"""
from __future__ import annotations

import importlib
import inspect
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

AMP_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Row:
    check: str
    setting: str
    result: str
    status: str  # ok | FAIL | skip
    seconds: float
    compile_s: float = 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_config(device: torch.device, *, arch: Optional[str] = None, res: Optional[int] = None, amp: str = "fp32",
                width: int = 8, batch: Optional[int] = None, channels_last: bool = True, compile: bool = False,
                preset: Optional[str] = None, extra: List[str] = ()):
    """A generate config on digits (RGB, fitted to `res`); `preset` keeps that preset's networks,
    loss, batch, AMP and augmentation and swaps only its data for digits."""
    from raygan.tasks import load_config

    sets = ["data.name=digits", "data.channels=3", f"train.device={device.type}", "tracking.enabled=false",
            "eval.metrics=[]", "eval.num_samples=2", "eval.final_num_samples=2", "data.root=null",
            f"train.channels_last={str(channels_last).lower()}", f"train.compile={str(compile).lower()}"]
    if preset is None:
        model = (["model.arch=dcgan", f"model.g={{ngf: {width}}}", f"model.d={{ndf: {width}}}"] if arch == "dcgan"
                 else ["model.arch=resnet", f"model.g={{ch: {width}}}", f"model.d={{ch: {width}}}",
                       "model.spectral_norm=true", "loss.name=hinge"])
        sets += model + [f"data.resolution={res}", f"optim.batch_size={batch}", "model.z_dim=64",
                         f"train.amp={'none' if amp == 'fp32' else amp}", "ema.half_life_kimg=0.5"]
    cfg = load_config(preset, None, sets + list(extra))
    limit = max(4 * cfg.optim.batch_size, 64)
    return load_config(preset, None, sets + list(extra) + [f"data.limit={limit}"])


def _steps(task, device: torch.device, n: int, nimg: int) -> int:
    per = task.images_per_step()
    for _ in range(n):
        task.train_step(nimg)
        nimg += per
    return nimg


def train_row(check: str, setting: str, *, device: torch.device, work: Path, base: Dict[Any, float],
              arch: Optional[str] = None, res: Optional[int] = None, amp: str = "fp32", width: int = 8,
              batch: Optional[int] = None, steps: int = 10, warmup: int = 3, channels_last: bool = True,
              compile: bool = False, preset: Optional[str] = None) -> Row:
    """A few training steps; see gpu_acceptance's docstring for what makes the row ok."""
    from raygan.engine.loop import Trainer

    t_start = time.time()
    cfg = make_config(device, arch=arch, res=res, amp=amp, width=width, batch=batch, channels_last=channels_last,
                      compile=compile, preset=preset)
    amp = {"none": "fp32"}.get(cfg.train.amp, cfg.train.amp)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    tr = Trainer(cfg, None, device=device, evaluator=None)
    task = tr.task
    before = [p.detach().clone() for p in task.G_plain.parameters()]
    _sync(device)
    t = time.time()
    nimg = _steps(task, device, 1, 0)
    _sync(device)
    first_s = time.time() - t
    nimg = _steps(task, device, max(warmup - 1, 0), nimg)
    _sync(device)
    t = time.time()
    n0 = nimg
    nimg = _steps(task, device, steps, nimg)
    _sync(device)
    img_s = (nimg - n0) / max(time.time() - t, 1e-9)
    stats = task.read_stats()
    problems = []
    if not stats or not all(math.isfinite(v) for v in stats.values()):
        problems.append(f"non-finite losses {stats}")
    after = list(task.G_plain.parameters())
    if not any(not torch.equal(a, b) for a, b in zip(before, after)):
        problems.append("G did not move")
    if not all(torch.isfinite(p).all() for p in after):
        problems.append("G has non-finite weights")
    with torch.no_grad(), task.step.precision.autocast():
        out_dtype = task.G_plain(torch.randn(2, cfg.model.z_dim, device=device)).dtype
    want = AMP_DTYPE[amp] if cuda else torch.float32  # AMP is CUDA-only in raygan: float32 on a CPU
    if out_dtype != want:
        problems.append(f"G under autocast gave {out_dtype}, expected {want}")
    scaler = task.step.precision.scalers["G"]
    if (amp == "fp16" and cuda) != scaler.is_enabled():
        problems.append(f"grad scaler enabled={scaler.is_enabled()} for {amp}")
    cl_expected = cuda and channels_last
    conv_w = next(p for p in task.G_plain.parameters() if p.dim() == 4)
    x_real = task.next_real()[0]
    cl = conv_w.is_contiguous(memory_format=torch.channels_last) and \
        x_real.is_contiguous(memory_format=torch.channels_last)
    if cl_expected and not cl:
        problems.append("weights/batches not channels_last")
    if compile and not hasattr(task.G, "_orig_mod"):
        problems.append("G is not compiled")
    parts = [f"{img_s:,.0f} img/s", f"loss_d {stats.get('loss_d', float('nan')):.3f}",
             f"loss_g {stats.get('loss_g', float('nan')):.3f}", str(out_dtype).replace("torch.", "")]
    if amp == "fp16" and cuda:
        parts.append(f"scale {scaler.get_scale():.0f}")
    if cuda:
        parts.append(f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    if not cuda and amp != "fp32":
        parts.append(f"amp {amp} runs float32 off CUDA, as documented")
    key = (arch, res, amp)
    if preset is not None:
        parts.insert(0, f"{1000 / img_s:.2f} s/kimg measured (batch {cfg.optim.batch_size}, "
                        f"{cfg.data.resolution} px)")
    elif compile or not channels_last:
        if key in base:
            parts.append(f"{img_s / base[key]:.2f}x the eager channels_last row")
        if compile:
            parts.insert(0, f"first step (compile) {first_s:.1f} s")
    else:
        base[key] = img_s
    return Row(check, setting, "; ".join(parts + problems), "FAIL" if problems else "ok",
               time.time() - t_start, first_s if compile else 0.0)


def _tensors(trainer) -> Dict[str, torch.Tensor]:
    out = {}
    for name, net in trainer.task.networks.items():
        for k, v in net.state_dict().items():
            out[f"{name}.{k}"] = v
    return out


def exact_resume(check: str, setting: str, *, device: torch.device, work: Path, base: Dict[Any, float],
                 res: int, amp: str, width: int, batch: int, tick_kimg: float, preset: Optional[str] = None) -> Row:
    """2N images straight vs N + checkpoint + resume to 2N, deterministic kernels; bitwise = ok.
    `preset`: that preset's networks and recipe (its batch, AMP and regularisers) on digits."""
    from raygan.engine.checkpoint import list_checkpoints
    from raygan.engine.loop import Trainer

    t_start = time.time()
    half = 2 * tick_kimg  # two ticks, then two more

    def cfg(total: float):
        return make_config(device, arch="dcgan", res=res, amp=amp, width=width, batch=batch, preset=preset,
                           extra=[f"train.total_kimg={total}", f"train.tick_kimg={tick_kimg}",
                                  "train.snapshot_ticks=1", "train.sample_ticks=1000", "train.eval_ticks=0"])

    was_det, was_bench = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            one = Trainer(cfg(2 * half), work / f"resume-{amp}-{preset}-one", device=device, evaluator=None)
            one.run()
            first = Trainer(cfg(half), work / f"resume-{amp}-{preset}-two", device=device, evaluator=None)
            first.run()
            del first
            ckpt = list_checkpoints(work / f"resume-{amp}-{preset}-two" / "checkpoints")[-1]
            second = Trainer(cfg(2 * half), work / f"resume-{amp}-{preset}-two", device=device, evaluator=None)
            second.load(ckpt)
            resumed_at = second.nimg
            second.run()
    finally:
        torch.use_deterministic_algorithms(was_det)
        torch.backends.cudnn.benchmark = was_bench
    a, b = _tensors(one), _tensors(second)
    diff, unequal = 0.0, 0
    for k in a:
        if not torch.equal(a[k], b[k]):
            unequal += 1
            if a[k].is_floating_point():
                diff = max(diff, (a[k].double() - b[k].double()).abs().max().item())
    nondet = sorted({str(w.message).split(" does not have a deterministic")[0].strip()[:60]
                     for w in caught if "deterministic" in str(w.message)})
    problems = []
    if one.nimg != second.nimg or resumed_at != int(round(half * 1000)):
        problems.append(f"nimg {one.nimg} vs {second.nimg}, resumed at {resumed_at}")
    bitwise = unequal == 0
    text = (f"{len(a)} tensors of G, D, G_ema after {one.nimg} img (resumed at {resumed_at}): "
            f"{'bitwise equal' if bitwise else f'{unequal} differ'}, max |diff| {diff:.3g}")
    if nondet:
        text += f"; nondeterministic ops warned: {', '.join(nondet)}"
    ok = bitwise and not problems
    return Row(check, setting, "; ".join([text] + problems), "ok" if ok else "FAIL", time.time() - t_start)


def _noise_pngs(folder: Path, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")


def streamed(check: str, setting: str, *, device: torch.device, work: Path, base: Dict[Any, float],
             res: int, width: int, batch: int, steps: int = 6) -> Row:
    """A prepared dataset, streamed by index onto the device during training (when this tree has
    one), timed against the same steps with the same images held in memory: the loader's cost."""
    from raygan.engine.loop import Trainer

    t_start = time.time()
    try:
        prep = importlib.import_module("raygan.data.prepare")
        st = importlib.import_module("raygan.data.streamed")
    except ModuleNotFoundError as e:
        return Row(check, setting, f"not available: {e.name} is not in this tree", "skip", time.time() - t_start)
    from raygan.config.schema import DataConfig

    src, out = work / "stream-src", work / "stream-prepared"
    _noise_pngs(src, 4 * batch, res)
    accepted = inspect.signature(prep.prepare).parameters
    kwargs = {k: v for k, v in dict(resolution=res, channels=3, workers=1, progress=False).items() if k in accepted}
    prep.prepare(str(src), str(out), **kwargs)
    can_stream = "stream" in DataConfig.model_fields
    rates, seen = {}, {}
    for mode in ("true", "false") if can_stream else ("",):
        extra = ["data.name=prepared", f"data.root={out}"] + ([f"data.stream={mode}"] if mode else [])
        task = Trainer(make_config(device, arch="dcgan", res=res, width=width, batch=batch, extra=extra), None,
                       device=device, evaluator=None).task
        nimg = _steps(task, device, 2, 0)
        _sync(device)
        t = time.time()
        nimg2 = _steps(task, device, steps, nimg)
        _sync(device)
        rates[mode] = (nimg2 - nimg) / max(time.time() - t, 1e-9)
        seen[mode] = (task, task.read_stats(), task.next_real()[0])
    task, stats, x = seen["true" if can_stream else ""]
    is_streamed = isinstance(task.data, getattr(st, "StreamedDataset", ()))
    problems = []
    if can_stream and not is_streamed:
        problems.append(f"data.stream=true gave {type(task.data).__name__}, not a StreamedDataset")
    if x.device.type != device.type or tuple(x.shape[1:]) != (3, res, res):
        problems.append(f"batch {tuple(x.shape)} on {x.device}")
    if not stats or not all(math.isfinite(v) for v in stats.values()):
        problems.append(f"non-finite losses {stats}")
    img_s = rates["true" if can_stream else ""]
    text = (f"{'streamed' if is_streamed else 'in-memory'} prepared dataset of {len(task.data.labels)} images; "
            f"batches {tuple(x.shape)} on {x.device}; {img_s:,.0f} img/s")
    if can_stream:
        ratio = img_s / rates["false"]
        text += f", {ratio:.2f}x the same steps in memory ({rates['false']:,.0f} img/s)"
        if device.type == "cuda" and ratio < 0.9:  # on the CPU smoke the step is the bottleneck: no verdict
            problems.append("the loader is the bottleneck (streamed < 0.9x in-memory)")
    return Row(check, setting, "; ".join([text] + problems), "FAIL" if problems else "ok", time.time() - t_start)
