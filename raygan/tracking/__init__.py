"""MLflow layer: one MLflow run per training (parent + children for sweeps), models registered.

Only this package (and the CLI/distributed layers above it) imports mlflow.
"""
from raygan.tracking.store import default_tracking_uri, resolve_tracking_uri  # noqa: F401
