"""`raygan presets` and `raygan extractor train` (`raygan data` is raygan.cli.data)."""
from __future__ import annotations

import json
from pathlib import Path

from raygan.errors import RayganError


def add(sub) -> None:
    p = sub.add_parser("presets", help="list the shipped presets with what each is for")
    p.set_defaults(func=run_presets)

    e = sub.add_parser("extractor", help="the fmnist-cnn feature extractor")
    es = e.add_subparsers(dest="extractor_cmd", required=True)
    t = es.add_parser("train", help="train fmnist-cnn on Fashion-MNIST train (>= 90%% test accuracy)")
    t.add_argument("--out", default="fmnist_cnn.pt",
                   help="weights file to write (default ./fmnist_cnn.pt; never replaced without --force)")
    t.add_argument("--replace-shipped", action="store_true",
                   help="write the package's shipped weights instead (changes every fmnist-cnn metric's hash)")
    t.add_argument("--force", action="store_true", help="replace an existing --out")
    t.add_argument("--seed", type=int, default=0, help="training seed (the shipped weights: 0)")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    t.add_argument("--data-dir", default=None, help="where the Fashion-MNIST IDX files are")
    t.set_defaults(func=run_extractor_train)


def preset_description(name: str) -> str:
    """The first sentence of the comment block that opens the preset's YAML, whole."""
    import re
    from importlib import resources

    text = (resources.files("raygan") / "presets" / f"{name}.yaml").read_text()
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    block = " ".join(ln for ln in lines if ln)
    depth = 0
    for i, c in enumerate(block):  # the first ". ", ": " or "; " outside parentheses, not "et al. "
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0 and c in ".:;" and block[i + 1:i + 2] in (" ", "") \
                and not re.search(r"(\bal|\be\.g|\bi\.e|\bvs)$", block[:i]):
            return block[:i + 1].rstrip(":;")
    return block


def run_presets(args) -> int:
    """One preset per entry: name, task, and what it is for, wrapped at word boundaries."""
    import shutil
    import textwrap

    from raygan.config import load_preset, preset_names

    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    indent = " " * 31
    for name in preset_names():
        task = load_preset(name).get("task", "generate")
        print(textwrap.fill(preset_description(name), width=width, initial_indent=f"{name:20s} {task:9s} ",
                            subsequent_indent=indent, break_long_words=False, break_on_hyphens=False))
    return 0


def run_extractor_train(args) -> int:
    from raygan.metrics.extractors import fmnist_cnn

    if args.replace_shipped:
        out = Path(fmnist_cnn.SHIPPED_WEIGHTS)
    else:
        out = Path(args.out)
        if out.resolve() == Path(fmnist_cnn.SHIPPED_WEIGHTS).resolve():
            raise RayganError("--out is the shipped weights file: pass --replace-shipped to replace it on purpose")
        if out.exists() and not args.force:
            raise RayganError(f"--out {out} exists; pass --force to replace it")
    kwargs = {"seed": args.seed, "data_dir": args.data_dir}
    if args.epochs:
        kwargs["epochs"] = args.epochs
    print(json.dumps(fmnist_cnn.train_fmnist_cnn(str(out), **kwargs), indent=1))
    return 0
