"""The MLflow user that raygan's jobs log with: not the admin.

Run beside the MLflow server after it starts (cluster.yaml's head, k8s/mlflow.yaml's postStart):

    python -m raygan.distributed.mlflow_users --uri https://raygan-mlflow:5000 --wait 300 --edit raygan

MLflow's basic-auth app makes one admin from its config at first start. Jobs get a user of their
own, made here through MLflow's auth API (AuthServiceClient) by that admin:
- not an admin: it cannot create, list or change users, nor grant itself anything;
- the server's `default_permission = NO_PERMISSIONS`: it sees no experiment or model of others;
- it may create experiments and registered models; MLflow makes a creator MANAGE holder of what
  it creates, so it owns its own runs and nothing else;
- `--edit NAME` / `--read NAME`: the experiment NAME (created by the admin when missing) is open
  to it with EDIT (log runs; not delete the experiment or change who may use it) or READ.
Its password comes from its own secret and is set again at every start, so a rotated secret takes
effect when the server restarts. A job user that is an admin is demoted.

Environment (this process only): MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, the admin;
RAYGAN_JOB_USERNAME / RAYGAN_JOB_PASSWORD, the jobs' user; MLFLOW_TRACKING_SERVER_CERT_PATH, the
certificate an https server is checked against (MLflow's own variable).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Iterable, Optional

from raygan.errors import RayganError


class MlflowUserError(RayganError):
    """The jobs' MLflow user cannot be set up."""


def wait_for_server(uri: str, seconds: float, environ: Optional[Dict[str, str]] = None) -> None:
    """Poll the server's /health until it answers 200 (TLS checked against the certificate)."""
    import requests

    environ = os.environ if environ is None else environ
    verify = environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    deadline = time.time() + seconds
    last = "no answer"
    while True:
        try:
            r = requests.get(uri.rstrip("/") + "/health", verify=verify, timeout=10)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = type(e).__name__
        if time.time() > deadline:
            raise MlflowUserError(f"MLflow at {uri}: not up after {seconds:.0f} s ({last})")
        time.sleep(2)


def _grant(auth, username: str, experiment_id: str, permission: str) -> None:
    from mlflow.exceptions import RestException

    if hasattr(auth, "grant_user_permission"):  # MLflow >= 3.13: one upsert for every resource type
        auth.grant_user_permission(username, "experiment", experiment_id, permission)
        return
    try:
        auth.create_experiment_permission(experiment_id, username, permission)
    except RestException:  # granted at an earlier start
        auth.update_experiment_permission(experiment_id, username, permission)


def provision(uri: str, username: str, password: str, edit: Iterable[str] = (), read: Iterable[str] = (),
              admin: Optional[str] = None) -> None:
    """Create (or re-password) the non-admin job user and open the named experiments to it."""
    from mlflow.exceptions import RestException
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.tracking import MlflowClient

    if not username or not password:
        raise MlflowUserError("RAYGAN_JOB_USERNAME and RAYGAN_JOB_PASSWORD must both be set")
    if admin is not None and username == admin:
        raise MlflowUserError(f"the jobs' MLflow user must not be the admin ({admin!r}); give it its own name")
    auth = AuthServiceClient(uri)
    try:
        user = auth.get_user(username)
    except RestException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(username, password)
    else:
        auth.update_user_password(username, password)
        if user.is_admin:
            auth.update_user_admin(username, False)
    client = MlflowClient(tracking_uri=uri)
    for permission, names in (("EDIT", edit), ("READ", read)):
        for name in names:
            exp = client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
            _grant(auth, username, exp_id, permission)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m raygan.distributed.mlflow_users", description=__doc__.split("\n")[0])
    p.add_argument("--uri", required=True, help="the MLflow server, e.g. https://raygan-mlflow:5000")
    p.add_argument("--wait", type=float, default=0.0, metavar="S", help="wait up to S seconds for the server")
    p.add_argument("--edit", action="append", default=[], metavar="EXPERIMENT", help="grant EDIT (repeatable)")
    p.add_argument("--read", action="append", default=[], metavar="EXPERIMENT", help="grant READ (repeatable)")
    args = p.parse_args(argv)
    env = os.environ
    try:
        if args.wait:
            wait_for_server(args.uri, args.wait)
        provision(args.uri, env.get("RAYGAN_JOB_USERNAME", ""), env.get("RAYGAN_JOB_PASSWORD", ""),
                  edit=args.edit, read=args.read, admin=env.get("MLFLOW_TRACKING_USERNAME"))
    except RayganError as e:
        print(f"raygan: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the server's answer, in one line
        print(f"raygan: error: MLflow at {args.uri}: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}",
              file=sys.stderr)
        return 1
    print(f"MLflow user {env.get('RAYGAN_JOB_USERNAME')!r} ready at {args.uri} (not an admin; "
          f"EDIT on {args.edit or 'nothing'}, READ on {args.read or 'nothing'} besides what it creates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
