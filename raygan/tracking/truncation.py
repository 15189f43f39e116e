"""A truncation sweep (`raygan eval --trunc-sweep`) in MLflow: one run of kind `truncation` in the
model's experiment, tagged with what it judged (the source run's id when known). Each psi's
values are metrics with step = round(1000 psi) (MLflow steps are integers), so MLflow's own
charts draw the curve too; the plot and every row as JSON are artifacts under `truncation/`."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from raygan.tracking.store import (flatten, get_or_create_experiment, metric_batch, open_client, set_status,
                                   source_tags)


def log_truncation_sweep(uri: str, experiment: str, rows: List[Dict[str, Any]], protocol: Dict[str, Any],
                         plot: Optional[str], source: str, source_run_id: Optional[str] = None) -> str:
    from mlflow.entities import Param

    client = open_client(uri)
    exp_id = get_or_create_experiment(client, experiment, uri)
    tags = {**source_tags(), "raygan.kind": "truncation", "raygan.source": source[:5000]}
    if source_run_id:
        tags["raygan.source_run_id"] = str(source_run_id)
    run_id = client.create_run(exp_id, run_name="truncation sweep", tags=tags).info.run_id
    try:
        params = [Param(k, v[:6000]) for k, v in flatten({"protocol": protocol}).items()]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100])
        metrics = [m for r in rows for m in metric_batch(r, step=int(round(1000 * r["psi"])))]
        for i in range(0, len(metrics), 500):
            client.log_batch(run_id, metrics=metrics[i:i + 500])
        with tempfile.TemporaryDirectory(prefix="raygan-trunc-") as tmp:
            table = Path(tmp) / "sweep.json"
            table.write_text(json.dumps({"rows": rows, "protocol": protocol}, indent=1, default=str))
            client.log_artifact(run_id, str(table), "truncation")
        if plot:
            client.log_artifact(run_id, str(plot), "truncation")
    except BaseException:
        set_status(client, run_id, "FAILED")
        raise
    set_status(client, run_id, "FINISHED")
    return run_id
