"""The translation task's metrics with their protocol, sharded across ranks.

Test images: the `eval.reference_split` ("test") of both domains, the first n of each where
n = min(num_samples, domain size) (all of Fashion-MNIST's 1000 per class by default). Each rank
translates a contiguous shard of them (a2b: test A through G_AB; b2a: test B through G_BA;
and back for the cycle), rounds outputs to uint8 (what a saved PNG holds), extracts features
and logits, scores the reconstructions; the per-image evidence is gathered, rank 0 turns it
into values (raygan.metrics.translation) and every rank gets them.

FID references: all of the target domain's test images, moments cached on disk under
`cache_root()/"refstats"` keyed by protocol. Baselines (`baseline_*`): the untranslated test
input scored the same way, computed once per sample count on rank 0.
No training RNG is drawn (translation is deterministic; no noise).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from raygan.engine import dist
from raygan.metrics.restoration import protocol as restoration_protocol, psnr, ssim
from raygan.metrics.translation import DIRECTIONS, SOURCE, DirectionEvidence, compute, needs
from raygan.paths import cache_root

OTHER = {"a2b": "b2a", "b2a": "a2b"}
PROTOCOL_VERSION = 1


class TranslateEvaluator:
    def __init__(self, cfg, device: torch.device, channels: Optional[int] = None):
        self.cfg, self.device, self.channels = cfg, device, channels
        self.metrics = list(cfg.eval.metrics)
        self.needs = needs(self.metrics)
        self._ready = False
        self._baselines: Dict[Tuple[str, int], Tuple[Optional[np.ndarray], Optional[np.ndarray]]] = {}

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        if self._ready:
            return
        from raygan.data.domains import load_domains, resolve_class
        from raygan.metrics import build_extractor, reference_stats

        d, e, t = self.cfg.data, self.cfg.eval, self.cfg.translate
        a, b = load_domains(d.name, domain_a=t.domain_a, domain_b=t.domain_b, root=d.root, split=e.reference_split,
                            resolution=d.resolution, channels=self.channels or d.channels, download=d.download)
        self.crops = d.crop is not None and self.cfg.translate.eval_size == "crop"
        self.test = {"a": a.images, "b": b.images}
        if self.crops:  # fixed centre crops of the training size: the same for every run
            from raygan.data.crops import center_crops

            self.test = {s: center_crops(x, d.crop) for s, x in self.test.items()}
        self.names = {"a": a.name, "b": b.name}
        self.extractor, self.refs, self.target_class = None, {}, {}
        if self.needs["features"] or self.needs["classify"]:
            weights = e.inception_weights if e.extractor == "inception" else None
            self.extractor = build_extractor(e.extractor, weights=weights, device=self.device)
        if self.needs["features"]:
            for s in ("a", "b"):
                name = f"{self.names[s]}:{e.reference_split}@{d.resolution}px{self.images_note()}"
                self.refs[s] = reference_stats(self.test[s], self.extractor, name, str(cache_root() / "refstats"),
                                               batch_size=e.batch_size)
        if self.needs["classify"]:  # the classifier's index of each domain's class
            self.target_class = {"a2b": resolve_class(d.name, t.domain_b), "b2a": resolve_class(d.name, t.domain_a)}
        self._ready = True

    # ------------------------------------------------------------------ one direction
    def _extract(self, images_uint8: torch.Tensor, direction: str
                 ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        if self.extractor is None:
            return None, None
        out = self.extractor(images_uint8)
        feats = out["features"] if self.needs["features"] else None
        correct = None
        if self.needs["classify"]:
            correct = (out["logits"].argmax(1) == self.target_class[direction]).float()
        return feats, correct

    @torch.no_grad()
    def _direction(self, net: nn.Module, direction: str, n: int) -> DirectionEvidence:
        from raygan.metrics import to_uint8

        rank, world, bs = dist.rank(), dist.world_size(), self.cfg.eval.batch_size
        src = self.test[SOURCE[direction]][:n]
        shard = math.ceil(n / world)
        lo, hi = min(rank * shard, n), min((rank + 1) * shard, n)
        idx = torch.arange(lo, hi)
        if idx.numel() < shard:  # pad the tail so every rank gathers the same shape; cut after
            idx = torch.cat([idx, torch.zeros(shard - idx.numel(), dtype=torch.int64)])
        parts: Dict[str, list] = {"features": [], "correct": [], "psnr": [], "ssim": []}
        for i in range(0, shard, bs):
            x8 = src[idx[i:i + bs]].to(self.device)
            x = x8.float().div(127.5).sub(1.0)
            y8 = to_uint8(net(x, direction))
            feats, correct = self._extract(y8, direction)
            if feats is not None:
                parts["features"].append(feats.to(self.device))
            if correct is not None:
                parts["correct"].append(correct.to(self.device))
            if self.needs["cycle"]:
                rec = to_uint8(net(y8.float().div(127.5).sub(1.0), OTHER[direction])).double().div(255)
                ref = x8.double().div(255)
                parts["psnr"].append(psnr(rec, ref, y_channel=True, quantised=True).to(self.device))
                parts["ssim"].append(ssim(rec, ref, y_channel=True).to(self.device))
        ev = DirectionEvidence()
        for key, attr in (("features", "features"), ("correct", "correct"), ("psnr", "cycle_psnr"),
                          ("ssim", "cycle_ssim")):
            if parts[key]:
                t = torch.cat(parts[key])
                if world > 1:
                    t = dist.all_gather_cat(t)
                arr = t[:n].cpu().numpy()
                setattr(ev, attr, arr.astype(bool) if key == "correct" else arr)
        if self.needs["features"]:
            ref = self.refs["b" if direction == "a2b" else "a"]
            ev.ref_mu, ev.ref_sigma = ref.mu, ref.sigma
        return ev

    def _baseline(self, direction: str, n: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """Features and classifier hits of the untranslated input (rank 0 only; cached)."""
        key = (direction, n)
        if key not in self._baselines:
            feats, correct = [], []
            src = self.test[SOURCE[direction]][:n]
            for i in range(0, n, self.cfg.eval.batch_size):
                f, c = self._extract(src[i:i + self.cfg.eval.batch_size].to(self.device), direction)
                if f is not None:
                    feats.append(f.cpu())
                if c is not None:
                    correct.append(c.cpu())
            self._baselines[key] = (torch.cat(feats).numpy() if feats else None,
                                    torch.cat(correct).numpy().astype(bool) if correct else None)
        return self._baselines[key]

    # ------------------------------------------------------------------ entry
    @torch.no_grad()
    def __call__(self, network: nn.Module, num_samples: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
        self._setup()
        n = {s: min(int(num_samples), len(self.test[s])) for s in ("a", "b")}
        was_training = network.training
        network.eval()
        try:
            evidence = {d: self._direction(network, d, n[SOURCE[d]]) for d in self.needs["directions"]}
        finally:
            network.train(was_training)
        values = None
        if dist.rank() == 0:
            for d, ev in evidence.items():
                ev.baseline_features, ev.baseline_correct = self._baseline(d, n[SOURCE[d]])
            values = compute(self.metrics, evidence)
        values = dist.broadcast_object(values)
        return values, self.protocol(n)

    def images_note(self) -> str:
        """How the test images were scored, for a patch-trained run: whole, or fixed centre crops."""
        d = self.cfg.data
        if d.crop is None:
            return ""
        return f" (centre {d.crop}px crops)" if self.crops else " (full-size)"

    def protocol(self, n: Dict[str, int]) -> Dict[str, Any]:
        d, e = self.cfg.data, self.cfg.eval
        p: Dict[str, Any] = {
            "task": "translate", "version": PROTOCOL_VERSION, "split": e.reference_split,
            "num_samples_a": n["a"], "num_samples_b": n["b"],
            "domain_a": self.names["a"], "domain_b": self.names["b"], "resolution": d.resolution,
            "output": "rounded to uint8",
            **({"images": self.images_note().strip(" ()")} if d.crop is not None else {}),
            "baseline": "baseline_*: the untranslated test input scored the same way",
        }
        if self.extractor is not None:
            p.update(extractor=self.extractor.name, weights_hash=self.extractor.weights_hash,
                     resize=self.extractor.resize)
        for s, ref in self.refs.items():
            p[f"reference_{s}"] = ref.protocol.reference
            p[f"reference_count_{s}"] = ref.protocol.reference_count
            p[f"reference_hash_{s}"] = ref.protocol.reference_hash
        if self.target_class:
            p["target_class"] = dict(self.target_class)
        if self.needs["cycle"]:
            p["cycle"] = restoration_protocol(self.channels or int(self.test["a"].shape[1]))
        return p


__all__ = ["TranslateEvaluator", "DIRECTIONS"]
