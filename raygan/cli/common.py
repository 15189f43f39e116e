"""What every command shares: the config-source flags, summary and protocol text, one-line errors."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional

EXIT_USER_ERROR = 2


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and each option's default shown, unless its help already says it
    or there is none to show (a flag, an unset value the help explains)."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        d = action.default
        if (not action.option_strings or "default" in text or d is None or d is False or d == []
                or d is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


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


def add_tiling(p) -> None:
    """--tile, --tile-overlap, --max-pixels: overlapping tiles for images too large for one pass
    (defaults None: raygan.models.tiling's, named in the help without importing torch here)."""
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="run images wider or taller than N px in overlapping N x N tiles, blended without seams "
                        "(0: always one pass; default: 512 px tiles, only for images over --max-pixels)")
    p.add_argument("--tile-overlap", type=int, default=None, metavar="M",
                   help="px over which neighbouring tiles blend, beyond the network's receptive-field margin "
                        "(added automatically; default 16)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="P",
                   help="without --tile, images of more than P pixels are tiled (default 4194304 = 2048 x 2048)")


def note(text: str) -> None:
    print(f"raygan: {text}", file=sys.stderr, flush=True)


def print_protocols(keys, protocol: Optional[Dict[str, Any]], label: str = "protocol:", width: int = 13) -> None:
    """Each metric's protocol (values sharing one share a line), wrapped at word boundaries."""
    import shutil
    import textwrap

    from raygan.metric_names import protocol_lines

    cols = max(60, min(shutil.get_terminal_size((120, 24)).columns, 120))
    indent = " " * width
    for i, (ks, text) in enumerate(protocol_lines(list(keys), protocol)):
        head = f"{label:{width - 1}s} " if i == 0 else indent
        print(textwrap.fill(f"{', '.join(ks)}: {text}", width=cols, initial_indent=head,
                            subsequent_indent=indent + "  ", break_long_words=False, break_on_hyphens=False))


def print_summary(summary: Dict[str, Any]) -> None:
    from raygan.hosts.runstore import RunStore
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
        print_protocols(final, protocol)
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
