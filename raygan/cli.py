"""The `raygan` command. Every user error is one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from raygan.errors import RayganError

EXIT_USER_ERROR = 2


# ---------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a GAN (locally, or on Ray Train with --workers)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a shipped preset (see `raygan presets`)")
    src.add_argument("--config", help="a YAML file of config deltas")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set optim.g_lr=1e-4 (repeatable)")
    p.add_argument("--run-dir", help="where the run lives (default runs/<preset>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    ray = p.add_argument_group("Ray Train (with --workers)")
    ray.add_argument("--workers", type=int, default=None, metavar="N",
                     help="train on Ray Train with N DDP workers (without it: in this process)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs per worker (nccl); 0: CPU (gloo)")
    ray.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C", help="CPUs reserved per worker")
    ray.add_argument("--storage", metavar="PATH|URI",
                     help="where checkpoints live: a local/NFS path or s3://... (default $RAYGAN_STORAGE or ./runs)")
    ray.add_argument("--name", help="the run's name under --storage (default <preset>-<time>; --resume needs it)")
    ray.add_argument("--max-failures", type=int, default=0, metavar="K",
                     help="restart the worker group from the latest checkpoint up to K times (-1: always)")
    ray.add_argument("--address", help="a running cluster: HOST:6379, ray://HOST:10001 or auto (default: "
                                       "$RAY_ADDRESS, else a local one)")
    ray.add_argument("--keep", choices=["last", "best"], default="last",
                     help="checkpoints kept: the newest train.keep_checkpoints, or the best by FID (+ the newest)")
    ray.add_argument("--resource-wait", type=float, default=0.0, metavar="S",
                     help="on an autoscaling cluster, wait up to S seconds for the workers' resources")
    p.set_defaults(func=cmd_train)


def _resolve_train_config(args):
    from raygan.config import load_config
    from raygan.engine import rundir

    if args.resume:
        if not args.run_dir:
            raise RayganError("--resume needs --run-dir DIR (the run to continue)")
        if args.preset or args.config:
            raise RayganError("--resume continues with the run's own config.yaml; change values with --set")
        return rundir.load_run_config(Path(args.run_dir), args.overrides)
    return load_config(args.preset, args.config, args.overrides)


def cmd_train(args) -> int:
    if args.workers is not None:
        from raygan.distributed.cli import train_on_ray

        return train_on_ray(args, _print_summary)
    for flag in ("storage", "name", "address"):
        if getattr(args, flag):
            raise RayganError(f"--{flag} is for training on Ray: add --workers N")
    cfg = _resolve_train_config(args)
    if args.dry_run:
        print(cfg.to_yaml(), end="")
        return 0
    from raygan.engine import rundir
    from raygan.local import train_local

    run_dir = Path(args.run_dir) if args.run_dir else rundir.default_run_dir(cfg)
    summary = train_local(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    _print_summary(summary)
    return 0


def _print_summary(summary) -> None:
    from raygan.tracking.store import ui_command

    run_dir = Path(summary["run_dir"])
    grids = sorted((run_dir / "samples").glob("grid-*.png"))
    print(f"run dir:     {run_dir}")
    if grids:
        print(f"sample grid: {grids[-1]}")
    final, protocol = summary.get("final") or {}, summary.get("protocol") or {}
    if "fid" in final:
        print(f"FID {final['fid']:.2f}  ({_protocol_text(protocol)})")
    for k, v in final.items():
        if k != "fid":
            print(f"{k} {v:.4g}")
    if summary.get("checkpoint"):
        print(f"checkpoint:  {summary['checkpoint']}")
    if summary.get("tracking_uri"):
        print(f"mlflow run:  {summary['mlflow_run_id']}")
        print(f"browse:      {ui_command(summary['tracking_uri'])}")


def _protocol_text(p) -> str:
    if not p:
        return "no protocol"
    return (f"extractor {p.get('extractor')}@{str(p.get('weights_hash'))[:12]}, {p.get('num_samples')} generated vs "
            f"{p.get('reference_count')} {p.get('reference')}, resize {p.get('resize')}")


# ---------------------------------------------------------------------------- eval
def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run's latest checkpoint")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--checkpoint", help="a checkpoint dir (default: the run's latest)")
    p.add_argument("--metrics", default=None, help="comma list of fid,kid,is,pr,dc (default: the run's)")
    p.add_argument("--num-samples", type=int, default=None)
    p.add_argument("--extractor", default=None, help="fmnist-cnn | inception")
    p.add_argument("--inception-weights", default=None, help="path to pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from raygan.engine import rundir
    from raygan.engine.device import resolve_device
    from raygan.tasks import task_class
    from raygan.tasks.loading import load_model

    run_dir = Path(args.run_dir)
    overrides = []
    if args.metrics:
        overrides.append(f"eval.metrics=[{args.metrics}]")
    if args.extractor:
        overrides.append(f"eval.extractor={args.extractor}")
    if args.inception_weights:
        overrides.append(f"eval.inception_weights={args.inception_weights}")
    cfg = rundir.load_run_config(run_dir, overrides)
    ckpt = Path(args.checkpoint) if args.checkpoint else rundir.resume_checkpoint(run_dir)
    device = resolve_device(cfg.train.device)
    loaded = load_model(ckpt, device=device)
    evaluator = task_class(cfg.task).evaluator_for(cfg, device, loaded.model_spec)
    n = args.num_samples or cfg.eval.final_num_samples
    values, protocol = evaluator(loaded.module, n)
    if args.json:
        print(json.dumps({"checkpoint": str(ckpt), "values": values, "protocol": protocol}, indent=1))
    else:
        print(f"checkpoint {ckpt} (kimg {loaded.nimg / 1000:.1f})")
        for k, v in values.items():
            print(f"{k:10s} {v:.4f}")
        print(_protocol_text(protocol))
    return 0


# ---------------------------------------------------------------------------- sample
def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="write a grid of generated images")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir")
    src.add_argument("--model-uri", help="an MLflow model URI, e.g. models:/raygan-generator@champion")
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    import torch
    from torchvision.utils import save_image

    if args.num < 1:
        raise RayganError("--num must be at least 1")
    if args.run_dir:
        from raygan.engine import rundir
        from raygan.tasks.loading import load_model

        G = load_model(rundir.resume_checkpoint(Path(args.run_dir)), device=torch.device("cpu")).module
    else:
        G = _load_registered(args.model_uri, args.tracking_uri)
    G = G.cpu().eval()
    gen = torch.Generator().manual_seed(args.seed)
    z = torch.randn(args.num, G.z_dim, generator=gen)
    y = torch.arange(args.num) % G.num_classes if getattr(G, "num_classes", 0) else None
    with torch.no_grad():
        imgs = G(z, y).float()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(imgs.add(1).div(2).clamp(0, 1), str(out), nrow=max(1, int(args.num ** 0.5)))
    print(f"wrote {args.num} samples to {out}")
    return 0


def _load_registered(uri: str, tracking_uri: Optional[str]):
    import mlflow
    import mlflow.pytorch

    from raygan.tracking.store import resolve_tracking_uri

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    try:
        return mlflow.pytorch.load_model(uri, map_location="cpu")
    except Exception as e:
        raise RayganError(f"cannot load model {uri}: {str(e).splitlines()[0][:200]}") from None


# ---------------------------------------------------------------------------- extractor / data / presets
def _add_extractor(sub) -> None:
    p = sub.add_parser("extractor", help="the fmnist-cnn feature extractor")
    s = p.add_subparsers(dest="extractor_cmd", required=True)
    t = s.add_parser("train", help="train fmnist-cnn on Fashion-MNIST train (>= 90%% test accuracy)")
    t.add_argument("--out", default=None, help="weights file (default: the shipped package file)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--data-dir", default=None)
    t.set_defaults(func=cmd_extractor_train)


def cmd_extractor_train(args) -> int:
    from raygan.metrics.extractors import fmnist_cnn

    out = args.out or str(fmnist_cnn.SHIPPED_WEIGHTS)
    kwargs = {"seed": args.seed, "data_dir": args.data_dir}
    if args.epochs:
        kwargs["epochs"] = args.epochs
    info = fmnist_cnn.train_fmnist_cnn(out, **kwargs)
    print(json.dumps(info, indent=1))
    return 0


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="datasets")
    s = p.add_subparsers(dest="data_cmd", required=True)
    i = s.add_parser("info", help="where a dataset was found, its splits and shapes")
    i.add_argument("name")
    i.add_argument("--root", default=None)
    i.set_defaults(func=cmd_data_info)


def cmd_data_info(args) -> int:
    from raygan.data import describe

    info = describe(args.name, root=args.root)
    for k, v in info.items():
        print(f"{k:12s} {v}")
    return 0


def _add_presets(sub) -> None:
    p = sub.add_parser("presets", help="list the shipped presets")
    p.set_defaults(func=cmd_presets)


def cmd_presets(args) -> int:
    from raygan.config import load_preset, preset_names

    for name in preset_names():
        d = load_preset(name)
        desc = d.get("model", {}).get("arch", "dcgan")
        print(f"{name:16s} {desc:8s} {d.get('data', {}).get('name', 'fashion-mnist')}")
    return 0


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raygan", description="GAN training and tuning on Ray, tracked in MLflow")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_eval(sub)
    _add_sample(sub)
    _add_extractor(sub)
    _add_data(sub)
    _add_presets(sub)
    for extra in _EXTENSIONS:
        extra(sub)
    return parser


_EXTENSIONS: list = []  # the Ray layers add `tune`, `submit`, `runs` here
import raygan.distributed.cli  # noqa: E402,F401  (registers `raygan submit`)
import raygan.distributed.tune_cli  # noqa: E402,F401  (registers `raygan tune` and `raygan runs`)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RayganError as e:
        print(f"raygan: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("raygan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
