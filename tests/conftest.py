"""Shared fixtures. Tests run torch on one thread: deterministic, and no oversubscription
when Ray workers share the 2 CI cores."""
import os
import sys

import pytest
import torch

import raygan.tasks  # noqa: F401  registers every task (and its config section) for tests that use raygan.config

torch.set_num_threads(int(os.environ.get("RAYGAN_TEST_THREADS", "1")))
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Ray starts its workers at nice 15: beside other load (a shared CI runner) they then get almost no CPU
# and fixed waits run out. Tests run them at the driver's priority (RayConfig worker_niceness).
os.environ.setdefault("RAY_worker_niceness", "0")

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


# ---------------------------------------------------------------------------- fast new MLflow stores
# A new sqlite MLflow store runs all of MLflow's alembic migrations: ~2 s on a quiet core, ~10 s on a
# loaded one, and dozens of tests each make their own store. In this process the migrations run once,
# into a template; every later new sqlite store gets the template's pages through sqlite's backup API
# (the schema and rows the migrations make, at the head revision, which MLflow still verifies).
# Stores made by subprocesses and Ray workers migrate as usual; so do non-sqlite databases.
# Installed when MLflow's db utils are first imported, so sessions that never touch MLflow pay nothing.
_DB_UTILS = "mlflow.store.db.utils"


def _use_store_template(db_utils):
    import atexit
    import shutil
    import sqlite3
    import tempfile

    migrate = db_utils._initialize_tables
    template = {}

    def initialize_tables(engine):
        url = engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return migrate(engine)
        if "path" not in template:
            import sqlalchemy

            d = tempfile.mkdtemp(prefix="raygan-mlflow-template-")
            atexit.register(shutil.rmtree, d, True)
            t_engine = sqlalchemy.create_engine(f"sqlite:///{os.path.join(d, 'mlflow.db')}")
            migrate(t_engine)
            t_engine.dispose()
            template["path"] = os.path.join(d, "mlflow.db")
        engine.dispose()
        src, dst = sqlite3.connect(template["path"]), sqlite3.connect(url.database)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()

    db_utils._initialize_tables = initialize_tables  # the registry store imports it by name after this


class _StoreTemplateOnImport:
    """A meta-path finder that lets `mlflow.store.db.utils` load as usual, then patches it."""

    def find_spec(self, name, path=None, target=None):
        if name != _DB_UTILS:
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _use_store_template(module)

        spec.loader.exec_module = exec_module
        return spec


if _DB_UTILS in sys.modules:
    _use_store_template(sys.modules[_DB_UTILS])
else:
    sys.meta_path.insert(0, _StoreTemplateOnImport())


# ---------------------------------------------------------------------------- two workers, one Ray at a time
# The suite runs on two xdist workers (`-n 2 --dist loadgroup` in pyproject's addopts). Each test file
# stays on one worker (its module fixtures, e.g. a trained model, are built once), and every file
# that starts Ray, a Ray job or a raygan process that may start one is in a single group, so at most
# one Ray cluster runs at a time: two on one host would contend for the 2 cores and could see each
# other's actors (the cleaner that asks the State API whether a controller lives).
TESTS = os.path.dirname(os.path.abspath(__file__))
RAY_FILES = {"cli/test_cli_manners.py", "config/test_untrusted_input.py", "hosts/test_run_identity.py",
             "metrics/test_metric_registry.py", "test_documented_commands.py", "test_refusals.py",
             "tracking/test_runs.py", "hosts/test_killed_and_concurrent_runs.py", "hosts/test_stop_signals.py"}


def xdist_group_of(path: str) -> str:
    rel = os.path.relpath(path, TESTS).replace(os.sep, "/")
    return "ray" if rel.startswith("distributed/") or rel in RAY_FILES else rel


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` with the groups above, decided on the controller from each test's file.
    (Marking items with `xdist_group` does not group them under pytest 9: xdist 3.8 writes the
    group into `item._nodeid`, which pytest 9 no longer reads, so the marks were silently ignored
    and Ray tests ran on both workers at once.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = str(config.rootpath)

    class OneRayAtATime(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(os.path.join(root, nodeid.split("::")[0]))

    return OneRayAtATime(config, log)
