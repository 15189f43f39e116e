"""`raygan data prepare --ray`: the shards of a prepare as Ray Data tasks across a cluster.

The core (raygan.data.prepare) plans the shards, resumes, and finishes the dataset atomically; here
each shard job (read its images, decode, fit, write its Arrow file) is one row of a Ray Dataset
mapped with `num_cpus=1`, so Ray Data schedules reading, decoding, resizing and writing over every
node's cores, with backpressure, and results stream back as shards finish (the progress bar moves
with them). The output directory must be one every node sees (NFS, a mounted bucket); the source
too. On a laptop `--ray` runs on a local cluster (127.0.0.1).
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Optional


def _write(row: Dict[str, Any]) -> Dict[str, Any]:
    from raygan.data.prepare import write_shard

    meta = write_shard(json.loads(row["job"]))
    return {"meta": json.dumps(meta)}


def run_jobs_on_ray(jobs: List[Dict[str, Any]], workers: int) -> Iterator[Dict[str, Any]]:
    """Shard jobs through Ray Data (`workers` is ignored: the cluster's CPUs decide)."""
    if not jobs:
        return
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # raygan's own bar counts images
    ds = ray.data.from_items([{"job": json.dumps(j)} for j in jobs], override_num_blocks=len(jobs))
    for row in ds.map(_write, num_cpus=1).iter_rows():
        yield json.loads(row["meta"])


def prepare_on_ray(src: str, out: str, *, address: Optional[str] = None, **kwargs: Any) -> Dict[str, Any]:
    """`raygan.data.prepare.prepare` with its shard jobs run by Ray Data on the cluster at `address`."""
    from raygan.data.prepare import prepare
    from raygan.distributed.cluster import connect

    connect(address)
    return prepare(src, out, run_jobs=run_jobs_on_ray, **kwargs)
