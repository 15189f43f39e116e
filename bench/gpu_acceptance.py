#!/usr/bin/env python3
"""GPU acceptance: one command, torch only (no Ray, no MLflow), one table, under 8 minutes on one GPU.

    bench/gpu_wheels.sh                         # on a machine with a package index: .whl/ (pydantic & co.)
    python3 bench/gpu_acceptance.py             # on the GPU machine, from the repository root
    python3 bench/gpu_acceptance.py --cpu-smoke # reduced, on a CPU (tests/test_gpu_bench.py runs it)

If `import pydantic` fails and .whl/ holds wheels, they are installed to /tmp/site first (pip,
no index). The script then imports raygan from this checkout and trains through its real loop
(raygan.engine.loop.Trainer and the generate task's step) on scikit-learn's digits, fitted to
the row's size and to RGB; tracking is off and nothing is written outside a temp dir.

Rows (each: check, setting, result, ok/FAIL/skip, seconds):
* env: the device, torch and CUDA versions, bf16 support.
* train: a few steps of dcgan and resnet (spectral norm, hinge) at 64 and 256 px in fp32, bf16
  and fp16. ok = every loss finite, G's weights moved and stay finite, G's output under the
  run's autocast has the AMP dtype (bf16/fp16) or float32, fp16 has a grad scaler enabled, and
  with channels_last (on by default on CUDA) weights and real batches are channels_last.
  result = img/s after warm-up, the losses, peak GPU memory.
* channels_last off: the same bf16 dcgan step with contiguous tensors; its img/s as a ratio of the
  default row's (below 1: channels_last is faster).
* compile: torch.compile (mode default) of G and D, bf16, at 64 and 256 px; the first step's time
  (compilation) is reported separately from the steady img/s.
* preset: the GPU presets (folder-dcgan-128, folder-resnet-256, folder-stylegan2-256) at their own
  widths, batch, loss, regularisers and augmentation: measured s/kimg, to set beside
  bench/preset_cost.py's estimate.
* streamed data: a prepared dataset (raygan.data.prepare, when this tree has it) read by index
  onto the device while training, and the same steps with the images in memory: ok needs the
  streamed img/s >= 0.9x the in-memory img/s on CUDA (the loader is not the bottleneck at 256 px);
  "skip" with the reason when the module is missing.
* exact resume: train 2N images straight vs N, checkpoint, then a fresh Trainer (same process)
  loads the checkpoint (weights, optimisers, scaler, every RNG) and resumes to 2N, with
  torch.use_deterministic_algorithms(True) and CUBLAS_WORKSPACE_CONFIG=:4096:8; compares every
  tensor of G, D and G_ema: max |difference| and whether bitwise. ok = bitwise (what CUDA gives
  with deterministic kernels on one card); any op that warned it is nondeterministic is named.
  Run in fp32 and in fp16 (the grad scaler's state is resumed too), and for the fmnist-stylegan2
  preset (lazy R1 and path length inside each half, style mixing, noise inputs).

Exit status: 0 when no row FAILs. `--json PATH` also writes the rows. `--budget-s` (default 450):
a row that could end past it (each has a ceiling: 30 s a training row, 45 s a resume, 150 s a
compile row) is not started and is reported as FAIL "not run: over the time budget", so the whole
run stays near 7.5 minutes even when compilation is slow.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(ROOT / "bench"))
from gpu_bootstrap import bootstrap  # noqa: E402  (standard library only: runs before torch and raygan)

bootstrap()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402

import torch  # noqa: E402

from gpu_checks import Row, exact_resume, streamed, train_row  # noqa: E402

T0 = time.time()
COMPILE_S = 150  # what one compile row may take (G and D, forward and backward, with and without grad)


def plan(cpu: bool):
    """(check, setting, function) in the order they run: the cheap and essential first, compile last."""
    dev = "cpu" if cpu else "cuda"
    rows = []
    if cpu:  # tiny: what the CPU can show (AMP and channels_last are CUDA-only in raygan: said, not faked)
        tiny = dict(width=2, batch=4, steps=1, warmup=1)
        rows += [("train", "dcgan 32px fp32", dict(arch="dcgan", res=32, amp="fp32", **tiny)),
                 ("train", "dcgan 32px bf16", dict(arch="dcgan", res=32, amp="bf16", **tiny)),
                 ("train", "resnet 32px fp32", dict(arch="resnet", res=32, amp="fp32", **tiny)),
                 ("train", "dcgan 128px fp32", dict(arch="dcgan", res=128, amp="fp32", **tiny))]
        resume = [("exact resume", "dcgan 32px fp32", dict(res=32, amp="fp32", width=2, batch=4, tick_kimg=0.004))]
        return dev, rows, dict(res=32, width=2, batch=4), resume, []
    widths = {("dcgan", 64): 64, ("dcgan", 256): 32, ("resnet", 64): 32, ("resnet", 256): 16}
    for res in (64, 256):
        for arch in ("dcgan", "resnet"):
            for amp in ("fp32", "bf16", "fp16"):
                rows.append(("train", f"{arch} {res}px {amp}", dict(arch=arch, res=res, amp=amp,
                                                                     width=widths[arch, res], batch=32)))
    for res in (64, 256):
        rows.append(("channels_last off", f"dcgan {res}px bf16", dict(arch="dcgan", res=res, amp="bf16",
                                                                      width=widths["dcgan", res], batch=32,
                                                                      channels_last=False)))
    for preset in ("folder-dcgan-128", "folder-resnet-256", "folder-stylegan2-256"):
        rows.append(("preset", f"{preset} bf16", dict(preset=preset, steps=10)))
    resume = [("exact resume", f"dcgan 64px {amp}", dict(res=64, amp=amp, width=32, batch=32, tick_kimg=0.256))
              for amp in ("fp32", "fp16")]
    # StyleGAN2's lazy phases (R1 every 16 D steps, path length every 4 G steps) both fall inside each half
    resume.append(("exact resume", "fmnist-stylegan2 32px fp32",
                   dict(res=32, amp="fp32", width=0, batch=0, tick_kimg=0.512, preset="fmnist-stylegan2")))
    compiled = [("compile", f"dcgan {res}px bf16", dict(arch="dcgan", res=res, amp="bf16",
                                                        width=widths["dcgan", res], batch=32, compile=True))
                for res in (64, 256)]
    return dev, rows, dict(res=256, width=32, batch=32), resume, compiled


def env_row(cpu: bool) -> Row:
    t = time.time()
    if cpu:
        return Row("env", "cpu-smoke", f"torch {torch.__version__}, {torch.get_num_threads()} threads", "ok",
                   time.time() - t)
    if not torch.cuda.is_available():
        return Row("env", "cuda", f"no CUDA device (torch {torch.__version__}); use --cpu-smoke", "FAIL", 0.0)
    p = torch.cuda.get_device_properties(0)
    text = (f"{p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    return Row("env", "cuda", text, "ok", time.time() - t)


def print_table(rows) -> None:
    head = ("check", "setting", "result", "ok", "time_s")
    cells = [head] + [(r.check, r.setting, r.result, r.status, f"{r.seconds:.1f}") for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(4)]
    for i, c in enumerate(cells):
        print(f"{c[0]:<{w[0]}}  {c[1]:<{w[1]}}  {c[2]:<{w[2]}}  {c[3]:<{w[3]}}  {c[4]:>6}")
        if i == 0:
            print("-" * (sum(w) + 16))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (fp32/bf16, no compile)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="start no row that could end after this many seconds")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: deterministic cuBLAS
    if args.cpu_smoke:
        torch.set_num_threads(1)
    rows = [env_row(args.cpu_smoke)]
    if rows[0].status == "FAIL":
        print_table(rows)
        return 1
    dev, trains, stream, resumes, compiled = plan(args.cpu_smoke)
    device = torch.device(dev)
    work = Path(tempfile.mkdtemp(prefix="raygan-gpu-acceptance-"))
    # (check, setting, function, kwargs, the longest it may take: a row that could end past the budget
    # does not start)
    jobs = [(c, s, train_row, kw, 30) for c, s, kw in trains]
    jobs += [(c, s, exact_resume, kw, 45) for c, s, kw in resumes]
    jobs.append(("streamed data", f"dcgan {stream['res']}px", streamed, stream, 40))
    jobs += [(c, s, train_row, kw, COMPILE_S) for c, s, kw in compiled]
    base = {}  # setting -> img/s of the default (channels_last on, eager) rows, for the ratios
    for check, setting, fn, kw, longest in jobs:
        if time.time() - T0 + (0 if args.cpu_smoke else longest) > args.budget_s:
            rows.append(Row(check, setting, "not run: over the time budget", "FAIL", 0.0))
            continue
        gc.collect()  # the previous row's networks and optimisers: gone before this row's peak memory
        if device.type == "cuda":
            torch.cuda.empty_cache()
        t = time.time()
        try:
            row = fn(check, setting, device=device, work=work, base=base, **kw)
        except Exception as e:  # a check that breaks is a FAIL row, and the rest still run
            traceback.print_exc(limit=6, file=sys.stderr)
            first = (str(e).splitlines() or [""])[0][:160]
            row = Row(check, setting, f"{type(e).__name__}: {first}", "FAIL", time.time() - t)
        rows.append(row)
        print(f"[{time.time() - T0:6.1f}s] {row.check} | {row.setting} | {row.result} | {row.status}",
              file=sys.stderr, flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "FAIL", "skip")}
    compile_s = sum(r.compile_s for r in rows)
    print(f"\n{counts['ok']} ok, {counts['FAIL']} FAIL, {counts['skip']} skip; elapsed {time.time() - T0:.0f} s "
          f"(of which compilation {compile_s:.0f} s) on {'CPU' if args.cpu_smoke else 'CUDA'}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
