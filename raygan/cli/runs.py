"""`raygan runs`: the MLflow store as tables (or JSON): list, show, compare, best."""
from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  raygan runs list --experiment tune-quickstart-20261121-101500 --sort score
  raygan runs show 6f1c0d            # any unique prefix of a run id
  raygan runs compare 6f1c0d 9a2b3e
  raygan runs best --experiment tune-quickstart-20261121-101500 --json
"""


def add(sub) -> None:
    p = sub.add_parser("runs", help="list, show, compare and pick the best MLflow runs",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="runs_cmd", required=True)

    def common(q):
        q.add_argument("--tracking-uri", default=None,
                       help="the MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)")
        q.add_argument("--json", action="store_true", help="print JSON instead of a table")

    q = s.add_parser("list", help="runs as a table")
    q.add_argument("--experiment", default=None, help="only this experiment (default: all)")
    q.add_argument("--sort", default="start",
                   help="start (newest first), name, score (each run's objective, best first), or a metric name")
    q.add_argument("--limit", type=int, default=20, help="rows shown (default 20)")
    common(q)
    q.set_defaults(func=lambda a: _out(lambda r: r.list_runs(a.tracking_uri, a.experiment, a.sort, a.limit, a.json)))
    q = s.add_parser("show", help="one run: params, final metrics with protocol, artifacts, models")
    q.add_argument("run_id", help="a run id or a unique prefix")
    common(q)
    q.set_defaults(func=lambda a: _out(lambda r: r.show_run(a.tracking_uri, a.run_id, a.json)))
    q = s.add_parser("compare", help="the params that differ and the metrics of several runs")
    q.add_argument("run_ids", nargs="+", help="run ids or unique prefixes")
    common(q)
    q.set_defaults(func=lambda a: _out(lambda r: r.compare_runs(a.tracking_uri, a.run_ids, a.json)))
    q = s.add_parser("best", help="the best run of an experiment by its objective, and its model URI")
    q.add_argument("--experiment", required=True)
    common(q)
    q.set_defaults(func=lambda a: _out(lambda r: r.best_run(a.tracking_uri, a.experiment, a.json)))


def _out(fn) -> int:
    from raygan.tracking import runs

    print(fn(runs))
    return 0
