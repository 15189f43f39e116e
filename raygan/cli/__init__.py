"""The `raygan` command: one module per command group, imports only downwards (cli -> api ->
hosts -> engine/tasks -> core). Every user error is one line on stderr and exit code 2;
Ctrl-C exits 130 after saying how to resume."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from raygan.cli import augment, evaluate, repair, runs, submit, tools, train, translate, tune
from raygan.cli.common import EXIT_USER_ERROR
from raygan.errors import RayganError

COMMANDS = (train, evaluate, repair, translate, augment, tune, runs, submit, tools)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raygan",
                                     description="GAN training, repair and translation on Ray, tracked in MLflow")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    os.environ["RAYGAN_COMMAND"] = " ".join(["raygan", *argv])  # MLflow's source tag, on every Ray worker too
    try:
        return int(args.func(args) or 0)
    except RayganError as e:
        print(f"raygan: error: {e}", file=sys.stderr)
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
