"""How a run uses Ray, declared once: the `raygan train --workers ...` flags, the Python API's
`RayOptions` and the checks come from this one model."""
from __future__ import annotations

from typing import Literal, Optional

from raygan.options import Options, opt


class RayOptions(Options):
    workers: int = opt(1, ge=1, metavar="N", help="train on Ray Train with N DDP workers (without it: in this process)")
    cpus_per_worker: float = opt(1.0, gt=0, metavar="C", help="CPUs reserved per worker")
    gpus_per_worker: float = opt(0.0, ge=0, metavar="G", help="GPUs per worker (nccl); 0: CPU (gloo)")
    storage: Optional[str] = opt(None, metavar="PATH|URI",
                                 help="where the run lives: a local/NFS path or s3://... (default $RAYGAN_STORAGE "
                                      "or ./runs)")
    name: Optional[str] = opt(None, help="the run's name under --storage (default <preset>-<time>)")
    max_failures: int = opt(0, ge=-1, metavar="K",
                            help="restart the worker group from the latest checkpoint up to K times (-1: always)")
    address: Optional[str] = opt(None, help="a running cluster: HOST:6379, ray://HOST:10001 or auto (default: "
                                            "$RAY_ADDRESS, else a private local one)")
    keep: Literal["last", "best"] = opt("last", choices=["last", "best"],
                                        help="checkpoints kept: the newest train.keep_checkpoints, or the best by "
                                             "the run's first metric (+ the newest)")
    resource_wait: float = opt(0.0, ge=0, metavar="S",
                               help="on an autoscaling cluster, wait up to S seconds for the workers' resources")
