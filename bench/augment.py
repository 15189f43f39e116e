"""GAN-made data as augmentation for a classifier trained on few real images (issue 10).

Part 1 (`raygan augment` without --run-dir): Fashion-MNIST, K real images per class
(class-balanced subsets, one per seed). For every K and seed a conditional GAN (the base preset,
default `fmnist-cgan-100pc`, for `--gan-kimg`) is trained by the engine on exactly that subset;
then the one classifier recipe (raygan.metrics.classify, `--clf-steps` steps) is trained on
  real             the K-per-class subset
  real+classic     the same with torchvision v2 flip/translate/rotate/scale per image
  real+gan         the subset + `--synthetic-per-class` generated images per class
  real+gan+classic both
and scored on the 10k test split; mean ± std over the seeds, with the gains side by side.
Goal: +gan beats real-only at K <= 50, and +gan+classic beats +classic.

Few labels (`--pretrain-kimg P`, or `--init-from RUN`): many unlabelled images, K labelled per
class. An unconditional G of the base preset is first pretrained on the whole training set without
its labels (P kimg); each cell's conditional GAN then starts from it (`raygan augment --init-from`:
every shape-matching tensor copied, the class inputs starting at zero) and fine-tunes on its
K-per-class subset for `--gan-kimg`.

Part 2: the CAS of a conditional G trained on all 60k images (`--cas-run-dir R`, e.g. a sweep's
champion, or one trained here for `--cas-kimg`) against the real-data accuracy of the same
recipe, plus GAN-test (the real-data classifier on generated images), `--samples` generated.

    python bench/augment.py [--k 10,50,100] [--seeds 3] [--synthetic-per-class 1000] [--gan-kimg 10]
                            [--clf-steps 300] [--cas-kimg 20 | --cas-run-dir R] [--samples 10000]
                            [--real-fraction 0.5] [--work-dir W]

`--work-dir W` keeps the GAN runs; a second call with the same W resumes each cell's finished
GAN (no retraining), e.g. to compare `--real-fraction` settings on the very same generators.

The default takes about 45 minutes on 2 CPU cores (9 GANs of 10 kimg, 38 classifiers of 300
steps). The standard recipe is 1000 steps: `--clf-steps 1000 --gan-kimg 40 --cas-kimg 100` is the
full protocol (about 3 h on 2 cores; minutes per cell on a GPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from common import machine, table


def part1(args, recipe, work):
    from raygan.experiments.augment import CONDITIONS
    from raygan.experiments.augment_run import run_augment

    from raygan import api

    ks = [int(k) for k in args.k.split(",")]
    init_from = args.init_from
    if args.pretrain_kimg and not init_from:  # the few-labels recipe: G pretrained without labels on every image
        init_from = str(work / f"pretrain-{args.pretrain_kimg:g}kimg")
        if not (Path(init_from) / "checkpoints").is_dir():
            t0 = time.time()
            api.train(api.config(args.base, None, [
                "data.per_class=null", "model.conditional=false", "loss.ac_weight=0", "eval.metrics=[]",
                "tracking.enabled=false", f"train.total_kimg={args.pretrain_kimg}", *args.overrides]),
                run_dir=init_from, progress=False)
            print(f"  unconditional G pretrained on the unlabelled training set in {time.time() - t0:.0f} s", flush=True)
    overrides = args.overrides
    if init_from:  # each cell fine-tunes it (its config is the source's): the base preset's class terms back on
        overrides = [f"loss.ac_weight={api.config(args.base).loss.ac_weight}", *args.overrides]
    out = run_augment(None, real_per_class=ks, synthetic_per_class=args.synthetic_per_class, classic=args.classic,
                      seeds=args.seeds, base=args.base, overrides=overrides, gan_kimg=args.gan_kimg,
                      init_from=init_from,
                      recipe=recipe, work_dir=work / "augment", log=lambda s: print("  " + s, flush=True),
                      real_fraction=args.real_fraction)
    res = out.result
    pct = lambda r: f"{100 * r.mean:.1f} ± {100 * r.std:.1f}"  # noqa: E731
    rows = []
    for k in ks:
        r = {c: res.row(k, c) for c in CONDITIONS}
        rows.append([k, *(pct(r[c]) for c in CONDITIONS),
                     f"{100 * (r['real+gan'].mean - r['real'].mean):+.1f}",
                     f"{100 * (r['real+gan+classic'].mean - r['real+classic'].mean):+.1f}"])
    print()
    print(f"test accuracy % (mean ± std over {len(res.rows[0].values)} seeds; recipe {recipe.steps} steps; "
          f"{args.synthetic_per_class} generated per class; GAN {args.base} {args.gan_kimg:g} kimg per subset; "
          f"mixing {out.protocol['mixing']})")
    print(table(["K/class", *CONDITIONS, "gan - real", "gan+classic - classic"], rows))
    for k in ks:
        g, gc = verdict(res, k, "real+gan", "real"), verdict(res, k, "real+gan+classic", "real+classic")
        print(f"K={k}: +gan vs real-only: {g}; +gan+classic vs +classic: {gc}")
    return {"rows": [dataclasses.asdict(r) for r in res.rows], "protocol": out.protocol, "gans": out.gans}


def cell_scores(args, recipe, work, ks):
    """How each cell's GAN follows its labels and covers its classes: GAN-test (the fmnist-cnn
    extractor's classifier, trained on all 60k real images, on `--cell-samples` generated images,
    balanced labels) and CAS (the recipe trained on those generated images alone, tested on the
    real 10k test split); mean ± std over the seeds."""
    import statistics

    from raygan.data import load_dataset
    from raygan.experiments.augment_run import generator_sampler, load_run_generator
    from raygan.metrics.cas import balanced_labels, cas, generate
    from raygan.metrics.extractors.base import build_extractor

    ext = build_extractor("fmnist-cnn")
    test = load_dataset("fashion-mnist", split="test", resolution=32)
    rows, out = [], {}
    for k in ks:
        gt, cs = [], []
        for s in range(args.seeds):
            sample = generator_sampler(load_run_generator(work / "augment" / f"gan-K{k}-s{s}").module)
            labels = balanced_labels(args.cell_samples, 10, "cpu")
            fake = generate(sample, labels, 0, 500)
            gt.append(float((ext(fake)["logits"].argmax(1) == labels).float().mean()))
            cs.append(cas(sample, (test.images, test.labels), 10, args.cell_samples, recipe, 0)[0])
        out[k] = {"gan_test": gt, "cas": cs}
        ms = lambda v: f"{100 * statistics.mean(v):.1f} ± {100 * statistics.stdev(v) if len(v) > 1 else 0:.1f}"  # noqa
        rows.append([k, ms(gt), " / ".join(f"{100 * v:.1f}" for v in gt), ms(cs)])
    print()
    print(f"the cells' generators: GAN-test (fmnist-cnn, trained on all real images) and CAS (recipe {recipe.steps} "
          f"steps on {args.cell_samples} generated, tested on the real test split), % over {args.seeds} seeds")
    print(table(["K/class", "GAN-test", "per seed", "CAS"], rows))
    return out


def part2(args, recipe, work):
    from raygan.tasks import build_config, load_config
    from raygan.experiments.augment_run import load_run_generator
    from raygan.tasks.generate.eval import Evaluator

    t0 = time.time()
    if args.cas_run_dir:
        loaded = load_run_generator(args.cas_run_dir)
        G, cfg, spec, source = loaded.module, loaded.config, loaded.model_spec, f"run {args.cas_run_dir}"
    else:
        from raygan.engine.loop import Trainer

        cfg = load_config(args.base, None, ["data.per_class=null", f"train.total_kimg={args.cas_kimg}",
                                            "tracking.enabled=false", "eval.metrics=[]", *args.overrides])
        trainer = Trainer(cfg, work / "full", evaluator=None)
        trainer.run()
        G, spec = trainer.task.eval_network(), trainer.task.model_spec()
        source = f"{args.base} on all {len(trainer.task.data.labels)} images, {args.cas_kimg:g} kimg"
        print(f"  full-data GAN trained in {time.time() - t0:.0f} s", flush=True)
    data = cfg.to_dict()
    data["eval"]["metrics"] = ["cas", "gan-test"]
    ev = Evaluator(build_config(data), torch.device("cpu"), channels=int(spec["channels"]), model_spec=spec,
                   recipe=recipe)
    values, protocol = ev(G, args.samples)
    print()
    print(f"CAS of a conditional G trained on full data ({source}); {args.samples} generated, recipe "
          f"{recipe.steps} steps, test split 10k")
    print(table(["real-data accuracy", "CAS (train on generated)", "CAS / real", "GAN-test (real clf on generated)"],
                [[f"{100 * values['real_acc']:.1f}", f"{100 * values['cas']:.1f}",
                  f"{values['cas'] / values['real_acc']:.2f}", f"{100 * values['gan_test']:.1f}"]]))
    return {"values": values, "protocol": protocol, "source": source}


def verdict(res, k, cond, ref) -> str:
    """'raises' / 'lowers' only when the gap exceeds the larger of the two seed stds, else 'ties'."""
    a, b = res.row(k, cond), res.row(k, ref)
    gap, noise = a.mean - b.mean, max(a.std, b.std)
    word = "raises" if gap > noise else "lowers" if gap < -noise else "ties (within 1 std)"
    return f"{word} accuracy ({100 * gap:+.1f} points, std {100 * noise:.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="fmnist-cgan-100pc")
    ap.add_argument("--k", default="10,50,100")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--synthetic-per-class", type=int, default=1000)
    ap.add_argument("--classic", default="flip,translate,rotate,scale")
    ap.add_argument("--gan-kimg", type=float, default=10.0)
    ap.add_argument("--clf-steps", type=int, default=300)
    ap.add_argument("--cas-kimg", type=float, default=20.0)
    ap.add_argument("--cas-run-dir", default=None)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--skip", default="", help="part1, cells (its generators' GAN-test and CAS) and/or part2")
    ap.add_argument("--cell-samples", type=int, default=5000, help="generated images per cell for GAN-test and CAS")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config overrides for the GANs")
    ap.add_argument("--real-fraction", type=float, default=None,
                    help="share of real images in the +gan sets (default: concatenate)")
    ap.add_argument("--work-dir", default=None, help="keep (or reuse: each cell's GAN resumes) the runs here")
    ap.add_argument("--init-from", default=None, help="each cell's GAN starts from this run (raygan augment --init-from)")
    ap.add_argument("--pretrain-kimg", type=float, default=None,
                    help="the few-labels recipe: first pretrain an unconditional G of --base on the whole unlabelled "
                         "training set for this many kimg, then each cell fine-tunes it conditionally")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from raygan.metrics.classify import RECIPE

    recipe = dataclasses.replace(RECIPE, steps=args.clf_steps)
    print(f"machine: {machine()}", flush=True)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="raygan-bench-augment-"))
    out = {}
    t0 = time.time()
    if "part1" not in args.skip:
        out["part1"] = part1(args, recipe, work)
    if "part1" not in args.skip and "cells" not in args.skip:
        out["cells"] = cell_scores(args, recipe, work, [int(k) for k in args.k.split(",")])
    if "part2" not in args.skip:
        out["part2"] = part2(args, recipe, work)
    print(f"\ntotal {time.time() - t0:.0f} s; runs kept in {work}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
