"""`raygan submit`: run a raygan command as a Ray job on a cluster, and look after jobs."""
from __future__ import annotations

import argparse
import sys

from raygan.errors import RayganError

SUBMIT_HELP = """\
examples:
  raygan submit -- train --preset digits --workers 2 --storage s3://bucket/raygan
  raygan submit --address http://HEAD:8265 --no-wait -- train --preset dcgan --workers 8 --gpus-per-worker 1
  raygan submit --list
  raygan submit --status ID | --logs ID [--follow] | --stop ID

The cluster's dashboard address comes from --address, $RAY_API_SERVER_ADDRESS or
http://127.0.0.1:8265, where an SSH tunnel brings a remote head's dashboard:
`ray dashboard cluster.yaml` or `ssh -L 8265:localhost:8265 USER@HEAD`. With token auth on the
cluster, export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token> (or keep it in ~/.ray/auth_token).
"""


def add(sub) -> None:
    p = sub.add_parser("submit", help="run a raygan command as a Ray job on a cluster",
                       description="Submit `raygan <command>` as a Ray job (ships the working directory), "
                                   "or look after submitted jobs.",
                       epilog=SUBMIT_HELP + "\n" + _exposure(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", help="the cluster's dashboard, http://HOST:8265")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    p.add_argument("--working-dir", default=".", help="the directory shipped with the job (default: .)")
    p.add_argument("--env", action="append", default=[], metavar="KEY[=VALUE]",
                   help="an environment variable for the job (repeatable); stored with the job, readable by anyone "
                        "with dashboard access; --env NAME copies it from your environment")
    p.add_argument("--include-secret-files", action="store_true",
                   help="also ship credential files (.env, *.pem, *.key, .ssh/, .aws/, ...), left out by default")
    p.add_argument("--job-id", help="the submission id to use (default: generated)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--status", metavar="ID", help="print a job's status")
    act.add_argument("--logs", metavar="ID", help="print a job's logs (with --follow: until it ends)")
    act.add_argument("--stop", metavar="ID", help="stop a job")
    act.add_argument("--list", action="store_true", help="list the cluster's jobs")
    p.add_argument("--follow", action="store_true", help="with --logs: stream until the job ends")
    p.add_argument("job_command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="a raygan command to run as the job (train, tune, ...)")
    p.set_defaults(func=run)


def _exposure() -> str:
    from raygan.distributed.jobs import SUBMIT_EXPOSURE

    return SUBMIT_EXPOSURE


def run(args) -> int:
    from raygan.distributed import jobs

    command = list(args.job_command)
    if command and command[0] == "--":
        command = command[1:]
    acting = args.status or args.logs or args.stop or args.list
    if acting and command:
        raise RayganError("give either a command to submit (after --) or one of --status/--logs/--stop/--list")
    if args.follow and not args.logs:
        raise RayganError("--follow goes with --logs ID")
    if not acting and not command:
        raise RayganError("nothing to submit: raygan submit [--address URL] -- train --preset NAME --workers N")
    env = jobs.parse_env(args.env)
    if command:  # checked before connecting: a bad command line fails without a cluster
        jobs.entrypoint(command, args.working_dir)
        jobs.runtime_env(args.working_dir, env, include_secret_files=args.include_secret_files)
    client = jobs.connect(args.address)

    if args.list:
        print(jobs.format_jobs(jobs.list_jobs(client)))
        return 0
    if args.status:
        d = jobs.info(client, args.status)
        msg = f"  {d.message}" if getattr(d, "message", None) else ""
        print(f"{args.status}  {jobs._status_value(d.status)}{msg}")
        return 0
    if args.stop:
        stopped = jobs.stop(client, args.stop)
        print(f"{args.stop}  {'stop requested' if stopped else 'not running'}")
        return 0
    if args.logs:
        if args.follow:
            jobs.follow(client, args.logs)
            return jobs.exit_code(client, args.logs)
        print(jobs.logs(client, args.logs), end="")
        return 0

    if command[0] == "train" and "--storage" not in command and "--run-dir" not in command \
            and "RAYGAN_STORAGE" not in env:
        print("raygan: note: no --storage: checkpoints go to $RAYGAN_STORAGE on the cluster if it is set "
              "(cluster.yaml sets it), else into the job's working dir, which Ray deletes later", file=sys.stderr)
    job_id = jobs.submit(client, command, args.working_dir, env, args.job_id,
                         include_secret_files=args.include_secret_files)
    address = jobs.resolve_address(args.address)
    print(f"submitted job {job_id} to {address}", flush=True)
    if args.no_wait:
        print(f"  status: raygan submit --address {address} --status {job_id}")
        print(f"  logs:   raygan submit --address {address} --logs {job_id} --follow")
        print(f"  stop:   raygan submit --address {address} --stop {job_id}")
        return 0
    try:
        jobs.follow(client, job_id)
    except KeyboardInterrupt:
        print(f"\nraygan: stopped watching; job {job_id} keeps running "
              f"(raygan submit --stop {job_id} to stop it)", file=sys.stderr)
        return 130
    st = jobs.status(client, job_id)
    code = jobs.exit_code(client, job_id)
    print(f"job {job_id} {st}" + (f" (exit code {code})" if code else ""), file=sys.stderr if code else sys.stdout)
    return code


