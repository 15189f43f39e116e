"""The `raygan` command: one module per command group, imports only downwards (cli -> api ->
hosts -> engine/tasks -> core). Every user error is one line on stderr and exit code 2;
Ctrl-C exits 130 after saying how to resume."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from raygan.cli import augment, data, evaluate, repair, runs, submit, tools, train, translate, tune
from raygan.cli.common import EXIT_USER_ERROR
from raygan.errors import ArgumentError, RayganError

COMMANDS = (train, evaluate, repair, translate, augment, tune, runs, submit, tools, data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raygan",
                                     description="GAN training, repair and translation on Ray, tracked in MLflow")
    parser.add_argument("--version", action="version", version=version_text(),
                        help="print raygan's version (and torch's, Ray's, MLflow's) and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add(sub)
    return parser


def version_text() -> str:
    """`raygan X (torch Y, ray Z, mlflow W, python V)`, read from the installed metadata: nothing imported."""
    import platform
    from importlib import metadata

    from raygan import __version__

    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    deps = ", ".join(f"{d} {v(d)}" for d in ("torch", "ray", "mlflow"))
    return f"raygan {__version__} ({deps}, python {platform.python_version()})"


def _stdout_gone() -> int:
    """The reader of our stdout went away (`raygan runs list | head -1`): stop quietly, as a shell
    tool killed by SIGPIPE does (exit 141), and keep Python from complaining at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:  # --help, --version or a usage error, already printed
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _stdout_gone()
        raise
    os.environ["RAYGAN_COMMAND"] = " ".join(["raygan", *argv])  # MLflow's source tag, on every Ray worker too
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit handler
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except RayganError as e:
        print(f"raygan: error: {e.for_cli() if isinstance(e, ArgumentError) else e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM where a command handles it (raygan.errors.Interrupted)
        signum = getattr(e, "signum", 2)
        print(f"raygan: {'terminated' if signum == 15 else 'interrupted'}", file=sys.stderr)
        return 128 + signum
    except OSError as e:
        if getattr(e, "errno", None) == 28:  # ENOSPC: say it plainly; what was written before stays
            print(f"raygan: error: disk full while writing {getattr(e, 'filename', '') or 'a file'}", file=sys.stderr)
            return EXIT_USER_ERROR
        raise


if __name__ == "__main__":
    sys.exit(main())
