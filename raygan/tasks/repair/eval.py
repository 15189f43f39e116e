"""The repair task's metrics: PSNR, SSIM, masked PSNR and FID (KID, ...) of repaired test images.

Protocol (logged beside every value):
* the first `num_samples` images of the `eval.reference_split` split (capped at its size), fitted
  to `data.resolution` (for a patch-trained run, `data.crop`, the whole image, said "full-size", or
  with `repair.eval_size: crop` its fixed centre crop of `data.crop` px, said in the reference), each
  degraded with its own generator seeded from (`repair.eval_seed`, image index), so the degraded
  test set is the same for every run, batch size, shard split and rank;
* repaired in batches of `eval.batch_size`, eval mode, no grad; the output rounded to 8 bits
  (what a saved PNG holds) before anything is scored;
* PSNR/SSIM per image, then averaged (raygan.metrics.restoration: data range 1, RGB on the BT.601
  Y channel, a border of `scale` pixels cropped for super-resolution, as BasicSR); `psnr_masked`
  over the holes only (inpainting);
* feature metrics (fid, kid, ...) of the repaired images against the *clean* images of the same
  indices, with `eval.extractor`; reference statistics cached under cache_root()/refstats.

Under DDP each rank repairs and scores a contiguous shard of the indices; per-image values and
features are gathered in index order, so the numbers equal a single process's.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from raygan.data.crops import center_crops
from raygan.degradations import build_degradations
from raygan.engine import dist
from raygan.errors import DataError
from raygan.metrics import restoration as R
from raygan.metrics.registry import check_kind, of_kind
from raygan.paths import cache_root


class EvalSet:
    """The clean test images of a config and their fixed degradations, computed once per index."""

    def __init__(self, cfg, channels: int, split: Optional[str] = None, crops: Optional[bool] = None):
        self.cfg, self.channels = cfg, int(channels)
        self._crops = crops  # None: as repair.eval_size says
        self.split = split or cfg.eval.reference_split
        self.pipeline = build_degradations(cfg.repair.degradations, seed=cfg.repair.eval_seed)
        self.scale = self.pipeline.scale
        self._clean: Optional[torch.Tensor] = None
        self._cache: Dict[Tuple[int, int], Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}

    @property
    def clean(self) -> torch.Tensor:
        """uint8 (N, C, H, W), the whole split."""
        if self._clean is None:
            from raygan.data import load_dataset

            d = self.cfg.data
            self._clean = load_dataset(d.name, root=d.root, split=self.split, resolution=d.resolution,
                                       channels=self.channels, download=d.download).images
            if self.crops:
                self._clean = center_crops(self._clean, d.crop)
        return self._clean

    @property
    def crops(self) -> bool:
        """Scored on fixed centre crops (`repair.eval_size: crop` with `data.crop`), not whole images."""
        want = self.cfg.repair.eval_size == "crop" if self._crops is None else self._crops
        return self.cfg.data.crop is not None and want

    def reference(self, n: int) -> str:
        """The first n test images, as the protocol names them: whole (fitted to data.resolution), said
        "full-size" for a patch-trained run, or the fixed centre crops."""
        d = self.cfg.data
        size = " (full-size)" if d.crop is not None else ""
        return f"{d.name}:{self.split}[:{n}]@{d.resolution}px" + (f" (centre {d.crop}px crops)" if self.crops else size)

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def degraded(self, start: int, stop: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(degraded float [0, 1] (n, C, h, w), mask (n, 1, h, w) or None) of images start..stop-1."""
        for (a, b), (deg, mask) in self._cache.items():
            if a <= start and stop <= b:
                return deg[start - a:stop - a], (mask[start - a:stop - a] if mask is not None else None)
        x = self.clean[start:stop].float() / 255
        d = self.pipeline.evaluate(x, range(start, stop))
        self._cache[(start, stop)] = (d.image, d.mask)
        return d.image, d.mask


def full_mask(mask: Optional[torch.Tensor], size) -> Optional[torch.Tensor]:
    from raygan.tasks.repair.net import upsample_mask

    return None if mask is None else upsample_mask(mask, tuple(size))


@torch.no_grad()
def repair_images(G: nn.Module, degraded: torch.Tensor, mask: Optional[torch.Tensor], device: torch.device,
                  batch_size: int) -> torch.Tensor:
    """uint8 repaired images (n, C, H, W) on the CPU from float [0, 1] degraded ones (eval mode)."""
    from raygan.metrics import to_uint8

    was_training = G.training
    G.eval()
    out = []
    try:
        for i in range(0, degraded.shape[0], batch_size):
            x = degraded[i:i + batch_size].to(device) * 2 - 1
            m = mask[i:i + batch_size].to(device) if mask is not None else None
            out.append(to_uint8(G(x, m).float()).cpu())
    finally:
        G.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.uint8)


class Evaluator:
    """`(network, num_samples) -> (values, protocol)` for `cfg.eval.metrics`."""

    def __init__(self, cfg, device: torch.device, model_spec: Dict[str, Any]):
        self.cfg, self.device = cfg, device
        self.channels = int(model_spec.get("channels") or cfg.data.channels or 1)
        self.metrics = list(cfg.eval.metrics)
        self.restoration = of_kind(self.metrics, "restoration")
        self.features = of_kind(self.metrics, "features")
        self._score_fns = [check_kind(m, "restoration") for m in self.restoration]
        self.test = EvalSet(cfg, self.channels)
        len(self.test)  # a missing evaluation split fails now (DataError), not at the first evaluation
        self.crop = self.test.scale if self.test.scale > 1 else 0
        self._extractor = None
        self._refs: Dict[int, Any] = {}

    def _extractor_for(self):
        if self._extractor is None:
            from raygan.metrics import build_extractor

            e = self.cfg.eval
            weights = e.inception_weights if e.extractor == "inception" else None
            self._extractor = build_extractor(e.extractor, weights=weights, device=self.device)
        return self._extractor

    def _reference(self, n: int):
        if n not in self._refs:
            from raygan.metrics import reference_stats

            d, e = self.cfg.data, self.cfg.eval
            name = self.test.reference(n)
            self._refs[n] = reference_stats(self.test.clean[:n], self._extractor_for(), name,
                                            str(cache_root() / "refstats"), batch_size=e.batch_size)
        return self._refs[n]

    def shard(self, n: int) -> Tuple[int, int, int]:
        """(start, stop, shard size) of this rank's contiguous block of indices 0..n-1."""
        rank, world = dist.rank(), dist.world_size()
        size = math.ceil(n / world)
        return min(rank * size, n), min((rank + 1) * size, n), size

    def score(self, repaired_u8: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """(n, len(restoration metrics)) float64 per-image values, each metric's registered function
        (kind "restoration": fn(pred, clean, *, mask, crop) -> (n,))."""
        clean = self.test.clean[start:stop].double() / 255
        pred = repaired_u8.double() / 255
        _, mask = self.test.degraded(start, stop)
        mask = full_mask(mask, clean.shape[-2:])
        cols = [fn(pred, clean, mask=mask, crop=self.crop) for fn in self._score_fns]
        return torch.stack(cols, 1) if cols else torch.zeros(stop - start, 0, dtype=torch.float64)

    @torch.no_grad()
    def __call__(self, G: nn.Module, num_samples: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
        n = min(int(num_samples), len(self.test))
        if n < 1:
            raise DataError(f"the {self.test.split} split has no images to evaluate on")
        start, stop, size = self.shard(n)
        degraded, mask = self.test.degraded(start, stop)
        bs = self.cfg.eval.batch_size
        repaired = repair_images(G, degraded, mask, self.device, bs)
        per_image = self.score(repaired, start, stop)
        feats = logits = None
        if self.features:
            ext = self._extractor_for()
            outs = [ext(repaired[i:i + bs]) for i in range(0, repaired.shape[0], bs)]
            feats = torch.cat([o["features"].cpu() for o in outs]) if outs else torch.zeros(0, ext.feature_dim)
            logits = torch.cat([o["logits"].cpu() for o in outs]) if outs else torch.zeros(0, ext.num_classes)
        if dist.world_size() > 1:  # pad every shard to `size` rows, gather in rank (= index) order
            per_image = _gather(per_image, size, n, self.device)
            if feats is not None:
                feats, logits = _gather(feats, size, n, self.device), _gather(logits, size, n, self.device)
        values: Optional[Dict[str, float]] = None
        if dist.rank() == 0:
            values = {m: R.average(per_image[:, i]) for i, m in enumerate(self.restoration)}
            if self.features:
                from raygan.metrics import compute_metrics

                values.update(compute_metrics(feats, logits, self._reference(n), self.features))
        values = dist.broadcast_object(values)
        return values, self.protocol(n)

    def protocol(self, n: int) -> Dict[str, Any]:
        p: Dict[str, Any] = {
            "task": "repair",
            "num_samples": n,
            "reference": self.test.reference(n),
            "degradations": self.test.pipeline.describe(),
            "output": "rounded to uint8 before scoring",
            **R.protocol(self.channels, crop=self.crop),
        }
        if self.features and dist.rank() == 0 and n in self._refs:
            ref = self._refs[n].protocol.as_dict()
            p.update({k: ref[k] for k in ("extractor", "weights_hash", "reference_count", "resize",
                                          "reference_hash")})
            p["features_of"] = "repaired vs clean images of the same indices"
        return dist.broadcast_object(p)


def _gather(t: torch.Tensor, size: int, n: int, device: torch.device) -> torch.Tensor:
    pad = size - t.shape[0]
    if pad:
        t = torch.cat([t, torch.full((pad,) + tuple(t.shape[1:]), math.nan, dtype=t.dtype)])
    return dist.all_gather_cat(t.to(device)).cpu()[:n]
