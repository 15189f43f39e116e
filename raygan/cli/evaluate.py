"""`raygan eval` and `raygan sample`: judge or draw from a run's exported network (its latest
checkpoint, loaded cheaply) or a registered model, never by building a trainer."""
from __future__ import annotations

from pathlib import Path

from raygan.cli.common import HelpFormatter, add_model_source, dump_json, print_protocols
from raygan.errors import RayganError

SAMPLE_FORMATS = {"png": ".png", "png-dir": "", "npz": ".npz"}
SAMPLE_EXAMPLES = """examples:
  raygan sample --run-dir R --num 64 --out grid.png                   # 8 x 8 samples
  raygan sample --run-dir R --trunc 0.7 --seed 1 --out trunc.png      # truncated toward the mean latent
  raygan sample --run-dir R --interp 10 --num 6 --out interp.png      # 6 rows of 10-step interpolations
  raygan sample --run-dir R --class 3 --num 16 --out class3.png       # a conditional model's class 3
  raygan sample --run-dir R --mix --num 5 --out mix.png               # stylegan2: a 6 x 6 style-mixing grid
"""


def _source(p) -> None:
    add_model_source(p, "a run directory (local path or storage URI): its latest checkpoint",
                     "an MLflow model URI, e.g. models:/raygan-fashion-mnist-dcgan@champion")


def add(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run's latest checkpoint (or a registered model)",
                       formatter_class=HelpFormatter)
    _source(p)
    p.add_argument("--checkpoint", help="a checkpoint dir of the run (default: its latest)")
    p.add_argument("--metrics", default=None,
                   help="comma list, e.g. fid,kid,is,pr,dc | psnr,ssim,fid | fid,cas,gan_test (default: the run's)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="generated (or repaired/translated) images to judge (default: eval.final_num_samples)")
    p.add_argument("--seed", type=int, default=None, help="the evaluation seed: the generated noise, or a repair run's test degradations "
                        "(default: the run's eval.seed / repair.eval_seed)")
    p.add_argument("--extractor", default=None,
                   help="feature extractor for FID & co: fmnist-cnn | inception (default: the run's eval.extractor)")
    p.add_argument("--inception-weights", default=None,
                   help="path to pt_inception-2015-12-05-6726825d.pth (default: the run's eval.inception_weights, "
                        "then $RAYGAN_INCEPTION_WEIGHTS, the torch hub cache)")
    trunc = p.add_mutually_exclusive_group()
    trunc.add_argument("--trunc", type=float, default=None, metavar="PSI",
                       help="judge the generator truncated by psi in [0, 1] (as `raygan sample --trunc`: in w for "
                            "stylegan2, else z scaled by psi); the protocol records psi")
    trunc.add_argument("--trunc-sweep", default=None, metavar="PSI,PSI,...",
                       help="the fidelity-diversity curve: the metrics (default fid,pr: FID, precision, recall) at "
                            "each psi on the same latents, as a table, a PNG (--plot) and, when the run tracks to "
                            "MLflow or --tracking-uri is given, an MLflow run of kind truncation")
    p.add_argument("--plot", default=None, help="with --trunc-sweep: the PNG to write (a new file; default "
                                               "truncation.png)")
    p.add_argument("--json", action="store_true", help="print the values and protocol as JSON")
    p.set_defaults(func=run_eval)

    s = sub.add_parser("sample", help="write generated images: a grid, a folder of PNGs or an npz",
                       formatter_class=HelpFormatter, epilog=SAMPLE_EXAMPLES)
    _source(s)
    s.add_argument("--num", type=int, default=None,
                   help="how many images (default 64); with --interp the rows (default 8), with --mix the row "
                        "and column sources (default 5)")
    s.add_argument("--seed", type=int, default=0, help="the latent noise seed: the same seed writes the same bytes")
    s.add_argument("--class", dest="class_", type=int, default=None, metavar="K",
                   help="every image of class K (a class-conditional generator); default: classes in turn")
    s.add_argument("--trunc", type=float, default=1.0, metavar="PSI",
                   help="truncation psi in [0, 1] toward the mean latent, trading diversity for fidelity: in w "
                        "(w_avg + psi (w - w_avg)) for stylegan2, else z scaled by psi (psi 0: every image G(0, y)); "
                        "1 = none (default 1)")
    grid = s.add_mutually_exclusive_group()
    grid.add_argument("--interp", type=int, default=None, metavar="N",
                      help="a grid of interpolations, N images per row from one latent to another "
                           "(slerp in z; lerp in w for stylegan2)")
    grid.add_argument("--mix", action="store_true",
                      help="stylegan2 only: the style-mixing grid (top row and left column the sources; cell = its "
                           "row's styles with the coarse half of the layers from its column)")
    s.add_argument("--out", required=True, help="output file (.png grid, .npz) or folder (--format png-dir)")
    s.add_argument("--format", choices=list(SAMPLE_FORMATS), default=None,
                   help="png (a grid), png-dir (one PNG per image, for torch-fidelity/clean-fid), npz (uint8 NCHW "
                        "images + labels); default from --out's extension")
    s.add_argument("--force", action="store_true", help="replace an existing --out")
    s.set_defaults(func=run_sample)


def run_eval(args) -> int:
    from raygan import api

    if args.checkpoint and not args.run_dir:
        raise RayganError("--checkpoint goes with --run-dir")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.plot and args.trunc_sweep is None:
        raise RayganError("--plot goes with --trunc-sweep")
    if args.trunc_sweep is not None:
        return run_trunc_sweep(args, metrics)
    values, protocol = api.evaluate(args.run_dir, args.model_uri, metrics, args.num_samples, args.extractor,
                                    args.inception_weights, args.checkpoint, args.tracking_uri, args.seed,
                                    trunc=args.trunc)
    if args.json:
        dump_json({"values": values, "protocol": protocol})
        return 0
    print(f"source     {protocol.get('source')}")
    for k, v in values.items():
        print(f"{k:10s} {v:.4f}")
    print_protocols(values, protocol, width=11)
    return 0


def parse_psis(text: str):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RayganError(f"--trunc-sweep {text}: give psi values separated by commas, e.g. 0.5,0.7,1.0") from None


def run_trunc_sweep(args, metrics) -> int:
    from raygan import api

    result = api.trunc_sweep(parse_psis(args.trunc_sweep), args.run_dir, args.model_uri, metrics, args.num_samples,
                             args.extractor, args.inception_weights, args.checkpoint, args.tracking_uri, args.seed,
                             plot=args.plot or "truncation.png")
    if args.json:
        dump_json(result)
        return 0
    rows, protocol = result["rows"], result["protocol"]
    keys = [k for k in rows[0] if k != "psi"]
    print(f"source     {protocol.get('source')}")
    print(f"truncation in {protocol.get('truncation_space')}, the same latents at every psi")
    print("psi      " + " ".join(f"{k:>10s}" for k in keys))
    for r in rows:
        print(f"{r['psi']:<8g} " + " ".join(f"{r[k]:10.4f}" for k in keys))
    print_protocols(keys, protocol, width=11)
    print(f"plot       {result['plot']}")
    if result["mlflow_run_id"]:
        print(f"mlflow run {result['mlflow_run_id']} ({result['tracking_uri']})")
    return 0


def sample_format(out: str, fmt) -> str:
    """The output format, checked before any model is loaded."""
    path = Path(out)
    if fmt is None and path.is_dir():
        raise RayganError(f"--out {out} is a directory; give a file name (or --format png-dir)")
    if fmt is None:
        fmt = {".png": "png", ".npz": "npz"}.get(path.suffix.lower())
        if fmt is None:
            raise RayganError(f"--out {out}: unknown or missing extension; use .png (a grid), .npz, or a folder "
                              f"with --format png-dir")
    elif SAMPLE_FORMATS[fmt] and path.suffix.lower() != SAMPLE_FORMATS[fmt]:
        raise RayganError(f"--out {out}: --format {fmt} writes a {SAMPLE_FORMATS[fmt]} file")
    return fmt


def check_out(out: str, fmt: str, force: bool) -> None:
    from raygan.data.imagefiles import check_writable

    path = Path(out)
    if fmt == "png-dir":
        if path.exists() and (not path.is_dir() or any(path.iterdir())) and not force:
            raise RayganError(f"--out {out} exists and is not an empty folder; pass --force to write into it")
        if path.exists() and not path.is_dir():
            raise RayganError(f"--out {out} is a file; --format png-dir writes a folder")
        check_writable(path, path)
    else:
        if path.is_dir():
            raise RayganError(f"--out {out} is a directory; give a file name (or --format png-dir)")
        if path.exists() and not force:
            raise RayganError(f"--out {out} exists; pass --force to replace it")
        check_writable(path, path.parent)


def run_sample(args) -> int:
    from raygan import api

    fmt = sample_format(args.out, args.format)
    check_out(args.out, fmt, args.force)
    images, labels = api.sample(args.run_dir, args.model_uri, args.num, args.seed, args.tracking_uri,
                                trunc=args.trunc, class_=args.class_, interp=args.interp, mix=args.mix)
    nrow = args.interp or (round(images.shape[0] ** 0.5) if args.mix else None)
    write_samples(images, labels, Path(args.out), fmt, nrow)
    print(f"wrote {images.shape[0]} samples to {args.out} ({fmt})")
    return 0


def write_samples(images, labels, out: Path, fmt: str, nrow=None) -> None:
    """Through the one output-writing path (raygan.data.imagefiles): each file atomically, and on
    a failure (disk full) no partial or temp file and none of this run's new files are left."""
    import numpy as np

    from raygan.data.imagefiles import OutputWriter

    with OutputWriter() as w:
        if fmt == "npz":
            arrays = {"images": images.numpy()}
            if labels is not None:
                arrays["labels"] = labels.numpy()

            def save_npz(tmp):
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)

            w.write_with(out, save_npz)
        elif fmt == "png-dir":
            for i, img in enumerate(images):
                w.save(img.float() / 255.0, out / f"{i:06d}.png")
        else:
            from torchvision.utils import make_grid

            grid = make_grid(images.float() / 255.0, nrow=nrow or max(1, int(images.shape[0] ** 0.5)))
            w.save(grid, out)  # as torchvision.utils.save_image writes it (grey grids as RGB)
