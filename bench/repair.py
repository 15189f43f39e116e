"""Image repair (issue 9): the GAN vs the L1-only network vs classical methods, on Fashion-MNIST test.

For each setting (denoising at sigma 0.3 and 0.5, super-resolution x2 and x4, inpainting with the
preset's box + stroke masks), side by side in one run on the *same* degraded test images:

* the degraded input itself (bicubic-upsampled for super-resolution: the bicubic baseline);
* the classical methods of `baselines` a user would otherwise reach for: Gaussian blur,
  non-local means and total variation for noise (NLM and TV each twice: with the per-image noise
  estimate, the baselines' default, and with the true sigma passed in, so they get their best shot);
  bicubic for SR; biharmonic and Telea for inpainting;
* the L1-only network (the preset with `repair.adv_weight=0`: same generator, EMA and budget);
* the GAN (the shipped preset: L1 x100 + LSGAN with a conditional PatchGAN after an L1 warm-up).

Both networks train `--kimg` each (one process at a time, `train.threads=--threads`, tracking off,
evaluation only at the end) and are scored through the task's own evaluator (`raygan.api.evaluate`
on the run dir, what `raygan eval` runs). The classical methods see the degraded images that the
repair task's pipeline makes with its evaluation seed (`build_degradations(...).evaluate(x, indices)`),
checked equal to the evaluator's, and are scored with `raygan.metrics.restoration` and FID against
the same cached reference statistics with the same extractor (fmnist-cnn); the bench checks that
their protocol dict equals the one `raygan.api.evaluate` returns for the networks. Outputs of every
method are rounded to uint8 before scoring (as the evaluator does).

Writes per setting a picture (rows: degraded | each method | clean, 8 test images) and a JSON of the
numbers to `--out`, and a combined picture to docs/repair.png; prints one table per setting and the
goals check: the GAN beats every classical baseline on PSNR and FID, and beats the L1-only network
on FID while within 1 dB of its PSNR.

    python bench/repair.py [--settings denoise-0.3,denoise-0.5,sr2,sr4,inpaint] [--kimg 40]
                           [--test-images 2000] [--threads 1] [--out bench/out/repair]

At the default size (40 kimg per network, 10 networks, 2000 test images) the whole bench takes
about an hour on 2 CPU cores (one thread busy); `--kimg 2 --test-images 200` checks it in minutes.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from common import machine, table

ROOT = Path(__file__).resolve().parents[1]
# classical rows: key -> (baselines name, uses the true sigma); NLM and TV run twice: with
# the per-image noise estimate (the baselines' default) and with the nominal sigma passed in
CLASSICAL = {"identity": ("identity", False), "gaussian": ("gaussian", False), "nlm": ("nlm", False),
             "nlm-sigma": ("nlm", True), "tv": ("tv", False), "tv-sigma": ("tv", True), "bicubic": ("bicubic", False),
             "biharmonic": ("biharmonic", False), "telea": ("telea", False)}
CLASSICAL_NOISE = ["identity", "gaussian", "nlm", "nlm-sigma", "tv", "tv-sigma"]
SETTINGS: Dict[str, Dict[str, Any]] = {
    "denoise-0.3": {"preset": "fmnist-denoise", "set": ["repair.degradations=noise:sigma=0.3"], "sigma": 0.3,
                    "classical": CLASSICAL_NOISE, "what": "Gaussian noise, sigma 0.3 on [0, 1], clipped",
                    "title": "denoising, sigma 0.3"},
    "denoise-0.5": {"preset": "fmnist-denoise", "set": [], "sigma": 0.5, "classical": CLASSICAL_NOISE,
                    "what": "Gaussian noise, sigma 0.5 on [0, 1], clipped (the preset's)", "title": "denoising, sigma 0.5"},
    "sr2": {"preset": "fmnist-sr2", "set": [], "classical": ["bicubic"],
            "what": "super-resolution x2, 16 -> 32 px (bicubic downsampling with antialias)",
            "title": "super-resolution x2 (16 -> 32 px)"},
    "sr4": {"preset": "fmnist-sr4", "set": [], "classical": ["bicubic"],
            "what": "super-resolution x4, 8 -> 32 px (bicubic downsampling with antialias)",
            "title": "super-resolution x4 (8 -> 32 px)"},
    "inpaint": {"preset": "fmnist-inpaint", "set": [], "classical": ["identity", "biharmonic", "telea"],
                "what": "inpainting, one box + brush strokes per image (5-20% each), holes filled with 0.5",
                "title": "inpainting (box + strokes)"},
}
LABELS = {"identity": "noisy input", "gaussian": "Gaussian blur 5x5, sigma 1", "nlm": "non-local means (sigma estimated)",
          "nlm-sigma": "non-local means (true sigma)", "tv": "TV Chambolle (sigma estimated)",
          "tv-sigma": "TV Chambolle (true sigma)", "bicubic": "bicubic (the input, upsampled)",
          "biharmonic": "biharmonic (scikit-image)", "telea": "Telea (OpenCV)",
          "l1": "L1-only network (adv_weight=0)", "gan": "GAN (the preset)"}
SHORT = {"identity": "input", "gaussian": "blur", "nlm": "NLM", "nlm-sigma": "NLM(s)", "tv": "TV", "tv-sigma": "TV(s)",
         "bicubic": "bicubic", "biharmonic": "biharm.", "telea": "Telea", "l1": "L1 net", "gan": "GAN"}
PICTURE = 8


def label(setting: str, method: str) -> str:
    if method == "identity" and setting == "inpaint":
        return "masked input (0.5 fill)"
    return LABELS[method]


def train(cfg, run_dir: Path):
    import raygan.api as rg

    if run_dir.exists():  # this bench's own previous run
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    summary = rg.train(cfg, run_dir=run_dir, progress=False)
    return summary, time.time() - t0


def network_row(run_dir: Path, metrics: List[str], n: int):
    import raygan.api as rg

    t0 = time.time()
    values, protocol = rg.evaluate(run_dir, metrics=metrics, num_samples=n)
    return values, protocol, time.time() - t0


class Classical:
    """The classical methods on the task's evaluation degradations, scored as the task's evaluator does."""

    def __init__(self, cfg, n: int, metrics: List[str]):
        from raygan.data import load_dataset
        from raygan.degradations import build_degradations
        from raygan.metrics import build_extractor, reference_stats
        from raygan.paths import cache_root
        from raygan.tasks.repair.eval import full_mask

        d, e = cfg.data, cfg.eval
        self.cfg, self.metrics = cfg, metrics
        self.pipeline = build_degradations(cfg.repair.degradations, seed=cfg.repair.eval_seed)
        self.scale = self.pipeline.scale
        self.crop = self.scale if self.scale > 1 else 0
        test = load_dataset(d.name, root=d.root, split=e.reference_split, resolution=d.resolution,
                            channels=d.channels or 1, download=d.download).images
        self.n = n = min(n, int(test.shape[0]))
        self.clean_u8 = test[:n]
        self.clean = self.clean_u8.double() / 255
        deg = self.pipeline.evaluate(self.clean_u8.float() / 255, range(n))  # per image, the eval seed
        self.degraded, self.mask = deg.image, deg.mask
        self.full_mask = full_mask(self.mask, self.clean.shape[-2:])
        self.extractor = build_extractor(e.extractor, device=torch.device("cpu"))
        self.ref_name = f"{d.name}:{e.reference_split}[:{n}]@{d.resolution}px"  # as the task's evaluator
        self.ref = reference_stats(self.clean_u8, self.extractor, self.ref_name, str(cache_root() / "refstats"),
                                   batch_size=e.batch_size)

    def check_same_inputs(self, run_dir: Path) -> None:
        """The evaluator's degraded test images are the ones the classical methods repair."""
        from raygan.tasks.repair.eval import EvalSet

        cfg = self.cfg
        ev = EvalSet(cfg, self.clean_u8.shape[1])
        deg, mask = ev.degraded(0, self.n)
        assert torch.equal(deg, self.degraded), "evaluation degradations differ from the evaluator's"
        assert (mask is None) == (self.mask is None) and (mask is None or torch.equal(mask, self.mask))
        assert torch.equal(ev.clean[:self.n], self.clean_u8)

    def run(self, name: str, **params):
        """(uint8 outputs, values, seconds): repair + rounding + scoring."""
        from baselines import repair_baseline
        from raygan.metrics import compute_metrics
        from raygan.metrics import restoration as R

        t0 = time.time()
        out = repair_baseline(name, self.degraded, scale=self.scale, mask=self.mask, **params)
        u8 = (out.double() * 255).round().clamp(0, 255).to(torch.uint8)  # = to_uint8 of the [-1, 1] form
        pred = u8.double() / 255
        values: Dict[str, float] = {}
        for m in self.metrics:
            if m == "psnr":
                values[m] = R.average(R.psnr(pred, self.clean, crop=self.crop, quantised=True))
            elif m == "ssim":
                values[m] = R.average(R.ssim(pred, self.clean, crop=self.crop))
            elif m == "psnr_masked":
                values[m] = R.average(R.masked_psnr(pred, self.clean, self.full_mask, crop=self.crop,
                                                    quantised=True))
        feats = [m for m in self.metrics if m not in ("psnr", "ssim", "psnr_masked")]
        if feats:
            bs = self.cfg.eval.batch_size
            outs = [self.extractor(u8[i:i + bs]) for i in range(0, u8.shape[0], bs)]
            values.update(compute_metrics(torch.cat([o["features"].cpu() for o in outs]),
                                          torch.cat([o["logits"].cpu() for o in outs]), self.ref, feats))
        return u8, values, time.time() - t0

    def protocol(self) -> Dict[str, Any]:
        """Built the way the task's evaluator builds its own (compared with it, not copied from it)."""
        from raygan.metrics import restoration as R

        ref = self.ref.protocol.as_dict()
        return {"task": "repair", "num_samples": self.n, "reference": self.ref_name,
                "degradations": self.pipeline.describe(), "output": "rounded to uint8 before scoring",
                **R.protocol(self.clean_u8.shape[1], crop=self.crop),
                **{k: ref[k] for k in ("extractor", "weights_hash", "reference_count", "resize", "reference_hash")},
                "features_of": "repaired vs clean images of the same indices"}


def network_outputs(run_dir: Path, degraded, mask) -> torch.Tensor:
    import raygan.api as rg
    from raygan.tasks.repair.eval import repair_images

    G, _, _ = rg.load(run_dir, expect_task="repair")
    return repair_images(G, degraded, mask, torch.device("cpu"), degraded.shape[0])


def picture(rows: List[tuple], scale: int, title: Optional[str] = None):
    """A labelled grid: one row per (label, uint8 (k, C, H, W)), images shown `scale`x (nearest)."""
    from PIL import Image, ImageDraw

    k, _, h, w = rows[0][1].shape
    pad, lab_w, title_h = 2, 58, (14 if title else 0)
    cw, ch = w * scale + pad, h * scale + pad
    im = Image.new("L", (lab_w + k * cw + pad, title_h + len(rows) * ch + pad), 255)
    draw = ImageDraw.Draw(im)
    if title:
        draw.text((4, 2), title, fill=0)
    for r, (name, imgs) in enumerate(rows):
        y = title_h + r * ch + pad
        draw.text((4, y + (h * scale) // 2 - 5), name, fill=0)
        for c in range(k):
            tile = Image.fromarray(imgs[c, 0].numpy(), "L").resize((w * scale, h * scale), Image.NEAREST)
            im.paste(tile, (lab_w + c * cw + pad, y))
    return im


def shown_degraded(cls: Classical, k: int) -> torch.Tensor:
    """The degraded inputs as a user sees them: SR inputs enlarged (nearest), holes white."""
    import torch.nn.functional as F

    deg = cls.degraded[:k]
    size = tuple(cls.clean.shape[-2:])
    if deg.shape[-2:] != size:
        deg = F.interpolate(deg, size=size, mode="nearest")
    if cls.full_mask is not None:  # holes as a grey checkerboard, so they read as missing on any colour
        h, w = deg.shape[-2:]
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        checker = torch.where((yy // 2 + xx // 2) % 2 == 0, 0.35, 0.65).to(deg.dtype).expand_as(deg)
        deg = torch.where(cls.full_mask[:k] > 0.5, checker, deg)
    return (deg * 255).round().clamp(0, 255).to(torch.uint8)


def fmt(v: float, digits: int) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of: {', '.join(SETTINGS)}")
    ap.add_argument("--kimg", type=float, default=40.0, help="training budget of each network (kimg)")
    ap.add_argument("--test-images", type=int, default=2000, help="first N Fashion-MNIST test images")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (training and evaluation)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra overrides for both networks")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "repair"))
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/repair.png")
    args = ap.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        ap.error(f"unknown setting(s) {', '.join(bad)}; valid: {', '.join(SETTINGS)}")
    sys.path.insert(0, str(ROOT))
    torch.set_num_threads(args.threads)
    import raygan.api as rg

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n, t_start = args.test_images, time.time()
    results, blocks, goal_lines = {}, [], []
    for s in settings:
        spec = SETTINGS[s]
        over = [f"train.threads={args.threads}", "tracking.enabled=false", f"train.total_kimg={args.kimg}",
                "train.eval_ticks=0", f"eval.final_num_samples={n}"] + spec["set"] + list(args.overrides)
        cfg = rg.config(spec["preset"], overrides=over)
        metrics = list(cfg.eval.metrics)
        print(f"[{s}] {spec['what']}: preset {spec['preset']}, metrics {metrics}", flush=True)

        rows: Dict[str, Dict[str, Any]] = {}
        nets = {}
        for key, extra in (("l1", ["repair.adv_weight=0"]), ("gan", [])):
            run_dir = out / s / key
            c = rg.config(spec["preset"], overrides=over + extra)
            summary, wall = train(c, run_dir)
            values, protocol, ev_s = network_row(run_dir, metrics, n)
            nets[key] = (run_dir, protocol)
            rows[key] = {**values, "train_s": wall, "eval_s": ev_s, "kimg": summary["kimg"]}
            print(f"[{s}] {key}: trained {summary['kimg']:g} kimg in {wall:.0f} s; "
                  + ", ".join(f"{k} {v:.4g}" for k, v in values.items()), flush=True)

        cls = Classical(cfg, n, metrics)
        cls.check_same_inputs(nets["gan"][0])
        mine = cls.protocol()
        for key, (_, protocol) in nets.items():
            theirs = {k: v for k, v in protocol.items() if k != "source"}
            if json.loads(json.dumps(theirs)) != json.loads(json.dumps(mine)):
                diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise SystemExit(f"[{s}] protocol of the classical rows differs from the {key} network's: {diff}")
        outputs = {}
        for name in spec["classical"]:
            method, known = CLASSICAL[name]
            u8, values, secs = cls.run(method, **({"sigma": spec["sigma"]} if known else {}))
            outputs[name] = u8[:PICTURE]
            rows[name] = {**values, "train_s": 0.0, "eval_s": secs}
            print(f"[{s}] {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()) + f" ({secs:.0f} s)",
                  flush=True)
        for key in ("l1", "gan"):
            outputs[key] = network_outputs(nets[key][0], cls.degraded[:PICTURE],
                                           None if cls.mask is None else cls.mask[:PICTURE])

        # picture: degraded | each method | clean
        order = [m for m in spec["classical"] if m != "identity"]
        for a, b in (("nlm", "nlm-sigma"), ("tv", "tv-sigma")):  # only the better-scoring variant is shown
            if a in order and b in order:
                order.remove(b if rows[a]["psnr"] >= rows[b]["psnr"] else a)
        order += ["l1", "gan"]
        pic_rows = [("degraded", shown_degraded(cls, PICTURE))]
        pic_rows += [(SHORT[m], outputs[m]) for m in order] + [("clean", cls.clean_u8[:PICTURE])]
        picture(pic_rows, 3, f"{s}: {spec['title']}").save(out / f"{s}.png", optimize=True)
        blocks.append((s, spec, pic_rows))

        # the goals
        classical = spec["classical"]
        gan, l1 = rows["gan"], rows["l1"]
        best_psnr = max(classical, key=lambda m: rows[m]["psnr"])
        best_fid = min(classical, key=lambda m: rows[m]["fid"])
        checks = [
            (f"PSNR > every classical (best {best_psnr} {rows[best_psnr]['psnr']:.2f} dB)",
             gan["psnr"] > rows[best_psnr]["psnr"]),
            (f"FID < every classical (best {best_fid} {rows[best_fid]['fid']:.2f})", gan["fid"] < rows[best_fid]["fid"]),
            (f"FID < L1-only ({l1['fid']:.2f})", gan["fid"] < l1["fid"]),
            (f"PSNR within 1 dB of L1-only ({gan['psnr'] - l1['psnr']:+.2f} dB)", gan["psnr"] >= l1["psnr"] - 1.0),
        ]
        goal_lines.append((s, gan, checks))
        results[s] = {"what": spec["what"], "preset": spec["preset"], "overrides": over, "rows": rows,
                      "protocol": mine, "goals": {c: bool(ok) for c, ok in checks}}
        (out / f"{s}.json").write_text(json.dumps(results[s], indent=1, default=str))

    # combined picture (6 images per setting, 2x)
    from PIL import Image

    parts = [picture([(name, imgs[:6]) for name, imgs in pr], 2, spec["title"]) for s, spec, pr in blocks]
    combined = Image.new("L", (max(p.width for p in parts), sum(p.height for p in parts)), 255)
    y = 0
    for p in parts:
        combined.paste(p, (0, y))
        y += p.height
    combined.save(out / "repair.png", optimize=True)
    if not args.no_docs:
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(out / "repair.png", ROOT / "docs" / "repair.png")

    total = time.time() - t_start
    print()
    print(f"machine: {machine()}")
    print(f"command: python bench/repair.py --settings {','.join(settings)} --kimg {args.kimg:g} "
          f"--test-images {n} --threads {args.threads}{''.join(' --set ' + o for o in args.overrides)}")
    print(f"total wall time: {total / 60:.1f} min")
    for s in settings:
        r = results[s]
        p = r["protocol"]
        print()
        print(f"### {s}: {r['what']} (preset {r['preset']}, {r['rows']['gan']['kimg']:g} kimg per network)")
        print(f"test: first {p['num_samples']} of fashion-mnist test, eval seed {p['degradations']['seed']}; "
              f"{p['colour']}, border crop {p['border_crop']}; FID: {p['extractor']} features vs the clean images")
        masked = "psnr_masked" in r["rows"]["gan"]
        heads = ["method", "PSNR (dB)", "SSIM"] + (["masked PSNR (dB)"] if masked else []) + \
            ["FID", "train (s)", "repair + score (s)"]
        body = []
        for m in SETTINGS[s]["classical"] + ["l1", "gan"]:
            v = r["rows"][m]
            body.append([label(s, m), fmt(v["psnr"], 2), fmt(v["ssim"], 3)] + ([fmt(v["psnr_masked"], 2)] if masked else [])
                        + [fmt(v["fid"], 2), f"{v['train_s']:.0f}" if m in ("l1", "gan") else "–", f"{v['eval_s']:.1f}"])
        print(table(heads, body))
    print()
    print("goals: the GAN beats every classical baseline on PSNR and FID, and the L1-only network on FID "
          "while within 1 dB of its PSNR")
    for s, gan, checks in goal_lines:
        missed = [c for c, ok in checks if not ok]
        print(f"  {s}: {'all met' if not missed else 'MISSED: ' + '; '.join(missed)}"
              f"  [{'; '.join(c + (' ok' if ok else ' NO') for c, ok in checks)}]")
    print(f"pictures: {out}/<setting>.png, combined {out / 'repair.png'}"
          f"{'' if args.no_docs else ' (copied to docs/repair.png)'}")
    (out / "results.json").write_text(json.dumps({"machine": machine(), "args": vars(args), "total_s": total,
                                                  "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
