"""Fréchet distance: raygan's eigh formula vs the classic scipy.linalg.sqrtm formula.

Same float64 statistics of two correlated 2048-d Gaussian samples (10k each) go to
  - raygan numpy   frechet_distance(..., backend="numpy")  (the default: Cholesky of S1, eigvalsh)
  - raygan torch   frechet_distance(..., backend="torch")  (the same in torch float64 on CPU)
  - raygan * eigh  method="eigh": eigh(S1) factor instead of Cholesky (the singular-S1 path)
  - scipy sqrtm    ||mu1-mu2||² + tr S1 + tr S2 - 2 tr Re sqrtm(S1 S2)   (pytorch-fid's formula, no disp=)
Each is timed `--repeats` times; the table shows medians, the relative difference to the scipy
value (goal <= 1e-6) and the speed ratio scipy / raygan (goal >= 3x).

    python bench/frechet.py [--dim 2048] [--n 10000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import scipy
import scipy.linalg
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from raygan.metrics import feature_stats, frechet_distance  # noqa: E402


def scipy_fd(mu1, s1, mu2, s2):
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def timed(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return value, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()} | "
          f"cpus {os.cpu_count()} | torch threads {torch.get_num_threads()}")
    print(f"load average (1/5/15 min) at start: {os.getloadavg()}")
    print(f"python {platform.python_version()} | torch {torch.__version__} | numpy {np.__version__} | "
          f"scipy {scipy.__version__}")

    rng = np.random.default_rng(0)
    d, n = args.dim, args.n
    # correlated Gaussians: x = z A, y = z' (A + 0.1 B) + 0.05; spectra decay like real features
    a = rng.standard_normal((d, d)) / np.sqrt(d) * np.linspace(1.0, 0.05, d)[:, None]
    b = rng.standard_normal((d, d)) / np.sqrt(d) * np.linspace(1.0, 0.05, d)[:, None]
    x = rng.standard_normal((n, d)) @ a
    y = rng.standard_normal((n, d)) @ (a + 0.1 * b) + 0.05
    t = time.perf_counter()
    mu1, s1 = feature_stats(x)
    mu2, s2 = feature_stats(y)
    print(f"data: {n} x {d} per set; feature_stats for both: {time.perf_counter() - t:.2f} s; "
          f"repeats: {args.repeats} (median shown)\n")

    ref, t_ref = timed(lambda: scipy_fd(mu1, s1, mu2, s2), args.repeats)
    rows = [("scipy sqrtm (reference)", ref, t_ref)]
    for backend in ("numpy", "torch"):
        for method in ("auto", "eigh"):
            v, tv = timed(lambda: frechet_distance(mu1, s1, mu2, s2, backend=backend, method=method), args.repeats)
            label = "default: cholesky+eigvalsh" if method == "auto" else "eigh+eigvalsh"
            rows.append((f"raygan {backend} ({label})", v, tv))

    print("| method | FD | rel. diff vs scipy | time (s) | speed-up vs scipy |")
    print("|---|---|---|---|---|")
    for name, v, tv in rows:
        rel = abs(v - ref) / abs(ref)
        print(f"| {name} | {v:.10f} | {rel:.2e} | {tv:.3f} | {t_ref / tv:.1f}x |")
    self_fd = frechet_distance(mu1, s1, mu1, s1)
    print(f"\nFD(X, X) with raygan numpy: {self_fd:.3e} (exact value 0; round-off)")
    print(f"load average (1/5/15 min) at the end: {os.getloadavg()}; cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
