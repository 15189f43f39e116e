"""Where runs are stored: the embedded sqlite default or any tracking URI the user gives."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

ARTIFACTS_DIRNAME = "mlartifacts"


def default_tracking_uri(base: Optional[Path] = None) -> str:
    """sqlite:///<absolute path>/mlflow.db — absolute, because Ray moves workers' cwd."""
    base = Path(base or os.getcwd()).resolve()
    return f"sqlite:///{base / 'mlflow.db'}"


def resolve_tracking_uri(uri: Optional[str]) -> str:
    if uri:
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            # relative sqlite path: pin it to an absolute one now
            return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env or default_tracking_uri()


def artifact_root(uri: str) -> Optional[str]:
    """For a local sqlite store, keep artifacts beside the database (an absolute file URI)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / ARTIFACTS_DIRNAME).resolve().as_uri()
    return None


def ui_command(uri: str) -> str:
    art = artifact_root(uri)
    extra = f" --default-artifact-root {art}" if art else ""
    if uri.startswith("http"):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}{extra}"
