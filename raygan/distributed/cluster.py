"""Connecting to Ray, checking that a run fits the cluster, and checking its storage.

Every check here runs on the driver *before* anything waits on Ray, so that a typo in an
address, a request for more workers or GPUs than the cluster has, or a storage path nobody
can write becomes one line on the console instead of a hang:

- an address with a host and port is probed with a plain TCP connect (a few seconds);
- the workers' resource bundles are packed onto the alive nodes (what Ray's placement
  group would have to do); with ``wait_s`` an autoscaling cluster is asked for them
  (``request_resources``) and given that long to grow;
- the storage path is created and a probe file written and deleted (a URI's filesystem
  must be known to pyarrow: s3://, gs://, abfs://, hdfs://, file://).

A local cluster that raygan starts itself (no address) is private to this machine: every Ray
server (GCS, raylet, worker gRPC, dashboard, agents, the three Prometheus endpoints) binds to
127.0.0.1, usage stats stay off, and its Ray token file is readable by this user only
(see local_cluster.py).
"""
from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlparse

from raygan.distributed import local_cluster
from raygan.errors import RayganError


class ClusterError(RayganError):
    """No cluster where one was expected, or a cluster too small for the run."""


# ---------------------------------------------------------------------------- helpers
def with_timeout(fn: Callable[[], Any], seconds: float, what: str) -> Any:
    """Run fn in a daemon thread; raise ClusterError when it takes longer than `seconds`."""
    box: Dict[str, Any] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise ClusterError(f"{what}: no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def host_port(address: str, default_port: Optional[int] = None) -> Optional[Tuple[str, int]]:
    """(host, port) of 'host:port', 'ray://host:port' or 'http://host:port'; None for 'auto'."""
    if not address or address in ("auto", "local"):
        return None
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname:
        return None
    try:
        port = parsed.port
    except ValueError:
        raise ClusterError(f"cannot read a port from address {address!r}") from None
    if port is None:
        port = default_port or {"http": 80, "https": 443, "ray": 10001}.get(parsed.scheme)
    if port is None:
        return None
    return parsed.hostname, port


def check_reachable(address: str, default_port: Optional[int] = None, timeout: float = 5.0,
                    hint: str = "") -> None:
    """A TCP connect to the address: fails in seconds where Ray itself would retry for minutes."""
    hp = host_port(address, default_port)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if isinstance(e, socket.timeout):
            reason = f"no answer within {timeout:.0f} s"
        raise ClusterError(f"no Ray cluster at {address} ({reason}){hint}") from None


# ---------------------------------------------------------------------------- connect
def connect(address: Optional[str] = None, *, log_to_driver: bool = True, quiet: bool = True) -> None:
    """ray.init once: to `address` (host:port, ray://host:port, auto), to $RAY_ADDRESS (inside a
    Ray job), or to a fresh local cluster bound to 127.0.0.1. A no-op when Ray is initialised."""
    import ray

    target = address or (None if ray.is_initialized() else os.environ.get("RAY_ADDRESS"))
    if target:
        check_reachable(target, default_port=6379,
                        hint="; start one with `ray start --head` or `ray up cluster.yaml`, "
                             "or leave out --address for a local one")
    if ray.is_initialized():
        return
    kwargs: Dict[str, Any] = {"log_to_driver": log_to_driver}
    if quiet:
        import logging

        kwargs["logging_level"] = logging.WARNING
    local = local_cluster.starts_local_cluster(address)
    try:
        if local:
            local_cluster.private_token()
            with local_cluster.loopback_only(), local_cluster.quiet_token_notice():
                ray.init(address=address, **kwargs, **local_cluster.init_kwargs())
            local_cluster.start_watchdog()
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        where = address or target or "a local cluster"
        raise ClusterError(f"cannot connect to Ray at {where}: {first}") from None


# ---------------------------------------------------------------------------- resources
def worker_bundle(cpus_per_worker: float, gpus_per_worker: float) -> Dict[str, float]:
    bundle = {"CPU": float(cpus_per_worker)}
    if gpus_per_worker:
        bundle["GPU"] = float(gpus_per_worker)
    return bundle


def _alive_nodes() -> List[Dict[str, float]]:
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def bundles_that_fit(nodes: List[Dict[str, float]], bundle: Dict[str, float]) -> int:
    """How many copies of `bundle` the nodes hold in total (each copy on one node)."""
    total = 0
    for res in nodes:
        fits = math.inf
        for k, need in bundle.items():
            if need <= 0:
                continue
            fits = min(fits, math.floor(res.get(k, 0.0) / need + 1e-9))
        total += 0 if fits == math.inf else int(fits)
    return total


def _describe(nodes: List[Dict[str, float]]) -> str:
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''} with {cpus:g} CPUs and {gpus:g} GPUs in all"


def check_resources(workers: int, cpus_per_worker: float, gpus_per_worker: float, wait_s: float = 0.0,
                    poll_s: float = 5.0,
                    nodes_fn: Callable[[], List[Dict[str, float]]] = _alive_nodes) -> None:
    """Fail fast unless `workers` bundles of {CPU, GPU} fit on the cluster's nodes.

    Ray would otherwise wait for them forever (or until an autoscaler that may never
    come adds nodes). With wait_s > 0 an autoscaling cluster is asked for the bundles and
    polled until they fit or the time is up."""
    bundle = worker_bundle(cpus_per_worker, gpus_per_worker)
    need = f"{workers} worker{'s' if workers != 1 else ''} x {bundle}"
    nodes = nodes_fn()
    if bundles_that_fit(nodes, bundle) >= workers:
        return
    if wait_s > 0:
        try:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=[bundle] * workers)
        except Exception:  # no autoscaler: polling still catches nodes added by hand
            pass
        deadline = time.time() + wait_s
        while time.time() < deadline:
            time.sleep(min(poll_s, max(0.05, deadline - time.time())))
            nodes = nodes_fn()
            if bundles_that_fit(nodes, bundle) >= workers:
                return
    waited = f" after waiting {wait_s:.0f} s" if wait_s > 0 else ""
    raise ClusterError(
        f"the cluster cannot place {need}: it has {_describe(nodes)}{waited}; use fewer --workers, "
        f"smaller --cpus-per-worker/--gpus-per-worker, or on an autoscaling cluster --resource-wait SECONDS")
