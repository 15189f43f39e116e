"""`raygan runs`: list, show, compare and pick the best runs of an MLflow store.

Reads the same store training and sweeps write (the embedded sqlite default or a server URI),
through MlflowClient only, and prints aligned plain-text tables. What counts as a run's FID,
best first: the re-evaluated mean of a sweep's top trial (`reeval_fid_mean`), a sweep's
winner (`best_fid_mean`), the end-of-run value (`final_fid`), the last tick's (`fid`).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from raygan.errors import RayganError

FID_KEYS = ("reeval_fid_mean", "best_fid_mean", "final_fid", "fid")
STD_KEYS = {"reeval_fid_mean": "reeval_fid_std", "best_fid_mean": "best_fid_std"}
CHAMPION = "champion"
# params that differ between runs without describing the experiment
_NOISE_PARAMS = ("tracking.", "preset")


class RunsError(RayganError):
    """Unknown store, experiment or run."""


# ---------------------------------------------------------------------------- store
def open_store(uri: Optional[str]):
    """(client, resolved uri); a missing embedded store is an error, not a new empty one."""
    from raygan.tracking.reporter import _client
    from raygan.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.is_file():
            raise RunsError(f"no MLflow store at {db} (run from the directory that holds mlflow.db, "
                            f"or pass --tracking-uri)")
    return _client(uri), uri


def _experiments(client) -> List[Any]:
    from mlflow.entities import ViewType

    return list(client.search_experiments(view_type=ViewType.ACTIVE_ONLY))


def experiment_ids(client, uri: str, name: Optional[str]) -> Dict[str, str]:
    """{experiment id: name}: the one named, or all of them."""
    exps = _experiments(client)
    if name is None:
        return {e.experiment_id: e.name for e in exps}
    for e in exps:
        if e.name == name:
            return {e.experiment_id: e.name}
    known = ", ".join(sorted(e.name for e in exps)) or "none"
    raise RunsError(f"no MLflow experiment named '{name}' in {uri} (experiments: {known})")


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
    try:
        return client.get_run(run_id)
    except Exception:
        raise RunsError(f"no run '{run_id}' in {uri} (see raygan runs list)") from None


# ---------------------------------------------------------------------------- run facts
def run_fid(run) -> Tuple[Optional[str], Optional[float], Optional[float]]:
    """(which metric, value, std) of the run's most honest FID."""
    m = run.data.metrics
    for k in FID_KEYS:
        v = m.get(k)
        if v is not None and math.isfinite(v):
            return k, v, m.get(STD_KEYS.get(k, ""), None)
    return None, None, None


def role(run) -> str:
    t = run.data.tags
    if t.get("raygan.role") == "sweep":
        return "sweep"
    if t.get("raygan.trial_id"):
        return "trial"
    return "train"


def protocol_text(tags: Dict[str, str], prefix: str) -> str:
    p = {k[len(prefix):]: v for k, v in tags.items() if k.startswith(prefix)}
    if not p:
        return ""
    wh = p.get("weights_hash", "")
    text = (f"{p.get('extractor', '?')}@{wh[:8]}{'…' if len(wh) > 8 else ''}, {p.get('num_samples', '?')} generated vs "
            f"{p.get('reference_count', '?')} {p.get('reference', '?')}, resize {p.get('resize', '?')}")
    if "seeds" in p:
        text += f", seeds {', '.join(str(s) for s in json.loads(p['seeds']))}"
    return text


def fid_protocol(run, key: Optional[str]) -> str:
    tags = run.data.tags
    prefix = {"reeval_fid_mean": "reeval.protocol.", "best_fid_mean": "best.protocol.",
              "final_fid": "final.protocol.", "fid": "eval.protocol."}.get(key or "", "final.protocol.")
    return protocol_text(tags, prefix) or protocol_text(tags, "final.protocol.") or protocol_text(tags, "eval.protocol.")


def _fmt_time(ms: Optional[int]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else "-"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def format_table(headers: Sequence[str], rows: List[Sequence[Any]], numeric: Sequence[bool] = ()) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    num = list(numeric) + [False] * (len(headers) - len(numeric))
    lines = []
    for j, r in enumerate(cells):
        parts = [c.rjust(w) if num[i] and j else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


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


# ---------------------------------------------------------------------------- commands
def list_runs(uri: Optional[str], experiment: Optional[str] = None, sort: str = "start", limit: int = 20) -> str:
    client, uri = open_store(uri)
    exps = experiment_ids(client, uri, experiment)
    runs = search(client, exps)
    if limit < 1:
        raise RunsError("--limit must be at least 1")
    runs = sort_runs(runs, sort)
    total = len(runs)
    runs = runs[:limit]
    if not runs:
        return f"no runs in {'experiment ' + experiment if experiment else uri}"
    headers = ["run_id", "name", "role", "status", "arch", "loss", "kimg", "fid", "fid from", "started"]
    if experiment is None:
        headers.insert(2, "experiment")
    rows = []
    for r in runs:
        key, v, std = run_fid(r)
        p, m = r.data.params, r.data.metrics
        fid = f"{v:.2f} ± {std:.2f}" if v is not None and std is not None else (f"{v:.2f}" if v is not None else "-")
        row = [r.info.run_id, (r.info.run_name or "")[:28], role(r), r.info.status,
               p.get("model.arch", "-"), p.get("loss.name", "-"), m.get("kimg"), fid, key or "-",
               _fmt_time(r.info.start_time)]
        if experiment is None:
            row.insert(2, exps.get(r.info.experiment_id, r.info.experiment_id))
        rows.append(row)
    numeric = [h in ("kimg", "fid") for h in headers]
    more = f"\n({total - len(runs)} more: --limit N)" if total > len(runs) else ""
    return format_table(headers, rows, numeric) + more


def sort_runs(runs: List[Any], sort: str) -> List[Any]:
    if sort in ("start", "time", "started"):
        return sorted(runs, key=lambda r: -(r.info.start_time or 0))
    if sort == "name":
        return sorted(runs, key=lambda r: r.info.run_name or "")

    def key(r):
        if sort == "fid":
            v = run_fid(r)[1]
        else:
            v = r.data.metrics.get(sort)
        return (v is None or not math.isfinite(v), v if v is not None else 0.0)

    return sorted(runs, key=key)


def show_run(uri: Optional[str], run_id: str) -> str:
    client, uri = open_store(uri)
    r = get_run(client, uri, run_id)
    info, p, m, t = r.info, r.data.params, r.data.metrics, r.data.tags
    exp = client.get_experiment(info.experiment_id)
    lines = [f"run         {info.run_id}  ({info.run_name})",
             f"experiment  {exp.name if exp else info.experiment_id}",
             f"status      {info.status}  ({role(r)})"]
    if t.get("raygan.trial_status"):
        lines[-1] += f"  {t['raygan.trial_status']}"
    if t.get("mlflow.parentRunId"):
        lines.append(f"parent      {t['mlflow.parentRunId']}")
    if t.get("raygan.error"):
        lines.append(f"error       {t['raygan.error']}")
    dur = f"  ({(info.end_time - info.start_time) / 1000:.1f} s)" if info.end_time and info.start_time else ""
    lines.append(f"started     {_fmt_time(info.start_time)}{dur}")

    key, v, std = run_fid(r)
    lines.append("")
    lines.append("final metrics")
    shown = set()
    rows = []
    for k in ("reeval_fid_mean", "best_fid_mean", "best_proxy_fid"):
        if k in m:
            s = STD_KEYS.get(k)
            val = f"{m[k]:.4f}" + (f" ± {m[s]:.4f}" if s and s in m else "")
            prefix = {"reeval_fid_mean": "reeval.protocol.", "best_fid_mean": "best.protocol."}.get(k, "")
            rows.append((k, val, protocol_text(t, prefix) if prefix else "the trials' proxy"))
            shown |= {k, s}
    for k in sorted(m):
        if k.startswith("final_"):
            rows.append((k, f"{m[k]:.4f}", protocol_text(t, "final.protocol.")))
            shown.add(k)
    if not rows and "fid" in m:
        rows.append(("fid", f"{m['fid']:.4f}", protocol_text(t, "eval.protocol.")))
    for k, val, proto in rows:
        lines.append(f"  {k:18s} {val:>18s}   {proto}")
    if not rows:
        lines.append("  (none)")
    others = {k: v for k, v in m.items() if k not in shown and not k.startswith("final_")}
    if others:
        lines.append("")
        lines.append("last metrics")
        for k in sorted(others):
            lines.append(f"  {k:22s} {_fmt(others[k])}")

    applied = {k: v for k, v in p.items() if k.startswith("applied.")}
    rest = {k: v for k, v in p.items() if not k.startswith("applied.")}
    lines.append("")
    lines.append(f"params ({len(rest)})")
    width = max((len(k) for k in rest), default=0)
    for k in sorted(rest):
        lines.append(f"  {k.ljust(width)}  {rest[k]}")
    if applied:
        lines.append("")
        lines.append("applied (read back from the trainer)")
        width = max(len(k) for k in applied)
        for k in sorted(applied):
            lines.append(f"  {k.ljust(width)}  {applied[k]}")

    lines.append("")
    lines.append("artifacts")
    arts = list_artifacts(client, info.run_id)
    base = info.artifact_uri.rstrip("/")
    for a in arts:
        lines.append(f"  {base}/{a}")
    if not arts:
        lines.append("  (none)")
    uris = model_uris(client, r)
    if uris:
        lines.append("")
        lines.append("model")
        for u in uris:
            lines.append(f"  {u}")
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


def compare_runs(uri: Optional[str], run_ids: Sequence[str]) -> str:
    if len(run_ids) < 2:
        raise RunsError("compare needs at least two run ids")
    client, uri = open_store(uri)
    runs = [get_run(client, uri, rid) for rid in run_ids]
    keys = sorted(set().union(*(r.data.params for r in runs)))
    differing = [k for k in keys if not k.startswith(_NOISE_PARAMS)
                 and len({r.data.params.get(k) for r in runs}) > 1]
    headers = [""] + [f"{(r.info.run_name or '')[:20]} ({r.info.run_id[:8]})" for r in runs]
    rows: List[List[Any]] = []
    for k in differing:
        rows.append([k] + [r.data.params.get(k, "-") for r in runs])
    metric_keys = [k for k in ("reeval_fid_mean", "reeval_fid_std", "best_fid_mean", "final_fid", "fid",
                               "final_kid", "kid", "kimg", "img_per_s")
                   if any(k in r.data.metrics for r in runs)]
    if rows and metric_keys:
        rows.append(["---"] + [""] * len(runs))
    for k in metric_keys:
        rows.append([k] + [r.data.metrics.get(k) for r in runs])
    rows.append(["status"] + [r.info.status for r in runs])
    same = len([k for k in keys if k not in differing and not k.startswith(_NOISE_PARAMS)])
    text = format_table(headers, rows, [False] + [True] * len(runs))
    return text + f"\n({len(differing)} params differ, {same} are the same)"


def best_run(uri: Optional[str], experiment: str) -> str:
    client, uri = open_store(uri)
    exps = experiment_ids(client, uri, experiment)
    runs = [r for r in search(client, exps) if role(r) != "sweep"]
    scored = []
    for key in FID_KEYS:  # the most honest FID any run has decides what is compared
        scored = [r for r in runs if r.data.metrics.get(key) is not None and math.isfinite(r.data.metrics[key])]
        if scored:
            break
    if not scored:
        raise RunsError(f"no run in experiment '{experiment}' has a FID yet")
    best = min(scored, key=lambda r: r.data.metrics[key])
    v = best.data.metrics[key]
    std = best.data.metrics.get(STD_KEYS.get(key, ""))
    lines = [f"best run    {best.info.run_id}  ({best.info.run_name})",
             f"fid         {v:.4f}" + (f" ± {std:.4f}" if std is not None else "") + f"  [{key}]",
             f"protocol    {fid_protocol(best, key) or 'not recorded'}"]
    if best.data.tags.get("mlflow.parentRunId"):
        lines.append(f"sweep       {best.data.tags['mlflow.parentRunId']}")
    sampled = best.data.tags.get("raygan.sampled")
    if sampled:
        lines.append(f"sampled     {sampled}")
    uris = model_uris(client, best)
    if uris:
        lines.append(f"model       {uris[0]}")
        for u in uris[1:]:
            lines.append(f"            {u}")
    else:
        lines.append("model       none logged")
    return "\n".join(lines)


def best_run_id(uri: Optional[str], experiment: str) -> str:
    """The id `best_run` prints (for scripts and tests)."""
    text = best_run(uri, experiment)
    return text.splitlines()[0].split()[2]
