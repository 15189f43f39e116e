"""Where runs are recorded: the embedded sqlite default or any tracking URI the user gives.

The URI is resolved once, at the entry point (`pin`), into an absolute form every process
(driver, Ray workers on other nodes, Tune trials) uses as is. Opening a store is checked up
front so a training never fails at its end for a tracking reason: an unreachable server fails
in seconds, an unknown scheme in one line, and a new sqlite store is created under a file lock
(three processes creating one `mlflow.db` at once otherwise race in MLflow's migrations).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Optional

from raygan.errors import RayganError

ARTIFACTS_DIRNAME = "mlartifacts"
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file")
#: a registered model name MLflow accepts everywhere (no '/', ':' or '@': they split model URIs)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,255}$")
CONNECT_TIMEOUT_S = 5


class TrackingError(RayganError):
    """A tracking store, experiment or model name that cannot be used."""


def default_tracking_uri(base: Optional[Path] = None) -> str:
    """sqlite:///<absolute path>/mlflow.db — absolute, because Ray moves workers' cwd."""
    base = Path(base or os.getcwd()).resolve()
    return f"sqlite:///{base / 'mlflow.db'}"


def resolve_tracking_uri(uri: Optional[str]) -> str:
    """The given URI (relative sqlite paths made absolute), else $MLFLOW_TRACKING_URI, else the
    embedded default. The one place a tracking URI is resolved."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme not in SCHEMES:
        raise TrackingError(f"tracking URI {uri!r}: unknown scheme '{scheme or uri}'; use sqlite:///PATH, "
                            f"http(s)://HOST:PORT or a database URI")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    return uri


def pin(cfg) -> Any:
    """A copy of the config whose tracking URI and registered-model name are resolved and
    checked (what every process of the run then uses)."""
    if not cfg.tracking.enabled:
        return cfg
    cfg = cfg.model_copy(deep=True)
    cfg.tracking.uri = resolve_tracking_uri(cfg.tracking.uri)
    cfg.tracking.register_model = model_name(cfg)
    check_experiment_name(cfg.tracking.experiment)
    return cfg


def model_name(cfg) -> Optional[str]:
    """`tracking.register_model`: None (log, don't register), a name, or "auto" =
    raygan-[<task>-]<dataset>-<arch>, so a digits smoke run never moves a Fashion-MNIST champion."""
    name = cfg.tracking.register_model
    if name is None:
        return None
    if name == "auto":
        task = "" if cfg.task == "generate" else f"{cfg.task}-"
        name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", f"raygan-{task}{cfg.data.name}-{cfg.model.arch}")
    if not _MODEL_NAME.match(name):
        raise TrackingError(f"config: tracking.register_model: {name!r} is not a valid model name (letters, "
                            f"digits, '_', '.', '-', space; no '/', ':' or '@')")
    return name


def check_experiment_name(name: str) -> None:
    if not name or not name.strip():
        raise TrackingError("config: tracking.experiment: must not be empty")


def artifact_root(uri: str) -> Optional[str]:
    """For a local sqlite store, keep artifacts beside the database (an absolute file URI)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / ARTIFACTS_DIRNAME).resolve().as_uri()
    return None


def ui_command(uri: str) -> str:
    """The command that browses the store, ready to paste: one web worker and no background job
    consumers (mlflow 3.17 starts 4 workers and a job runner by default, too many for a laptop or
    a 2-core box); it runs in the foreground, so Ctrl-C stops all of it."""
    art = artifact_root(uri)
    extra = f" --default-artifact-root {art}" if art else ""
    if uri.startswith("http"):
        return f"open {uri}"
    return (f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {uri}{extra} --workers 1"
            f"   # Ctrl-C stops it")


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow.store.db.utils", "alembic", "mlflow.tracking._model_registry.client",
                 "mlflow.store.model_registry"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _check_server(uri: str) -> None:
    """An http(s) store answers within seconds, or one line (MLflow itself retries for minutes)."""
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered (auth required, or no /health route): the server is there
    except Exception as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(f"MLflow server {uri} is not reachable ({reason}); start it, fix the URI, or "
                            f"use the embedded store (unset MLFLOW_TRACKING_URI)") from None


def open_client(uri: str, create: bool = True):
    """An MlflowClient on a resolved URI. A missing sqlite store is created (under a file lock)
    when `create`, else it is an error; a server must answer within seconds."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _quiet_mlflow()
    if uri.startswith("http"):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        _check_server(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.is_file() and not create:
            raise TrackingError(f"no MLflow store at {db} (run from the directory that holds mlflow.db, "
                                f"or pass --tracking-uri)")
        if uri not in _READY:
            _init_sqlite_store(uri, db)
            _READY.add(uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


_READY: set = set()  # sqlite stores this process has opened (and so found complete) already


def _init_sqlite_store(uri: str, db: Path) -> None:
    """Open (creating and migrating if need be) the database under a lock file beside it: a
    process that finds the file while another one is still creating its tables waits for it,
    instead of migrating it a second time."""
    import fcntl

    from mlflow.tracking import MlflowClient

    creating = not db.is_file()
    try:
        if creating:
            db.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(db) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if creating:
            raise TrackingError(f"cannot create the MLflow store {db}: {e.strerror}") from None
        return  # an existing store in a directory this user cannot write: nothing to create, no lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates + migrates the schema
    except Exception as e:
        raise TrackingError(f"cannot {'create' if creating else 'open'} the MLflow store {db}: "
                            f"{first_line(e)}") from None
    finally:
        os.close(fd)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:300]


def get_or_create_experiment(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(f"MLflow experiment '{name}' is deleted; restore it (mlflow experiments "
                                f"restore) or choose another tracking.experiment")
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_root(uri))
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def preflight(cfg) -> None:
    """Everything tracking needs, checked before a run writes anything: the store opens, the
    experiment exists or can be made, the model name is valid."""
    if not cfg.tracking.enabled:
        return
    try:
        client = open_client(cfg.tracking.uri)
        get_or_create_experiment(client, cfg.tracking.experiment, cfg.tracking.uri)
    except RayganError:
        raise
    except Exception as e:
        raise TrackingError(f"MLflow at {cfg.tracking.uri}: {type(e).__name__}: {first_line(e)}") from None


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, str]:
    """Nested dict -> {"a.b": "value"} (lists/dicts as JSON), for params and tags."""
    out: Dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return out


def mlflow_key(name: str) -> str:
    """A name MLflow accepts as a param/metric key (alphanumerics, _ - . space : /)."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def set_status(client, run_id: str, status: str, tags: Optional[Dict[str, str]] = None) -> None:
    """Tags then a terminal status; bookkeeping never fails a run or a sweep."""
    try:
        for k, v in (tags or {}).items():
            client.set_tag(run_id, k, str(v)[:5000])
        client.set_terminated(run_id, status)
    except Exception:
        pass


def metric_batch(values: Dict[str, float], step: int = 0):
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [Metric(mlflow_key(k), float(v), ts, step) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]


def source_tags() -> Dict[str, str]:
    """mlflow.source.* tags: the command and, inside a git checkout, the commit."""
    import subprocess
    import sys

    command = os.environ.get("RAYGAN_COMMAND") or f"python: {' '.join(sys.argv)[:200]}"
    tags = {"mlflow.source.name": command[:500], "mlflow.source.type": "LOCAL"}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
        if re.fullmatch(r"[0-9a-f]{40}", commit):
            tags["mlflow.source.git.commit"] = commit
    except Exception:
        pass
    return tags
