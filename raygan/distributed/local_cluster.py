"""The local Ray cluster raygan starts when no address is given: private to this machine.

- Every Ray server binds to 127.0.0.1: GCS, raylet (node and object manager), the workers'
  and the driver's gRPC servers, the dashboard and its agent, the runtime-env agent and the
  three Prometheus endpoints (metrics agent, dashboard, autoscaler monitor). Ray 2.60 binds
  them to loopback exactly when the node IP is a loopback address, but `ray.init` turns a
  127.0.0.1 node IP into the machine's address unless it runs in its "no clusters" mode (its
  default on macOS/Windows): that mode is switched on while the cluster starts.
- Usage stats are off unless the user set RAY_USAGE_STATS_ENABLED (Ray's own ray.init
  also turns them off on release wheels; this does not depend on it).
- Ray token auth: Ray 2.60 switches it on by itself for a new local cluster unless RAY_AUTH_MODE
  says otherwise, and writes a missing token to ~/.ray/auth_token with a plain open(): mode 0644
  under the usual umask, so every user of the machine could read it and use the cluster.
  raygan writes that token first, created 0600 (private_token), and narrows an existing token
  file that others can read to 0600. Ray's WARNING that token auth is
  on, printed on every new local cluster, is silenced (quiet_token_notice).
- Ray Train's workers: torch's rendezvous store (a TCPStore on rank 0) binds to every
  interface; a worker setup hook hands it a socket bound to 127.0.0.1 instead.
- A killed driver: Ray kills its GCS and raylet with it (PR_SET_PDEATHSIG), but the dashboard
  and runtime-env agents then spend 60 s publishing an error to the dead GCS before they exit
  (measured on ray 2.60: 60-65 s). A watchdog process ends them at once.
To share a machine's Ray deliberately, start it yourself (`ray start --head ...`) and pass
--address.
"""
from __future__ import annotations

import importlib
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

LOOPBACK = "127.0.0.1"
# Ray's "no clusters" mode (its default on macOS and Windows): the node IP is 127.0.0.1, and
# then every server of the node binds to loopback instead of the machine's address or `*`.
_LOCAL_ONLY_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_USAGE_STATS_VAR = "RAY_USAGE_STATS_ENABLED"


def starts_local_cluster(address: Optional[str]) -> bool:
    """Whether ray.init(address) starts a new cluster rather than joining one: no address (or
    "local"), no $RAY_ADDRESS, and no `ray start` cluster on this machine."""
    from ray._private import services

    try:
        return services.canonicalize_bootstrap_address(address) is None
    except Exception:  # a bad address: ray.init reports it
        return False


def local_cluster_env(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment variables a local cluster starts with: loopback only, and usage stats off
    unless the user chose (RAY_USAGE_STATS_ENABLED=1 is left alone)."""
    environ = os.environ if environ is None else environ
    env = {_LOCAL_ONLY_VAR: "0"}
    if _USAGE_STATS_VAR not in environ:
        env[_USAGE_STATS_VAR] = "0"
    return env


@contextmanager
def loopback_only() -> Iterator[None]:
    """While a local cluster starts: Ray's loopback-only node mode, in this process (read at import
    into ray_constants) and in the environment its processes inherit. Usage stats stay as set."""
    from ray._private import ray_constants

    env = local_cluster_env()
    saved = os.environ.get(_LOCAL_ONLY_VAR)
    saved_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    os.environ.update(env)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved is None:
            os.environ.pop(_LOCAL_ONLY_VAR, None)
        else:
            os.environ[_LOCAL_ONLY_VAR] = saved


@contextmanager
def quiet_token_notice() -> Iterator[None]:
    """While a local cluster starts: Ray 2.60 logs a WARNING on every new local cluster that token
    auth is on ("Set RAY_AUTH_MODE=disabled to opt out"), which reads like an error at the top of
    every `raygan tune` and asks nothing of the user. Token auth stays on (RAY_AUTH_MODE still
    rules); only that notice of Ray's token module is silenced, errors still show."""
    import logging

    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def private_token(environ: Optional[Dict[str, str]] = None) -> Optional[Path]:
    """Before a new local cluster starts with token auth: make sure the token file Ray will read
    is readable by this user only. A missing ~/.ray/auth_token is created here with mode 0600 from
    the start (os.open with O_EXCL and the mode: there is no moment it is readable by others), with
    the same kind of token Ray draws (256 random bits, hex); an existing token file that group or
    others can read is narrowed to 0600. Returns the token file, or None where there is none to
    look after (RAY_AUTH_MODE other than token, or the token given in RAY_AUTH_TOKEN)."""
    environ = os.environ if environ is None else environ
    mode = environ.get("RAY_AUTH_MODE")
    if (mode is not None and mode.lower() != "token") or environ.get("RAY_AUTH_TOKEN"):
        return None
    named = environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(named).expanduser() if named else Path(environ.get("HOME") or Path.home()) / ".ray" / "auth_token"
    if not path.exists() and not named:  # Ray would write this one itself, readable by all
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # written meanwhile by another process: narrowed below
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            return path
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            print(f"raygan: note: the Ray token {path} was readable by other users; it is now mode 600 "
                  "(if others could use this machine, draw a new one: ray get-auth-token --generate "
                  "after removing it)", file=sys.stderr)
    except OSError:  # missing (Ray reports it) or not ours to change
        pass
    return path


def init_kwargs() -> Dict[str, Any]:
    """ray.init arguments for a local cluster: node and dashboard on loopback, and every worker
    set up so that torch's rendezvous store listens on loopback too."""
    return {"_node_ip_address": LOOPBACK, "dashboard_host": LOOPBACK,
            "runtime_env": {"worker_process_setup_hook": loopback_rendezvous}}


# ---------------------------------------------------------------------------- torch rendezvous
def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _loopback_store(hostname: str, port: int, world_size: int, timeout, use_libuv: bool = True):
    """Rank 0's TCPStore on a socket bound to hostname:port (a loopback address). TCPStore binds
    its own socket to every interface and has no bind address option, but takes a listening
    socket (master_listen_fd), whose ownership passes to it."""
    from torch.distributed import TCPStore

    family = socket.AF_INET6 if ":" in hostname else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((hostname.strip("[]"), port))
    sock.listen(1024)
    return TCPStore(host_name=hostname, port=port, world_size=world_size, is_master=True, timeout=timeout,
                    multi_tenant=True, master_listen_fd=sock.detach(), use_libuv=use_libuv)


def loopback_rendezvous() -> None:
    """Worker setup hook of a local cluster: Ray Train's process group (tcp:// or env://
    rendezvous at MASTER_ADDR, here 127.0.0.1) gets a store that listens on loopback only.
    Anything else (another rank, a non-loopback address, an unknown torch) goes to torch as is."""
    try:  # the module (`import torch.distributed.rendezvous as m` yields the function of that name)
        rdzv = importlib.import_module("torch.distributed.rendezvous")
    except Exception:  # no torch or no distributed build: nothing listens
        return
    original = getattr(rdzv, "_create_c10d_store", None)
    if original is None or getattr(original, "raygan_loopback", False):
        return

    def create(hostname, port, rank, world_size, timeout, use_libuv=True):
        served_elsewhere = getattr(rdzv, "_agent_store_serves", lambda h, p: False)(hostname, port)
        if rank != 0 or served_elsewhere or not _is_loopback(hostname):
            return original(hostname, port, rank, world_size, timeout, use_libuv)
        return _loopback_store(hostname, port, world_size, timeout, use_libuv)

    create.raygan_loopback = True
    rdzv._create_c10d_store = create


# ---------------------------------------------------------------------------- watchdog
def _start_time(pid: int) -> Optional[str]:
    """The kernel's start time of a process (field 22 of /proc/PID/stat): with the pid, it names
    one process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _children() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(pid: int) -> List[int]:
    """Every process below pid (Linux /proc), parents before children."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(procs: List[Tuple[int, str]]) -> List[int]:
    return [pid for pid, start in procs if _start_time(pid) == start]


def reap(procs: List[Tuple[int, str]], grace_s: float = 1.0) -> None:
    """SIGTERM the processes that are still the ones recorded, SIGKILL what is left after grace_s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _alive(procs):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + grace_s
        while sig == signal.SIGTERM and _alive(procs) and time.time() < deadline:
            time.sleep(0.05)


def watchdog_main() -> None:
    """The watchdog process: read the processes to guard, wait for EOF on stdin (the driver is
    gone: it exited, or was killed), then end whatever of them is still running."""
    procs = [(int(p), str(s)) for p, s in json.loads(sys.stdin.readline() or "[]")]
    while sys.stdin.read(4096):
        pass
    reap(procs)


_watchdog: Optional[subprocess.Popen] = None


def start_watchdog(pid: Optional[int] = None) -> Optional[subprocess.Popen]:
    """Guard the processes below `pid` (this driver): Ray kills its GCS and raylet with the driver
    (PR_SET_PDEATHSIG), but the dashboard and runtime-env agents then block 60 s publishing an
    error to the dead GCS. The watchdog holds the read end of a pipe only this process writes to;
    Linux only (elsewhere Ray's own reaper does this job)."""
    global _watchdog
    if not sys.platform.startswith("linux"):
        return None
    stop_watchdog()
    procs = [(p, _start_time(p)) for p in descendants(pid or os.getpid())]
    procs = [(p, s) for p, s in procs if s is not None]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {root!r}); "
            "from raygan.distributed.local_cluster import watchdog_main; watchdog_main()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    proc.stdin.write((json.dumps(procs) + "\n").encode())
    proc.stdin.flush()
    _watchdog = proc
    return proc


def stop_watchdog() -> None:
    """Close the pipe (the watchdog ends what is left of the last local cluster) and reap it."""
    global _watchdog
    proc, _watchdog = _watchdog, None
    if proc is None:
        return
    try:
        proc.stdin.close()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
