"""How many trials fit at once: Tune reserves only a trial's own process, so a W>1 trial's
workers are counted here, by placing trials on the cluster's nodes one by one."""
from __future__ import annotations

import sys
from typing import Dict, List, Optional

from raygan.distributed import cluster
from raygan.distributed.sweep.options import SweepOptions, TuneError

DRIVER_CPU = 0.25  # CPU reserved for a W>1 trial's own process (it only waits on its workers)


def trial_resources(opts: SweepOptions) -> Dict[str, float]:
    """What Tune reserves for the trial's own process."""
    if opts.workers_per_trial == 1:
        res = {"cpu": opts.cpus_per_worker}
        if opts.gpus_per_worker:
            res["gpu"] = opts.gpus_per_worker
        return res
    return {"cpu": DRIVER_CPU}


def _take(nodes: List[Dict[str, float]], bundle: Dict[str, float], n: int) -> bool:
    trial = [dict(x) for x in nodes]
    for _ in range(n):
        for res in trial:
            if all(res.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items()):
                for k, v in bundle.items():
                    res[k] = res.get(k, 0.0) - v
                break
        else:
            return False
    nodes[:] = trial
    return True


def trial_capacity(nodes: List[Dict[str, float]], opts: SweepOptions) -> int:
    W = opts.workers_per_trial
    bundle = cluster.worker_bundle(opts.cpus_per_worker, opts.gpus_per_worker)
    if W == 1:
        return cluster.bundles_that_fit(nodes, bundle)
    nodes = [dict(n) for n in nodes]
    count = 0
    while _take(nodes, {"CPU": DRIVER_CPU}, 1) and _take(nodes, bundle, W):  # its process, then its W workers
        count += 1
    return count


def size_concurrency(opts: SweepOptions, nodes: Optional[List[Dict[str, float]]] = None) -> int:
    """max_concurrent_trials from the cluster; a trial that cannot fit at all is an error."""
    nodes = nodes if nodes is not None else cluster._alive_nodes()
    cap = trial_capacity(nodes, opts)
    W = opts.workers_per_trial
    if cap < 1:
        need = f"{W} worker{'s' if W != 1 else ''} x {cluster.worker_bundle(opts.cpus_per_worker, opts.gpus_per_worker)}"
        raise TuneError(f"the cluster cannot place one trial ({need}): it has {cluster._describe(nodes)}; "
                        f"use fewer --workers-per-trial or smaller --cpus-per-worker/--gpus-per-worker")
    want = opts.max_concurrent or cap
    if want > cap:
        print(f"raygan: note: --max-concurrent {want} lowered to {cap}: that is how many trials of "
              f"{W} worker(s) fit on the cluster", file=sys.stderr)
    return max(1, min(want, cap, opts.samples))
