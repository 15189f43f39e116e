"""`raygan runs`: list, show, compare and pick the best runs of an MLflow store.

Reads the same store training and sweeps write, through MlflowClient (`list` reads an embedded
store directly: raygan.tracking.sqlread), and prints aligned tables (or JSON). A run is judged by
its objective: the first metric of its config (fid for a GAN, psnr for repair, ...) or a sweep's
objective; its most honest value, best first: the re-evaluated mean of a sweep's top trial, a
sweep's winner, the end-of-run value, the last tick. Run ids may be given as any unique prefix.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence

from raygan.errors import RayganError
from raygan.tracking.run_facts import (metric_direction, objective_key, protocol_of, protocol_text,  # noqa: F401
                                       role, run_score, score_protocol)
from raygan.tracking.tables import _fmt_time, fmt, format_table  # noqa: F401  (re-exported)

SORTS = ("start", "name", "score")
# params that differ between runs without describing the experiment
_NOISE_PARAMS = ("tracking.", "preset")


class RunsError(RayganError):
    """Unknown store, experiment or run."""


# ---------------------------------------------------------------------------- store
def open_store(uri: Optional[str]):
    """(client, resolved uri); a missing embedded store is an error, not a new empty one."""
    from raygan.tracking.store import open_client, resolve_tracking_uri

    uri = resolve_tracking_uri(uri)
    return open_client(uri, create=False), uri


def experiment_ids(client, uri: str, name: Optional[str]) -> Dict[str, str]:
    """{experiment id: name}: the one named, or all of them."""
    from mlflow.entities import ViewType

    exps = {e.experiment_id: e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
    return pick_experiment(exps, uri, name)


def pick_experiment(exps: Dict[str, str], uri: str, name: Optional[str]) -> Dict[str, str]:
    """{id: name} of the active experiments -> the one named, or all of them."""
    if name is None:
        return exps
    for i, n in exps.items():
        if n == name:
            return {i: n}
    known = ", ".join(sorted(exps.values())) or "none"
    raise RunsError(f"no MLflow experiment named '{name}' in {uri} (experiments: {known})")


def read_runs(uri: Optional[str], experiment: Optional[str], via_mlflow: bool = False):
    """(resolved uri, {experiment id: name}, runs newest first): an embedded store at this MLflow's
    schema read directly (raygan.tracking.sqlread, no MLflow import), any other through MlflowClient."""
    from raygan.tracking import sqlread
    from raygan.tracking.store import resolve_tracking_uri

    resolved = resolve_tracking_uri(uri)
    db = None if via_mlflow else sqlread.database(resolved)
    con = sqlread.connect(db) if db is not None and db.is_file() else None
    if con is None:
        client, resolved = open_store(uri)
        exps = experiment_ids(client, resolved, experiment)
        return resolved, exps, search(client, exps)
    try:
        exps = pick_experiment(sqlread.experiments(con), resolved, experiment)
        return resolved, exps, sqlread.runs(con, list(exps))
    finally:
        con.close()


def search(client, exp_ids: Iterable[str], max_results: int = 5000) -> List[Any]:
    ids = list(exp_ids)
    if not ids:
        return []
    out, token = [], None
    while True:
        page = client.search_runs(ids, max_results=min(1000, max_results - len(out)), page_token=token,
                                  order_by=["attributes.start_time DESC"])
        out += list(page)
        token = getattr(page, "token", None)
        if not token or len(out) >= max_results:
            return out


def get_run(client, uri: str, run_id: str):
    """A run by its id or a unique prefix of it."""
    try:
        return client.get_run(run_id)
    except Exception:
        pass
    if len(run_id) >= 4:
        matches = [r for r in search(client, experiment_ids(client, uri, None)) if r.info.run_id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RunsError(f"run id prefix '{run_id}' matches {len(matches)} runs; give more characters")
    raise RunsError(f"no run '{run_id}' in {uri} (see raygan runs list)")


def model_uris(client, run) -> List[str]:
    """The run's logged model, its registered version and any alias pointing at it."""
    out = []
    tags = run.data.tags
    if tags.get("raygan.model_uri"):
        out.append(tags["raygan.model_uri"])
    try:
        versions = client.search_model_versions(f"run_id='{run.info.run_id}'")
    except Exception:
        versions = []
    for v in versions:
        out.append(f"models:/{v.name}/{v.version}")
        try:  # search results do not carry aliases; the version itself does
            aliases = client.get_model_version(v.name, v.version).aliases or []
        except Exception:
            aliases = getattr(v, "aliases", None) or []
        for a in aliases:
            out.insert(0, f"models:/{v.name}@{a}")
    if not versions and tags.get("raygan.registered_model"):
        out.append(tags["raygan.registered_model"])
    return list(dict.fromkeys(out))


def run_record(client, run, exp_name: Optional[str] = None) -> Dict[str, Any]:
    key, source, v, std = run_score(run)
    return {"run_id": run.info.run_id, "name": run.info.run_name, "experiment": exp_name, "role": role(run),
            "status": run.info.status, "task": run.data.params.get("task", "generate"),
            "arch": run.data.params.get("model.arch"), "kimg": run.data.metrics.get("kimg"),
            "objective": key, "value": v, "std": std, "value_from": source, "started": run.info.start_time}


# ---------------------------------------------------------------------------- commands
def list_runs(uri: Optional[str], experiment: Optional[str] = None, sort: str = "start", limit: int = 20,
              as_json: bool = False, via_mlflow: bool = False) -> str:
    if sort not in SORTS and not sort.replace("_", "").replace("-", "").isalnum():
        raise RunsError(f"--sort {sort!r}: use one of {', '.join(SORTS)} or a metric name")
    if limit < 1:
        raise RunsError("--limit must be at least 1")
    if sort not in SORTS:
        from raygan.metric_names import canonical

        sort = canonical(sort)  # domain-acc is domain_acc
    uri, exps, runs = read_runs(uri, experiment, via_mlflow)
    if sort not in SORTS and runs and not any(sort in r.data.metrics for r in runs):
        known = sorted({k for r in runs for k in r.data.metrics})
        raise RunsError(f"--sort {sort!r}: no run has that metric; sort by {', '.join(SORTS)} or one of: "
                        f"{', '.join(known[:12])}")
    runs = sort_runs(runs, sort)
    total = len(runs)
    runs = runs[:limit]
    if as_json:
        return json.dumps([run_record(None, r, exps.get(r.info.experiment_id)) for r in runs], indent=1,
                          default=str)
    if not runs:
        return f"no runs in {'experiment ' + experiment if experiment else uri}"
    by_metric = sort not in SORTS
    headers = ["run_id", "name", "role", "status", "task", "arch", "kimg", "score", "of", "started"]
    order = ""
    if by_metric:  # the column the rows are sorted by is always shown
        way = metric_direction(sort)
        headers.insert(7, sort)
        order = {"max": f"\n(sorted by {sort}: highest, the best, first)",
                 "min": f"\n(sorted by {sort}: lowest, the best, first)"}.get(way,
                                                                                f"\n(sorted by {sort}: lowest first)")
    if experiment is None:
        headers.insert(2, "experiment")
    rows = []
    for r in runs:  # names whole: a name copied from the table is the name
        rec = run_record(None, r)
        v, std = rec["value"], rec["std"]
        score = "-" if v is None else (f"{v:.4g} ± {std:.2g}" if std is not None else f"{v:.4g}")
        row = [r.info.run_id[:12], r.info.run_name or "", rec["role"], r.info.status, rec["task"],
               rec["arch"] or "-", rec["kimg"], score, rec["value_from"] or rec["objective"] or "-",
               _fmt_time(r.info.start_time)]
        if by_metric:
            row.insert(7, r.data.metrics.get(sort))
        if experiment is None:
            row.insert(2, exps.get(r.info.experiment_id, r.info.experiment_id))
        rows.append(row)
    more = f"\n({total - len(runs)} more: --limit N)" if total > len(runs) else ""
    numeric = [h in ("kimg", "score") or (by_metric and h == sort) for h in headers]
    return format_table(headers, rows, numeric) + order + more


def sort_runs(runs: List[Any], sort: str) -> List[Any]:
    """start: newest first; name; score and a metric with a direction: best first (the metrics
    registry says which way is better); any other metric: ascending. Runs without it go last."""
    from raygan.metric_names import direction

    if sort in ("start",):
        return sorted(runs, key=lambda r: -(r.info.start_time or 0))
    if sort == "name":
        return sorted(runs, key=lambda r: r.info.run_name or "")
    way = metric_direction(sort) if sort != "score" else None

    def key(r):
        if sort == "score":
            k, _, v, _ = run_score(r)
            if v is not None and k:
                v = v if direction(k) == "min" else -v
        else:
            v = r.data.metrics.get(sort)
            if v is not None and way == "max":
                v = -v
        return (v is None or not math.isfinite(v), v if v is not None else 0.0)

    return sorted(runs, key=key)


def show_run(uri: Optional[str], run_id: str, as_json: bool = False) -> str:
    client, uri = open_store(uri)
    r = get_run(client, uri, run_id)
    info, p, m, t = r.info, r.data.params, r.data.metrics, r.data.tags
    exp = client.get_experiment(info.experiment_id)
    if as_json:
        return json.dumps({**run_record(client, r, exp.name if exp else None), "params": p, "metrics": m,
                           "tags": {k: v for k, v in t.items() if not k.startswith("mlflow.log-model")},
                           "artifacts": list_artifacts(client, info.run_id), "models": model_uris(client, r)},
                          indent=1, default=str)
    lines = [f"run         {info.run_id}  ({info.run_name})",
             f"experiment  {exp.name if exp else info.experiment_id}",
             f"status      {info.status}  ({role(r)})" + (f"  {t['raygan.trial_status']}" if t.get("raygan.trial_status")
                                                          else "")]
    if t.get("mlflow.parentRunId"):
        lines.append(f"parent      {t['mlflow.parentRunId']}")
    if t.get("raygan.error"):
        lines.append(f"error       {t['raygan.error']}")
    dur = f"  ({(info.end_time - info.start_time) / 1000:.1f} s)" if info.end_time and info.start_time else ""
    lines.append(f"started     {_fmt_time(info.start_time)}{dur}")
    lines += ["", "final metrics"]
    shown, rows = set(), []
    for k in sorted(m):
        if k.startswith(("reeval_", "best_")) and not k.endswith("_std"):
            std = k[:-len("_mean")] + "_std" if k.endswith("_mean") else None
            val = f"{m[k]:.4f}" + (f" ± {m[std]:.4f}" if std and std in m else "")
            rows.append((k, val, score_protocol(r, k) or "the trials' proxy"))
            shown |= {k, std}
    for k in sorted(m):
        if k.startswith("final_"):
            rows.append((k, f"{m[k]:.4f}", protocol_text(t, "final.protocol.", k[len("final_"):])))
            shown.add(k)
    for k, val, proto in rows:
        lines.append(f"  {k:22s} {val:>18s}   {proto}")
    if not rows:
        lines.append("  (none)")
    others = {k: v for k, v in m.items() if k not in shown and not k.startswith("final_")}
    if others:
        lines += ["", "last metrics"] + [f"  {k:22s} {fmt(others[k])}" for k in sorted(others)]
    applied = {k: v for k, v in p.items() if k.startswith("applied.")}
    rest = {k: v for k, v in p.items() if not k.startswith("applied.")}
    width = max((len(k) for k in rest), default=0)
    lines += ["", f"params ({len(rest)})"] + [f"  {k.ljust(width)}  {rest[k]}" for k in sorted(rest)]
    if applied:
        width = max(len(k) for k in applied)
        lines += ["", "applied (read back from the trainer)"] + [f"  {k.ljust(width)}  {applied[k]}"
                                                                for k in sorted(applied)]
    arts = list_artifacts(client, info.run_id)
    base = info.artifact_uri.rstrip("/")
    lines += ["", "artifacts"] + ([f"  {base}/{a}" for a in arts] or ["  (none)"])
    uris = model_uris(client, r)
    if uris:
        lines += ["", "model"] + [f"  {u}" for u in uris]
    return "\n".join(lines)


def list_artifacts(client, run_id: str, path: Optional[str] = None, depth: int = 0) -> List[str]:
    out = []
    try:
        items = client.list_artifacts(run_id, path)
    except Exception:
        return out
    for it in items:
        if it.is_dir and depth < 4:
            out += list_artifacts(client, run_id, it.path, depth + 1)
        else:
            out.append(it.path)
    return out


def compare_runs(uri: Optional[str], run_ids: Sequence[str], as_json: bool = False) -> str:
    if len(run_ids) < 2:
        raise RunsError("compare needs at least two run ids")
    client, uri = open_store(uri)
    runs = [get_run(client, uri, rid) for rid in run_ids]
    keys = sorted(set().union(*(r.data.params for r in runs)))
    differing = [k for k in keys if not k.startswith(_NOISE_PARAMS) and len({r.data.params.get(k) for r in runs}) > 1]
    metric_keys = sorted({k for r in runs for k in r.data.metrics
                          if k.startswith(("final_", "reeval_", "best_")) or k in ("kimg", "img_per_s")})
    if as_json:
        return json.dumps({"runs": [r.info.run_id for r in runs],
                           "params": {k: [r.data.params.get(k) for r in runs] for k in differing},
                           "metrics": {k: [r.data.metrics.get(k) for r in runs] for k in metric_keys}}, indent=1)
    headers = [""] + [f"{r.info.run_name or ''} ({r.info.run_id[:8]})" for r in runs]
    rows: List[List[Any]] = [[k] + [r.data.params.get(k, "-") for r in runs] for k in differing]
    if rows and metric_keys:
        rows.append(["---"] + [""] * len(runs))
    rows += [[k] + [r.data.metrics.get(k) for r in runs] for k in metric_keys]
    rows.append(["status"] + [r.info.status for r in runs])
    same = len([k for k in keys if k not in differing and not k.startswith(_NOISE_PARAMS)])
    return format_table(headers, rows, [False] + [True] * len(runs)) + \
        f"\n({len(differing)} params differ, {same} are the same)"


def best_run(uri: Optional[str], experiment: str, as_json: bool = False) -> str:
    from raygan.metric_names import direction

    client, uri = open_store(uri)
    exps = experiment_ids(client, uri, experiment)
    scored = [(r, run_score(r)) for r in search(client, exps) if role(r) not in ("sweep", "truncation")]
    scored = [(r, s) for r, s in scored if s[2] is not None]
    if not scored:
        raise RunsError(f"no run in experiment '{experiment}' has a score yet")
    rank = {"reeval": 0, "best": 1, "final": 2}
    best_tier = min(rank.get(s[1].split("_", 1)[0], 3) for _, s in scored)  # the most honest kind any run has
    scored = [(r, s) for r, s in scored if rank.get(s[1].split("_", 1)[0], 3) == best_tier]
    key = scored[0][1][0]
    best, (key, source, v, std) = min(scored, key=lambda rs: rs[1][2] if direction(key) == "min" else -rs[1][2])
    if as_json:
        return json.dumps({**run_record(client, best, experiment), "protocol": score_protocol(best, source),
                           "models": model_uris(client, best)}, indent=1, default=str)
    lines = [f"best run    {best.info.run_id}  ({best.info.run_name})",
             f"{key:11s} {v:.4f}" + (f" ± {std:.4f}" if std is not None else "") + f"  [{source}, {direction(key)}]",
             f"protocol    {score_protocol(best, source) or 'not recorded'}"]
    if best.data.tags.get("mlflow.parentRunId"):
        lines.append(f"sweep       {best.data.tags['mlflow.parentRunId']}")
    if best.data.tags.get("raygan.sampled"):
        lines.append(f"sampled     {best.data.tags['raygan.sampled']}")
    uris = model_uris(client, best)
    lines.append(f"model       {uris[0]}" if uris else "model       none logged")
    lines += [f"            {u}" for u in uris[1:]]
    return "\n".join(lines)
