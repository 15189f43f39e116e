"""After the trials: an honest winner. The top-k trials by proxy objective are re-evaluated from
their last checkpoints with more samples and several evaluation seeds the proxy never used; the
winner is chosen on the mean (in the objective's direction), its model is logged to its child
run, registered and aliased `champion`, and the parent run records the result with its
protocol and the winner's picture. A trial that diverged is never a candidate."""
from __future__ import annotations

import json
import math
import statistics
import tempfile
from pathlib import Path
from typing import Any, Dict, List

from raygan.distributed.sweep.plan import SweepPlan


def reevaluate(cfg_dict: Dict[str, Any], checkpoint: Any, objective: str, seeds: List[int],
               num_samples: int) -> Dict[str, Any]:
    """The objective of a checkpoint's exported network for each evaluation seed: mean, sample
    std, the values, and the protocol. Each seed draws what the task's evaluation draws anew
    (generated noise; a repair run's test degradations). A task whose evaluation draws nothing
    (translation, a fixed degradation chain) is evaluated once: its std is None, not a 0 that
    looks like agreement between seeds."""
    from raygan.tasks import build_config
    from raygan.engine.device import resolve_device
    from raygan.tasks import task_class
    from raygan.tasks.loading import load_model

    cfg = build_config(cfg_dict)
    device = resolve_device(cfg.train.device)
    with checkpoint_dir(checkpoint) as d:
        loaded = load_model(Path(d), device=device)
    cls = task_class(cfg.task)
    seeded = cls.eval_uses_seed(cfg)
    used = list(seeds) if seeded else list(seeds[:1])
    values, protocol = [], None
    for s in used:
        ev = cls.evaluator_for(cls.with_eval_seed(cfg, s), device, loaded.model_spec)
        result, protocol = ev(loaded.module, num_samples)
        values.append(float(result[objective]))
    if len(values) > 1:
        std, statistic = statistics.stdev(values), f"mean ± sample std over {len(used)} evaluation seeds"
    elif seeded:
        std, statistic = None, "one evaluation seed"
    else:
        std, statistic = None, "one evaluation: it draws nothing at random, so other seeds give the same value"
    protocol = dict(protocol or {})
    if isinstance(protocol.get("degradations"), dict):  # drawn once per seed, not with the last one only
        protocol["degradations"] = {**protocol["degradations"], "seed": used}
    return {"values": values, "mean": statistics.fmean(values), "std": std, "kimg": loaded.nimg / 1000.0,
            "protocol": {**protocol, "seeds": used, "statistic": statistic}}


class checkpoint_dir:
    """A local directory for a ray Checkpoint or a checkpoint path (local or a URI)."""

    def __init__(self, checkpoint: Any):
        self.checkpoint = checkpoint
        self._ctx = None

    def __enter__(self) -> str:
        from raygan.hosts import storage

        ck = self.checkpoint
        if isinstance(ck, (str, Path)):
            if not storage.is_uri(str(ck)) and Path(ck).is_dir():
                return str(ck)
            from ray.train import Checkpoint

            ck = Checkpoint(str(ck))
        self._ctx = ck.as_directory()
        return self._ctx.__enter__()

    def __exit__(self, *exc):
        if self._ctx is not None:
            return self._ctx.__exit__(*exc)
        return False


def log_champion(checkpoint: Any, tracking_uri: str, run_id: str, register_as, tags: Dict[str, str]):
    """Load the winner's network cheaply and register it (runs where the checkpoint is readable)."""
    import torch

    from raygan.tasks import ExportedModel
    from raygan.tasks.loading import load_model
    from raygan.tracking.sweeps import register_champion

    with checkpoint_dir(checkpoint) as d:
        loaded = load_model(Path(d), device=torch.device("cpu"))
    spec = {"task": loaded.task, "network": loaded.network, "config": loaded.config.to_dict(),
            "model_spec": loaded.model_spec}
    return register_champion(tracking_uri, run_id, ExportedModel(loaded.module, spec), register_as, tags)


def _remote(fn, plan: SweepPlan, gpu: bool = True):
    import ray

    o = plan.options
    return ray.remote(num_cpus=min(1.0, o.cpus_per_worker), num_gpus=o.gpus_per_worker if gpu else 0,
                      runtime_env={"env_vars": plan.env})(fn)


def _winner_picture(tracking_uri: str, run_id: str, dest: str):
    """The last per-tick picture the winning trial logged (None when it logged none)."""
    try:
        from raygan.tracking.store import open_client

        client = open_client(tracking_uri)
        images = sorted((a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")),
                        key=lambda p: int(p.split("%step%")[1].split("%")[0]) if "%step%" in p else 0)
        if not images:
            return None
        return client.download_artifacts(run_id, images[-1], dest)
    except Exception:
        return None


def finish_sweep(plan: SweepPlan, trials) -> Dict[str, Any]:
    import ray

    from raygan.tracking.reporter import version_tags
    from raygan.tracking.sweeps import ChildRuns, protocol_tags, record_result

    key, mode, o = plan.objective, plan.mode, plan.options
    sign = 1.0 if mode == "min" else -1.0
    scored = sorted((t for t in trials if t.status != "errored" and t.value is not None and math.isfinite(t.value)
                     and t.checkpoint is not None), key=lambda t: sign * t.value)
    top = scored[:o.top_k]
    counts = {s: sum(t.status == s for t in trials) for s in ("finished", "stopped", "errored")}
    spent = sum(t.kimg for t in trials)
    out: Dict[str, Any] = {"top": [], "winner": None, "counts": counts, "kimg_spent": spent}
    tally = {"trials_finished": counts["finished"], "trials_stopped": counts["stopped"],
             "trials_errored": counts["errored"], "kimg_spent": spent}
    if not top:
        if plan.tracking_uri:
            record_result(plan.tracking_uri, plan.parent_run_id, tally,
                          {"raygan.sweep_status": f"no trial produced a {key}"}, {}, status="FAILED")
        return out
    evals = ray.get([_remote(reevaluate, plan).remote(t.config, t.checkpoint, key, plan.reeval_seeds,
                                                      plan.reeval_samples) for t in top])
    runs = ChildRuns(plan.tracking_uri, plan.experiment, plan.parent_run_id)
    rows = []
    for t, e in zip(top, evals):
        rows.append({"trial_id": t.trial_id, "run_id": t.run_id, "proxy": t.value, "kimg": t.kimg,
                     "status": t.status, "sampled": t.sampled, **e})
        if plan.tracking_uri and t.run_id:
            stat = {f"reeval_{key}_mean": e["mean"]}
            if e["std"] is not None:
                stat[f"reeval_{key}_std"] = e["std"]
            runs.log(t.run_id, stat, protocol_tags(e["protocol"], "reeval.protocol."))
    winner = min(rows, key=lambda r: sign * r["mean"])
    out.update(top=rows, winner=winner)
    if not plan.tracking_uri:
        return out
    wt = next(t for t in top if t.trial_id == winner["trial_id"])
    champion: Dict[str, Any] = {}
    if wt.run_id:
        std = {key: winner["std"]} if winner["std"] is not None else None
        tags = {**version_tags({key: winner["mean"]}, winner["protocol"], std),
                "sweep": plan.name, "trial_id": wt.trial_id}
        args = (wt.checkpoint, plan.tracking_uri, wt.run_id, plan.register_model, tags)
        if plan.tracking_uri.startswith("sqlite:"):  # a local store: this machine, no task needed
            champion = log_champion(*args)
        else:
            champion = ray.get(_remote(log_champion, plan, gpu=False).remote(*args))
        out["champion"] = champion
    tags = {"raygan.winner_trial": wt.trial_id, "raygan.winner_run_id": wt.run_id or "",
            "raygan.winner_sampled": json.dumps(wt.sampled, default=str)[:5000], "raygan.sweep_status": "finished",
            **protocol_tags(winner["protocol"], "best.protocol.")}
    if champion.get("champion_uri"):
        tags["raygan.champion_uri"] = champion["champion_uri"]
        tags["raygan.registered_model"] = champion["registered"] or ""
    elif champion.get("model_uri"):
        tags["raygan.model_uri"] = champion["model_uri"]
    with tempfile.TemporaryDirectory() as d:
        texts = {"reevaluation.json": json.dumps({"objective": key, "mode": mode, "top": rows,
                                                  "winner": winner["trial_id"]}, indent=1, default=str)}
        pic = _winner_picture(plan.tracking_uri, wt.run_id, d) if wt.run_id else None
        record_result(plan.tracking_uri, plan.parent_run_id,
                      {**tally, f"best_{key}_mean": winner["mean"], f"best_proxy_{key}": winner["proxy"],
                       **({f"best_{key}_std": winner["std"]} if winner["std"] is not None else {})},
                      tags, texts, {"winner.png": pic} if pic else {})
    return out
