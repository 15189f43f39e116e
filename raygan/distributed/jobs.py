"""`raygan submit`: run a raygan command as a Ray job on a cluster (JobSubmissionClient).

The working directory is shipped (runtime_env working_dir) without runs, MLflow stores,
virtual environments, data files and checkpoints; the entrypoint is `python jobs/train.py
...` for `train`, `python jobs/tune.py ...` for `tune` (the shipped raygan comes first on
sys.path), and the `raygan` CLI for anything else. By default the command waits, streams
the job's logs, and exits with the job's exit status.

Token auth: a cluster started with `RAY_AUTH_MODE=token` wants the token on every request.
Ray's client sends it only when this process also has `RAY_AUTH_MODE=token`, and reads it
from `RAY_AUTH_TOKEN`, the file named by `RAY_AUTH_TOKEN_PATH`, or `~/.ray/auth_token`.

Secrets: files that look like credentials (.env, keys, .ssh/, .aws/, ...) never travel with
the working dir unless asked for; `--env` values go only into the runtime env's env_vars,
never into the entrypoint or the metadata; credentials written into the command line
(a URL with user:password@) are refused. What the cluster can see is SUBMIT_EXPOSURE.
"""
from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TextIO

from raygan.distributed.cluster import ClusterError, check_reachable, with_timeout
from raygan.errors import RayganError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# gitignore-style patterns (relative to the working dir) that never travel with a job
EXCLUDES = [
    ".git/", ".venv/", "venv/", "**/__pycache__/", "*.egg-info/", ".pytest_cache/",
    "runs/", "ray_results/", "mlflow.db", "*.db", "mlartifacts/", "mlruns/", "bench/out/", "build/",
    "data/", "datasets/", "*.gz", "*.npz", "*.npy", "*.tar", "*.zip", "*.idx?-ubyte",
    "*.pt", "*.pth", "*.ckpt", "*.safetensors",
    "!raygan/metrics/weights/", "!raygan/metrics/weights/*",  # the shipped extractor weights do travel
]
# Credentials a working dir may hold; last in the list, so no "!" pattern above brings one back.
SECRET_EXCLUDES = [
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".ssh/", ".aws/", ".gnupg/", ".kube/", ".docker/",
    ".ray/", ".netrc", ".pgpass", ".git-credentials", ".pypirc", ".npmrc", "*.tfstate", "*.tfstate.*",
    "credentials.json", "service-account*.json",
]
# What `raygan submit` hands to the cluster, and who can read it there (checked in Ray 2.60's
# job server: the job record keeps the runtime env as submitted).
SUBMIT_EXPOSURE = """\
What the cluster sees:
  the entrypoint (the raygan command line) and the runtime env, --env values included, are
  stored with the job in the cluster's GCS; anyone who can reach the dashboard (with token
  auth: anyone holding the token) reads them back with `ray job list`, the dashboard's Jobs
  page or GET /api/jobs/. --env values are also in the environment of the job's driver and
  workers (with RAY_JOB_CONFIG_JSON_ENV_VAR), readable there by code of any job and by the
  nodes' users who can read /proc/PID/environ. The working dir is uploaded as a zip to the GCS
  and unpacked on every node the job uses. For real secrets prefer what the nodes already hold
  (cluster.yaml's ~/.raygan_secrets, a Kubernetes Secret) over --env; `--env NAME` without a
  value copies it from your environment, so it stays out of your shell history."""
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# A remote dashboard is reached through an SSH tunnel, never by binding it to every interface.
NO_CLUSTER_HINT = ("; start one here with `ray start --head` (dashboard on 127.0.0.1:8265) or `ray up cluster.yaml`; "
                   "reach a remote cluster's dashboard through an SSH tunnel: `ray dashboard cluster.yaml` or "
                   "`ssh -L 8265:localhost:8265 USER@HEAD`, then --address http://127.0.0.1:8265")
AUTH_HINT = ("the cluster uses token auth: set RAY_AUTH_MODE=token and the token in RAY_AUTH_TOKEN "
             "(or RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token; `ray get-auth-token` prints it on the head)")


class JobError(RayganError):
    """A job that cannot be submitted, found or stopped."""


def resolve_address(address: Optional[str]) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS, else an http $RAY_ADDRESS, else the local dashboard."""
    address = (address or os.environ.get("RAY_API_SERVER_ADDRESS")
               or (os.environ.get("RAY_ADDRESS") if os.environ.get("RAY_ADDRESS", "").startswith("http") else None)
               or DEFAULT_ADDRESS)
    if "://" not in address:
        address = f"http://{address}"
    if not address.startswith(("http://", "https://")):
        raise JobError(f"--address {address}: jobs go to the dashboard's HTTP address, e.g. http://HEAD:8265")
    return address.rstrip("/")


def _call(fn: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Run a client call with a time limit; turn connection and auth failures into one line."""
    from ray.exceptions import AuthenticationError

    try:
        return with_timeout(fn, timeout, what)
    except AuthenticationError:
        raise JobError(f"{what}: rejected; {AUTH_HINT}") from None
    except ConnectionError as e:
        raise ClusterError(f"{what}: {str(e).splitlines()[0] if str(e) else 'connection failed'}") from None
    except RuntimeError as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "401" in text or "403" in text or "Unauthorized" in text:
            raise JobError(f"{what}: rejected; {AUTH_HINT}") from None
        raise JobError(f"{what}: {text[:300]}") from None


def connect(address: Optional[str] = None):
    """A JobSubmissionClient for a reachable cluster (a clear error in seconds otherwise)."""
    address = resolve_address(address)
    check_reachable(address, hint=NO_CLUSTER_HINT)
    from ray.job_submission import JobSubmissionClient

    def make():
        client = JobSubmissionClient(address)
        client._check_connection_and_version(min_version="1.9")
        return client

    return _call(make, f"Ray job server at {address}", timeout=30.0)


# ---------------------------------------------------------------------------- submit
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)[^/@\s:]*:[^/@\s]+@", re.I)


def check_no_credentials(argv: List[str]) -> None:
    """Refuse a command line holding a URL with user:password@: the entrypoint is stored and
    shown in clear on the cluster. Credentials go in --env (MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    for arg in argv:
        if _USERINFO.search(arg):
            shown = _USERINFO.sub(r"\1***:***@", arg)
            raise JobError(f"{shown}: a password in the job's command line "
                           "is stored and shown in clear on the cluster; pass credentials with --env instead, "
                           "e.g. --env MLFLOW_TRACKING_USERNAME --env MLFLOW_TRACKING_PASSWORD")


def parse_env(items: List[str], environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """--env KEY=VALUE, or --env KEY to copy KEY from this environment (a secret then stays out of
    the shell history and of this process's argv)."""
    environ = os.environ if environ is None else environ
    env: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise JobError(f"--env {item.split('=', 1)[0]!r}: expected KEY=VALUE or KEY (a variable name)")
        if not sep:
            if key not in environ:
                raise JobError(f"--env {key}: not set in this environment; export it or give {key}=VALUE")
            value = environ[key]
        env[key] = value
    return env


def entrypoint(argv: List[str], working_dir: str = ".") -> str:
    """The shell command a job runs for `raygan <argv>`: the command line only, never --env values."""
    if not argv:
        raise JobError("nothing to submit: give the raygan command after --, e.g. "
                       "raygan submit -- train --preset digits --workers 2")
    check_no_credentials(argv)
    cmd, rest = argv[0], argv[1:]
    script = Path(working_dir) / "jobs" / f"{cmd}.py"
    if cmd in ("train", "tune") and script.is_file():
        return shlex.join(["python", f"jobs/{cmd}.py", *rest])
    # anything else: the CLI of the shipped package (the working dir is first on sys.path)
    return shlex.join(["python", "-c", "import sys; from raygan.cli import main; sys.exit(main())", *argv])


def runtime_env(working_dir: str = ".", env: Optional[Dict[str, str]] = None,
                excludes: Optional[List[str]] = None, include_secret_files: bool = False) -> Dict[str, Any]:
    """The job's runtime env: the working dir without runs, stores, data and (unless
    include_secret_files) credential files; --env values only here, in env_vars."""
    wd = Path(working_dir)
    if not wd.is_dir():
        raise JobError(f"--working-dir {working_dir} is not a directory")
    patterns = list(excludes or EXCLUDES)
    if not include_secret_files:
        patterns += SECRET_EXCLUDES
    renv: Dict[str, Any] = {"working_dir": str(wd.resolve()), "excludes": patterns}
    if env:
        renv["env_vars"] = dict(env)
    return renv


def submit(client, argv: List[str], working_dir: str = ".", env: Optional[Dict[str, str]] = None,
           submission_id: Optional[str] = None, include_secret_files: bool = False) -> str:
    """Submit with no metadata of ours: the job record holds the command line and the runtime env."""
    ep = entrypoint(argv, working_dir)
    renv = runtime_env(working_dir, env, include_secret_files=include_secret_files)
    return _call(lambda: client.submit_job(entrypoint=ep, runtime_env=renv, submission_id=submission_id),
                 "submitting the job", timeout=300.0)


# ---------------------------------------------------------------------------- watch
def info(client, job_id: str):
    return _call(lambda: client.get_job_info(job_id), f"job {job_id}")


def status(client, job_id: str) -> str:
    return str(_status_value(_call(lambda: client.get_job_status(job_id), f"job {job_id}")))


def _status_value(s) -> str:
    return getattr(s, "value", s)


def exit_code(client, job_id: str) -> int:
    """0 when the job SUCCEEDED; the driver's exit code (or 1) when it FAILED or was STOPPED."""
    details = info(client, job_id)
    st = _status_value(details.status)
    if st == "SUCCEEDED":
        return 0
    code = getattr(details, "driver_exit_code", None)
    return int(code) if code not in (None, 0) else 1


def logs(client, job_id: str) -> str:
    return _call(lambda: client.get_job_logs(job_id), f"logs of job {job_id}")


def follow(client, job_id: str, out: TextIO = sys.stdout) -> None:
    """Stream the job's logs until it ends (falls back to polling if the stream breaks)."""

    async def tail():
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        raise
    except Exception:  # stream closed early: wait by polling, then print what we missed
        pass
    wait(client, job_id)


def wait(client, job_id: str, poll_s: float = 1.0, timeout_s: Optional[float] = None) -> str:
    deadline = None if timeout_s is None else time.time() + timeout_s
    while True:
        st = status(client, job_id)
        if st in TERMINAL:
            return st
        if deadline is not None and time.time() > deadline:
            return st
        time.sleep(poll_s)


def stop(client, job_id: str) -> bool:
    return bool(_call(lambda: client.stop_job(job_id), f"stopping job {job_id}"))


def list_jobs(client) -> List[Any]:
    jobs = _call(lambda: client.list_jobs(), "listing jobs")
    return sorted(jobs, key=lambda j: j.start_time or 0)


def format_jobs(jobs: List[Any]) -> str:
    rows = [("ID", "STATUS", "STARTED", "ENTRYPOINT")]
    for j in jobs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.start_time / 1000)) if j.start_time else "-"
        ep = j.entrypoint if len(j.entrypoint) <= 70 else j.entrypoint[:67] + "..."
        rows.append((j.submission_id or j.job_id or "-", str(_status_value(j.status)), started, ep))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:{w[0]}}  {r[1]:{w[1]}}  {r[2]:{w[2]}}  {r[3]}" for r in rows)
