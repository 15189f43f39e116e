"""`raygan augment` in MLflow: one parent run for the experiment, one child run per cell
(K real images per class, condition), through MlflowClient with explicit run ids.

Parent: the protocol as params (classifier recipe, seeds, Ks, synthetic count, GAN source,
subset rule), the table (`augment/table.txt`), the plot (`augment/augment.png`), every row as
JSON (`augment/rows.json`) and what trained each cell's GAN (`augment/gans.json`); metrics
`acc_mean/K<k>/<condition>` for the side-by-side view. Child: params k, condition, seeds; metrics
acc_mean, acc_std and `acc` once per seed (step = seed).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from raygan.tracking.store import (flatten, get_or_create_experiment, metric_batch, open_client,
                                   resolve_tracking_uri, set_status, source_tags)


def log_augment(outcome, uri: Optional[str] = None, experiment: str = "raygan", run_name: Optional[str] = None,
                tags: Optional[Dict[str, str]] = None) -> str:
    """Log an `AugmentOutcome` (raygan.experiments.augment_run); returns the parent run id."""
    from mlflow.entities import Param

    uri = resolve_tracking_uri(uri)
    client = open_client(uri)
    exp_id = get_or_create_experiment(client, experiment, uri)
    result = outcome.result
    parent = client.create_run(exp_id, run_name=run_name or "augment",
                               tags={**source_tags(), "raygan.kind": "augment", **(tags or {})})
    pid = parent.info.run_id
    try:
        params = [Param(k, v[:6000]) for k, v in flatten(dict(outcome.protocol)).items()]
        for i in range(0, len(params), 100):
            client.log_batch(pid, params=params[i:i + 100])
        client.log_batch(pid, metrics=metric_batch(
            {f"acc_mean/K{r.k}/{r.condition}": r.mean for r in result.rows}))
        with tempfile.TemporaryDirectory(prefix="raygan-augment-") as tmp:
            files = {"table.txt": outcome.table + "\n",
                     "rows.json": json.dumps([_row(r) for r in result.rows], indent=2),
                     "gans.json": json.dumps(outcome.gans, indent=2, default=str)}
            for name, text in files.items():
                (Path(tmp) / name).write_text(text)
                client.log_artifact(pid, str(Path(tmp) / name), "augment")
        if outcome.plot_path:
            client.log_artifact(pid, str(outcome.plot_path), "augment")
        for r in result.rows:
            child = client.create_run(exp_id, run_name=f"K={r.k} {r.condition}",
                                      tags={"mlflow.parentRunId": pid, "raygan.kind": "augment-cell"})
            cid = child.info.run_id
            client.log_batch(cid, params=[Param("k", str(r.k)), Param("condition", r.condition),
                                          Param("seeds", ",".join(map(str, r.seeds)))])
            per_seed = [m for s, v in zip(r.seeds, r.values) for m in metric_batch({"acc": v}, step=int(s))]
            client.log_batch(cid, metrics=metric_batch({"acc_mean": r.mean, "acc_std": r.std}) + per_seed)
            set_status(client, cid, "FINISHED")
    except BaseException:
        set_status(client, pid, "FAILED")
        raise
    set_status(client, pid, "FINISHED")
    return pid


def _row(r) -> Dict[str, Any]:
    return {"k": r.k, "condition": r.condition, "mean": r.mean, "std": r.std, "values": r.values, "seeds": r.seeds}
