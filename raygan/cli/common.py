"""What every command shares: the config-source flags, summary and protocol text, one-line errors."""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, Optional

EXIT_USER_ERROR = 2


def add_config_source(p, resume_help: Optional[str] = None) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a shipped preset (see `raygan presets`)")
    src.add_argument("--config", help="a YAML file of config deltas")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set optim.g_lr=1e-4 (repeatable)")


def add_model_source(p, run_help: str, uri_help: str, required: bool = True) -> None:
    """--run-dir (a run's latest checkpoint) or --model-uri (a registered model), + --tracking-uri."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--run-dir", help=run_help)
    src.add_argument("--model-uri", help=uri_help)
    p.add_argument("--tracking-uri", default=None, help="the MLflow store for --model-uri (default "
                                                          "$MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)")


def note(text: str) -> None:
    print(f"raygan: {text}", file=sys.stderr, flush=True)


def protocol_text(p: Optional[Dict[str, Any]]) -> str:
    """One line of how the numbers were made (the parts a protocol has)."""
    if not p:
        return "no protocol"
    if "extractor" in p and "reference" in p:
        return (f"extractor {p.get('extractor')}@{str(p.get('weights_hash'))[:12]}, {p.get('num_samples')} generated vs "
                f"{p.get('reference_count')} {p.get('reference')}, resize {p.get('resize')}")
    keep = {k: v for k, v in p.items() if not isinstance(v, (dict, list)) and k not in ("version",)}
    return ", ".join(f"{k} {v}" for k, v in list(keep.items())[:8])


def print_summary(summary: Dict[str, Any]) -> None:
    from raygan.runstore import RunStore
    from raygan.tracking.store import ui_command

    store = RunStore(summary["run_dir"])
    grids = sorted(store.pictures())
    print(f"run dir:     {store}")
    if grids:
        print(f"picture:     {grids[-1]}")
    final, protocol = summary.get("final") or {}, summary.get("protocol") or {}
    for k, v in final.items():
        print(f"{k:12s} {v:.4g}")
    if final:
        print(f"protocol:    {protocol_text(protocol)}")
    if summary.get("checkpoint"):
        print(f"checkpoint:  {summary['checkpoint']}")
    if summary.get("model_uri"):
        print(f"model:       {summary['model_uri']}")
    if summary.get("tracking_uri"):
        print(f"mlflow run:  {summary['mlflow_run_id']}")
        print(f"browse:      {ui_command(summary['tracking_uri'])}")


def dump_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=str, sort_keys=True))


def finish_files(written, verb: str, out: str) -> int:
    """After `raygan repair`/`translate`: the count written, each depth note, each skipped input
    with its reason; then a one-line error (exit 2) when any input was skipped."""
    from raygan.errors import DataError

    for n in getattr(written, "notes", []):
        note(n)
    skipped = getattr(written, "skipped", [])
    for path, why in skipped:
        print(f"raygan: skipped {path}: {why}", file=sys.stderr)
    print(f"{verb} {len(written)} image(s) into {out}")
    if skipped:
        raise DataError(f"{len(skipped)} of {len(written) + len(skipped)} input image(s) skipped (listed above); "
                        f"the other {len(written)} were written")
    return 0
