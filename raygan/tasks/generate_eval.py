"""The generation task's metrics (FID, KID, IS, PR, DC) with their protocol, sharded across ranks.

Each rank generates and extracts its share of the samples with its own seeded generator
(never the training RNG), features are gathered, rank 0 computes, every rank gets the
values. Reference statistics are computed once and cached on disk keyed by protocol.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import torch
from torch import nn

from raygan.engine import dist
from raygan.paths import cache_root

if TYPE_CHECKING:
    from raygan.config import Config


class Evaluator:
    def __init__(self, cfg: Config, device: torch.device, channels: Optional[int] = None):
        self.cfg = cfg
        self.device = device
        self.channels = channels
        self._extractor = None
        self._ref = None

    def _setup(self) -> None:
        if self._ref is not None:
            return
        from raygan.data import load_dataset
        from raygan.metrics import build_extractor, reference_stats

        e, d = self.cfg.eval, self.cfg.data
        weights = e.inception_weights if e.extractor == "inception" else None  # only Inception's
        self._extractor = build_extractor(e.extractor, weights=weights, device=self.device)
        ref = load_dataset(d.name, root=d.root, split=e.reference_split, resolution=d.resolution,
                           channels=self.channels or d.channels, download=d.download)
        name = f"{d.name}:{e.reference_split}@{d.resolution}px"
        self._ref = reference_stats(ref.images, self._extractor, name, str(cache_root() / "refstats"),
                                    batch_size=e.batch_size)

    @torch.no_grad()
    def __call__(self, G: nn.Module, num_samples: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
        from raygan.metrics import Protocol, compute_metrics, generate_features

        self._setup()
        e = self.cfg.eval
        rank, world = dist.rank(), dist.world_size()
        shard = math.ceil(num_samples / world)
        gen = torch.Generator(device=self.device).manual_seed(e.seed + 7919 * rank)
        num_classes = getattr(G, "num_classes", 0)
        z_dim = G.z_dim

        def sample_fn(n: int) -> torch.Tensor:
            z = torch.randn(n, z_dim, device=self.device, generator=gen)
            y = torch.randint(0, num_classes, (n,), device=self.device, generator=gen) if num_classes else None
            return G(z, y).float()

        was_training = G.training
        G.eval()  # BN running statistics, and no update of them
        try:
            feats, logits = generate_features(sample_fn, shard, self._extractor, e.batch_size)
        finally:
            G.train(was_training)
        if world > 1:
            feats = dist.all_gather_cat(feats.to(self.device)).cpu()[:num_samples]
            logits = dist.all_gather_cat(logits.to(self.device)).cpu()[:num_samples]
        values = compute_metrics(feats, logits, self._ref, list(e.metrics)) if rank == 0 else None
        values = dist.broadcast_object(values)
        protocol = Protocol(**{**self._ref.protocol.as_dict(), "num_samples": num_samples}).as_dict()
        return values, protocol
