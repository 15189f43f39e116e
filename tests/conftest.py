"""Shared fixtures. Tests run torch on one thread: deterministic, and no oversubscription
when Ray workers share the 2 CI cores."""
import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("RAYGAN_TEST_THREADS", "1")))
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
HAS_FMNIST = os.path.isfile(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz"))
needs_fmnist = pytest.mark.skipif(not HAS_FMNIST, reason="Debian's dataset-fashion-mnist is not installed")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a fresh working directory with its own caches (MLflow db, reference stats)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAYGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
