"""`raygan runs list` on an embedded store without importing MLflow (its SQL store, SQLAlchemy and
alembic take seconds to import; the list needs four tables).

Read-only, with the standard library's sqlite3, and only from a database at the schema revision
this MLflow writes (`SCHEMA`, checked against MLflow by tests/tracking/test_runs.py): any other
revision, or any other store (a server, another database), goes through MlflowClient, which also
migrates an old store. What it returns answers what `raygan.tracking.runs` asks of MLflow's `Run`
(`info.run_id/run_name/status/start_time/experiment_id`, `data.metrics/params/tags`), the same
way MLflow's SQL store answers `search_experiments` and `search_runs` (active only; newest first,
then run id; a metric's latest value, NaN where MLflow stored one); the test compares the two
readers' output on a real store.
"""
from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

#: the alembic revision of the tracking schema written by the MLflow this package pins (3.17)
SCHEMA = "dc11669786a5"
#: seconds to wait for a writer (a training logging a metric) before reading
BUSY_TIMEOUT_S = 10.0


@dataclass
class RunInfo:
    run_id: str
    run_name: Optional[str]
    status: str
    start_time: Optional[int]
    experiment_id: str


@dataclass
class RunData:
    metrics: Dict[str, float] = field(default_factory=dict)
    params: Dict[str, str] = field(default_factory=dict)
    tags: Dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    info: RunInfo
    data: RunData


def database(uri: str) -> Optional[Path]:
    """The database file of a plain `sqlite:///ABSOLUTE` URI (as resolve_tracking_uri writes it)."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    path = Path(uri[len("sqlite:///"):])
    return path if path.is_absolute() else None


def connect(db: Path) -> Optional[sqlite3.Connection]:
    """A read-only connection to a store at revision SCHEMA; None for anything else."""
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    except (sqlite3.Error, OSError, ValueError):
        return None
    try:
        if [r[0] for r in con.execute("SELECT version_num FROM alembic_version")] == [SCHEMA]:
            return con
    except sqlite3.Error:
        pass
    con.close()
    return None


def experiments(con: sqlite3.Connection) -> Dict[str, str]:
    """{experiment id: name} of the active experiments."""
    rows = con.execute("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'")
    return {str(i): name for i, name in rows}


def runs(con: sqlite3.Connection, exp_ids: List[str], limit: int = 5000) -> List[Run]:
    """The active runs of these experiments, newest first (then by run id), with their latest metrics,
    params and tags."""
    if not exp_ids:
        return []
    marks = ",".join("?" * len(exp_ids))
    rows = con.execute(f"SELECT run_uuid, name, status, start_time, experiment_id FROM runs WHERE experiment_id "
                       f"IN ({marks}) AND lifecycle_stage = 'active' ORDER BY start_time DESC, run_uuid LIMIT ?",
                       [int(e) for e in exp_ids] + [limit]).fetchall()
    out = {r[0]: Run(RunInfo(r[0], r[1], r[2], r[3], str(r[4])), RunData()) for r in rows}
    ids = list(out)
    for i in range(0, len(ids), 500):  # sqlite's bound-parameter limit
        chunk = ids[i:i + 500]
        q = ",".join("?" * len(chunk))
        for key, value, is_nan, rid in con.execute(
                f"SELECT key, value, is_nan, run_uuid FROM latest_metrics WHERE run_uuid IN ({q})", chunk):
            out[rid].data.metrics[key] = math.nan if is_nan else float(value)
        for table in ("params", "tags"):
            for key, value, rid in con.execute(f"SELECT key, value, run_uuid FROM {table} WHERE run_uuid IN ({q})",
                                               chunk):
                getattr(out[rid].data, table)[key] = value
    return list(out.values())
