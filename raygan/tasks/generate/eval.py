"""The generation task's metrics with their protocol: feature metrics (FID, KID, IS, PR, DC),
sharded across ranks, and classifier metrics (CAS, GAN-test) of a conditional G.

Feature metrics: each rank generates and extracts its share of the samples with its own seeded
generator (never the training RNG), features are gathered, rank 0 computes, every rank gets
the values. Reference statistics are computed once and cached on disk keyed by protocol.

Classifier metrics (raygan.metrics.cas, one recipe): rank 0 trains the recipe on the run's own
training set (the K-per-class subset when `data.per_class` is set, checked against the subset
the model recorded) and tests on the real test split (`real_acc`, once per evaluator), scores
the generated images with it (`gan_test`), and trains it on `num_samples` generated images with
balanced labels (`cas`); every rank gets the values. All draws come from forks seeded with
`eval.seed`. Built from the config and the model spec alone, so `raygan eval` judges a loaded G
exactly as training did.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import torch
from torch import nn

from raygan.engine import dist
from raygan.errors import ConfigError
from raygan.paths import cache_root

if TYPE_CHECKING:
    from raygan.config import Config


_WARNED = set()
#: the data an extractor's features were learnt on (None: general-purpose, e.g. Inception)
EXTRACTOR_DOMAIN = {"fmnist-cnn": "fashion-mnist"}


def domain_mismatch(cfg) -> Optional[str]:
    """A plain warning when the extractor was trained on other data than the run's (e.g. digits
    judged by the Fashion-MNIST CNN): its FID is then only comparable between runs on that data,
    and precision/density may sit near 0 for any generator. Said once per process, and kept in
    the protocol."""
    domain = EXTRACTOR_DOMAIN.get(cfg.eval.extractor)
    if domain is None or cfg.data.name == domain:
        return None
    text = (f"{cfg.eval.extractor} features were learnt on {domain}, not {cfg.data.name}: its FID here is only "
            f"comparable between {cfg.data.name} runs, and precision/density can be near 0 for any generator")
    if text not in _WARNED and dist.rank() == 0:
        import sys

        print(f"raygan: warning: {text}", file=sys.stderr, flush=True)
        _WARNED.add(text)
    return text


class Evaluator:
    def __init__(self, cfg: Config, device: torch.device, channels: Optional[int] = None,
                 model_spec: Optional[Dict[str, Any]] = None, recipe: Any = None):
        from raygan.metrics.registry import of_kind

        self.cfg = cfg
        self.device = device
        self.channels = channels
        self.model_spec = dict(model_spec or {})
        self._extractor = None
        self._ref = None
        metrics = list(cfg.eval.metrics)
        self.feature_metrics = of_kind(metrics, "features")
        classifier = of_kind(metrics, "classifier")
        self.classifier = ClassifierScores(cfg, device, channels, self.model_spec, classifier, recipe) \
            if classifier else None

    def _setup(self) -> None:
        if self._ref is not None:
            return
        from raygan.data.streamed import load_training_data
        from raygan.metrics import build_extractor, reference_stats

        e, d = self.cfg.eval, self.cfg.data
        weights = e.inception_weights if e.extractor == "inception" else None  # only Inception's
        self._extractor = build_extractor(e.extractor, weights=weights, device=self.device)
        # a large prepared reference streams as training does: one batch of it in memory at a time
        ref = load_training_data(d.name, root=d.root, split=e.reference_split, resolution=d.resolution,
                                 channels=self.channels or d.channels, download=d.download)
        name = f"{d.name}:{e.reference_split}@{d.resolution}px"
        try:
            self._ref = reference_stats(ref.images, self._extractor, name, str(cache_root() / "refstats"),
                                        batch_size=e.batch_size)
        finally:
            getattr(ref, "close", lambda: None)()

    def __call__(self, G: nn.Module, num_samples: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
        values: Dict[str, float] = {}
        protocol: Dict[str, Any] = {}
        if self.feature_metrics or self.classifier is None:
            values, protocol = self._features(G, num_samples)
        if self.classifier is not None:
            v, p = self.classifier(G, num_samples)
            values.update(v)
            protocol.update(p)
        subset = self.model_spec.get("train_subset")
        if subset:  # which training images the judged G learnt from
            protocol.update({f"train_{k}": v for k, v in subset.items()})
        return values, protocol

    @torch.no_grad()
    def _features(self, G: nn.Module, num_samples: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
        from raygan.metrics import Protocol, compute_metrics, generate_features
        from raygan.metrics.evaluate import is_knn, knn_counts

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
        knn = self.knn_samples()
        values = compute_metrics(feats, logits, self._ref, self.feature_metrics, knn) if rank == 0 else None
        values = dist.broadcast_object(values)
        protocol = Protocol(**{**self._ref.protocol.as_dict(), "num_samples": num_samples}).as_dict()
        mismatch = domain_mismatch(self.cfg)
        if mismatch:
            protocol["domain_warning"] = mismatch
        if any(is_knn(m) for m in self.feature_metrics):
            protocol["knn_fake_count"], protocol["knn_real_count"] = knn_counts(num_samples, self._ref.count, knn)
        return values, protocol

    def knn_samples(self) -> int:
        e = self.cfg.eval
        return e.knn_samples or min(e.num_samples, e.final_num_samples)


class ClassifierScores:
    """`cas`, `gan_test` (and `real_acc` beside them) of a conditional generator; see the module
    docstring. `recipe` defaults to raygan.metrics.classify.RECIPE (tests pass a shorter one)."""

    def __init__(self, cfg: Config, device: torch.device, channels: Optional[int], model_spec: Dict[str, Any],
                 metrics, recipe: Any = None):
        from raygan.metrics.classify import RECIPE, check_recipe
        from raygan.metrics.registry import check_kind

        self.cfg, self.device, self.channels = cfg, device, channels
        self.model_spec = model_spec
        self.metrics = list(metrics)
        self.fns = [check_kind(m, "classifier") for m in self.metrics]
        self.recipe = check_recipe(recipe or RECIPE)
        self.seed = int(cfg.eval.seed)
        self._net = None
        self._real_acc = 0.0
        self._protocol: Dict[str, Any] = {}

    def _setup(self) -> None:
        """Real training set (the run's own, subset included) and test split; the real-data
        classifier, trained once."""
        if self._net is not None:
            return
        from raygan.data import load_dataset
        from raygan.data.subsets import per_class_indices, subset_protocol
        from raygan.metrics.classify import accuracy, describe_recipe, train_classifier

        d = self.cfg.data
        kw = dict(root=d.root, resolution=d.resolution, channels=self.channels or d.channels, download=d.download)
        train = load_dataset(d.name, split="train", limit=d.limit, **kw)
        test = load_dataset(d.name, split="test", **kw)
        self.num_classes = int(self.model_spec.get("num_classes") or train.num_classes)
        if self.num_classes < 2 or self.num_classes != train.num_classes:
            raise ConfigError(f"classifier metrics need a conditional generator over the {train.num_classes} "
                              f"classes of {d.name}; this one has {self.num_classes}")
        images, labels, train_name = train.images, train.labels, f"{d.name}:train"
        if d.limit:
            train_name += f"[:{d.limit}]"
        if d.per_class is not None:  # the classifier learns from what the GAN learnt from, nothing else
            idx = per_class_indices(labels, d.per_class, d.subset_seed, train.num_classes)
            sub = subset_protocol(idx, d.per_class, d.subset_seed)
            recorded = (self.model_spec.get("train_subset") or {}).get("subset_hash")
            if recorded is not None and recorded != sub["subset_hash"]:
                raise ConfigError(f"the model was trained on subset {recorded}, but data.per_class={d.per_class}, "
                                  f"data.subset_seed={d.subset_seed} picks {sub['subset_hash']} here")
            images, labels = images[idx], labels[idx]
            train_name += f" per_class={d.per_class} subset_seed={d.subset_seed} ({sub['subset_hash']})"
        self.train = (images.to(self.device), labels.to(self.device))
        self.test = (test.images.to(self.device), test.labels.to(self.device))
        self._net = train_classifier(*self.train, self.num_classes, self.recipe, self.seed, device=self.device)
        self._real_acc = accuracy(self._net, *self.test)
        self._protocol = {**describe_recipe(self.recipe, self.seed), "clf_train": train_name,
                          "clf_train_count": int(images.shape[0]), "clf_test": f"{d.name}:test",
                          "clf_test_count": int(test.images.shape[0]), "clf_labels": "balanced"}

    def __call__(self, G: nn.Module, num_samples: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
        out = None
        if dist.rank() == 0:  # one classifier per evaluation: rank 0 trains it, every rank gets the values
            out = self._compute(G, num_samples)
        return dist.broadcast_object(out)

    def _compute(self, G: nn.Module, num_samples: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
        from raygan.metrics import to_uint8
        from raygan.metrics.cas import ClassifierEvidence

        classes = int(self.model_spec.get("num_classes") or getattr(G, "num_classes", 0) or 0)
        if num_samples < classes:
            raise ConfigError(f"cas/gan_test need at least one generated image per class ({classes}), "
                              f"got {num_samples} samples")
        self._setup()
        dev, z_dim = self.device, G.z_dim

        @torch.no_grad()
        def sample(labels: torch.Tensor) -> torch.Tensor:  # latents from the seeded fork of cas.generate
            return to_uint8(G(torch.randn(labels.shape[0], z_dim, device=dev), labels.to(dev)).float())

        values: Dict[str, float] = {}
        was_training = G.training
        G.eval()
        try:
            ev = ClassifierEvidence(sample, self.num_classes, num_samples, self.test, self._net, self.recipe,
                                    self.seed, dev)
            for fn in self.fns:  # each registered classifier metric (kind "classifier": fn(evidence))
                values.update(fn(ev))
        finally:
            G.train(was_training)
        values["real_acc"] = self._real_acc
        return values, {**self._protocol, "clf_num_samples": int(num_samples)}
