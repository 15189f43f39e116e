"""`raygan data info | prepare | check`: where a dataset is, writing a prepared dataset, checking one."""
from __future__ import annotations

import json


def add(sub) -> None:
    d = sub.add_parser("data", help="datasets: info, prepare, check")
    ds = d.add_subparsers(dest="data_cmd", required=True)
    i = ds.add_parser("info", help="where a dataset was found, its splits and shapes")
    i.add_argument("name", help="fashion-mnist | mnist | cifar10 | digits | folder | prepared")
    i.add_argument("--root", default=None, help="a folder to look in first (the folder dataset: its images)")
    i.add_argument("--download", action="store_true", help="allow a torchvision download when it is not found")
    i.set_defaults(func=run_data_info)

    p = ds.add_parser("prepare", help="write a folder, a zip/tar of images or a built-in dataset once as a "
                                      "prepared dataset that training streams")
    p.add_argument("src", help="a folder (class subfolders or loose images), a .zip/.tar/.tar.gz of one, or a "
                               "built-in dataset name (digits, fashion-mnist, mnist, cifar10)")
    p.add_argument("--out", required=True, help="the dataset directory to write (never replaced without --force)")
    p.add_argument("--resolution", type=int, default=None, help="fit every image to N x N (center square crop, "
                                                                 "then the fitting rule of every source)")
    p.add_argument("--native", action="store_true", help="keep every image at its own size (PNG), for patch "
                                                         "training")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None, help="1 = grey, 3 = RGB (default: RGB; "
                                                                              "a built-in source: its own)")
    p.add_argument("--split", default="train", choices=("train", "test"), help="which split of a source that "
                                                                               "has two")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: every core)")
    p.add_argument("--shard-size", type=int, default=None, help="images per shard file (default 256)")
    p.add_argument("--ray", action="store_true", help="run the shards as Ray Data tasks across a Ray cluster "
                                                      "(--out must be a directory every node sees)")
    p.add_argument("--address", default=None, help="with --ray: the cluster's address (default: RAY_ADDRESS "
                                                   "or a local cluster)")
    p.add_argument("--force", action="store_true", help="replace an existing prepared dataset, or discard an "
                                                        "unfinished prepare of other options")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_data_prepare)

    c = ds.add_parser("check", help="check a prepared dataset: manifest, shards, and (with --full) every hash")
    c.add_argument("root", help="the prepared dataset's directory or URI")
    c.add_argument("--full", action="store_true", help="read every shard and compare its sha256")
    c.set_defaults(func=run_data_check)


def run_data_info(args) -> int:
    from raygan.data import describe

    for k, v in describe(args.name, root=args.root, download=args.download).items():
        print(f"{k:12s} {v}")
    return 0


def run_data_prepare(args) -> int:
    from raygan.data.prepare import SHARD_SIZE, prepare

    kw = dict(resolution=args.resolution, channels=args.channels, native=args.native, split=args.split,
              workers=args.workers, shard_size=args.shard_size or SHARD_SIZE, force=args.force,
              progress=not args.quiet)
    if args.ray:
        from raygan.distributed.prepare import prepare_on_ray

        m = prepare_on_ray(args.src, args.out, address=args.address, **kw)
    else:
        m = prepare(args.src, args.out, **kw)
    shape = "native size (PNG)" if m["shape"] is None else "x".join(map(str, m["shape"]))
    print(f"prepared {args.out}: {m['count']} images, {shape}, {m['num_classes']} classes, "
          f"{len(m['shards'])} shards, {m['bytes'] / 1e6:.1f} MB, {m['skipped_count']} skipped, "
          f"{m['count'] / max(m['prepare_seconds'], 1e-9):.0f} img/s, content {m['content_hash'][:16]}")
    for s in m["skipped"][:20]:
        print(f"  skipped {s['reason']}")
    if m["skipped_count"] > 20:
        print(f"  ... and {m['skipped_count'] - 20} more (all listed in {args.out}/manifest.json)")
    return 0


def run_data_check(args) -> int:
    from raygan.data.prepared import PreparedDataset

    ds = PreparedDataset.open(args.root)
    if args.full:
        ds.verify()
    m = ds.manifest
    print(json.dumps({"root": args.root, "count": m["count"], "shape": m["shape"], "storage": m["storage"],
                      "class_names": m["class_names"], "shards": len(m["shards"]), "bytes": m["bytes"],
                      "skipped": m["skipped_count"], "content_hash": m["content_hash"],
                      "fitting": m["fitting"], "checked": "every sha256" if args.full else "sizes and counts"},
                     indent=1))
    return 0
