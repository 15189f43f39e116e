"""`python -m raygan ...` is the `raygan` command (all subcommands registered)."""
import sys

from raygan.cli import main

sys.exit(main())
