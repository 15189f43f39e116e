"""The evaluation protocol: generate -> round to uint8 -> extract -> compare with a cached reference.

Every number is reported with its `Protocol` (extractor, weights hash, generated sample count,
reference name, count and content hash, input transform), and reference statistics are cached
on disk under a key made of exactly those fields, so a number is only ever compared with a
number made the same way. The reference images must be in the same format the generator
produces (e.g. both 32x32 padded), since the extractor's transform is applied to both alike.

Metric names (`METRICS`): fid, kid (-> kid, kid_std), is (-> is, is_std),
pr (-> precision, recall), dc (-> density, coverage).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from raygan.errors import ConfigError
from raygan.metrics.extractors import Extractor, build_extractor
from raygan.metrics.frechet import frechet_distance
from raygan.metrics.inception_score import inception_score
from raygan.metrics.kid import kid
from raygan.metrics.prdc import density_coverage, precision_recall
from raygan.metrics.stats import FeatureStats, feature_stats
from raygan.metrics.registry import METRICS, check_kind

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Protocol:
    """How a metric value was made; logged beside it and used as the reference cache key."""

    extractor: str
    weights_hash: str
    num_samples: int
    reference: str
    reference_count: int
    resize: str
    reference_hash: str = ""  # sha256 (16 hex) of the reference uint8 bytes
    version: int = PROTOCOL_VERSION

    def as_dict(self) -> Dict[str, Union[str, int]]:
        return asdict(self)

    def key(self) -> str:
        """Stable hash of every field (16 hex)."""
        return _hash_json(self.as_dict())

    def reference_key(self) -> str:
        """Stable hash of the fields that define the reference statistics (not num_samples)."""
        d = self.as_dict()
        d.pop("num_samples")
        return _hash_json(d)


def _hash_json(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def images_hash(images: torch.Tensor, chunk: int = 1000) -> str:
    """sha256 (16 hex) of a uint8 image tensor's shape and bytes. `images` may also be a view that
    reads rows on demand (a streamed prepared dataset's `images`: `.shape` and slicing): it is
    hashed `chunk` images at a time, to the same value as the whole tensor."""
    shape = tuple(int(n) for n in images.shape)
    h = hashlib.sha256(str(shape).encode())
    for i in range(0, shape[0], chunk):
        h.update(np.ascontiguousarray(images[i: i + chunk].detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


class ReferenceStats:
    """Reference features with their moments: `mu`, `sigma` (float64), `features` (N, D) float32,
    `logits` (N, K) float32, `protocol` (a Protocol with num_samples=0), `path` of the cache file
    and `from_cache`."""

    def __init__(self, mu, sigma, features, logits, protocol: Protocol, path: Optional[str] = None, from_cache=False):
        self.mu, self.sigma = mu, sigma
        self.features, self.logits = features, logits
        self.protocol, self.path, self.from_cache = protocol, path, from_cache

    @property
    def count(self) -> int:
        return int(self.features.shape[0])

    def mu_sigma(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.mu, self.sigma

    def __repr__(self) -> str:
        return f"ReferenceStats({self.protocol.reference}, n={self.count}, d={self.features.shape[1]}, cached={self.from_cache})"


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8, rounded (as a saved PNG would hold it)."""
    return ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def extract(images_uint8: torch.Tensor, extractor: Extractor, batch_size: int = 500) -> Tuple[FeatureStats, torch.Tensor]:
    """Run the extractor over uint8 images in batches -> (FeatureStats(keep=True), logits (N, K)).
    `images_uint8` may be a view that reads its rows on demand (only one batch is then in memory)."""
    stats = FeatureStats(keep=True)
    logits = []
    for i in range(0, images_uint8.shape[0], batch_size):
        out = extractor(images_uint8[i : i + batch_size])
        stats.update(out["features"])
        logits.append(out["logits"].cpu())
    return stats, torch.cat(logits)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def reference_stats(
    images_uint8: torch.Tensor,
    extractor: Extractor,
    ref_name: str,
    cache_dir: Optional[str] = None,
    batch_size: int = 500,
) -> ReferenceStats:
    """Features and moments of reference images, cached as .npz under cache_dir by protocol.
    `images_uint8`: a tensor, or a streamed prepared dataset's `images` (read a batch at a time)."""
    if images_uint8.dtype != torch.uint8:
        raise ValueError(f"reference images must be uint8, got {images_uint8.dtype}")
    proto = Protocol(
        extractor=extractor.name,
        weights_hash=extractor.weights_hash,
        num_samples=0,
        reference=ref_name,
        reference_count=int(images_uint8.shape[0]),
        resize=extractor.resize,
        reference_hash=images_hash(images_uint8),
    )
    path = None
    if cache_dir:
        path = os.path.join(cache_dir, f"ref-{_safe(ref_name)}-{_safe(extractor.name)}-{proto.reference_key()}.npz")
        if os.path.isfile(path):
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["protocol"])) == proto.as_dict():
                    return ReferenceStats(z["mu"], z["sigma"], z["features"], z["logits"], proto, path, True)
    stats, logits = extract(images_uint8, extractor, batch_size)
    feats = stats.features.numpy()
    mu, sigma = stats.mu_sigma()
    ref = ReferenceStats(mu, sigma, feats, logits.numpy(), proto, path, False)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path[: -len(".npz")] + f".tmp{os.getpid()}.npz"
        np.savez(tmp, mu=mu, sigma=sigma, features=feats, logits=ref.logits, protocol=json.dumps(proto.as_dict()))
        os.replace(tmp, path)
    return ref


# ---------------------------------------------------------------------------- metrics
@METRICS.register("fid", kind="features", keys={"fid": "min"}, min_samples=10)
def _fid(fake_feats: np.ndarray, fake_logits: np.ndarray, ref: ReferenceStats) -> Dict[str, float]:
    mu, sigma = feature_stats(fake_feats)
    return {"fid": frechet_distance(mu, sigma, ref.mu, ref.sigma)}


GENERATED = ("generate", "repair")  # tasks that compute the feature metrics beyond fid (translate: fid only)


@METRICS.register("kid", kind="features", keys={"kid": "min", "kid_std": None}, min_samples=10, tasks=GENERATED)
def _kid(fake_feats, fake_logits, ref) -> Dict[str, float]:
    mean, std = kid(ref.features, fake_feats)
    return {"kid": mean, "kid_std": std}


@METRICS.register("is", kind="features", keys={"is": "max", "is_std": None}, min_samples=10, tasks=GENERATED)
def _is(fake_feats, fake_logits, ref) -> Dict[str, float]:
    mean, std = inception_score(fake_logits)
    return {"is": mean, "is_std": std}


@METRICS.register("pr", kind="features", keys={"precision": "max", "recall": "max"}, min_samples=10,
                  tasks=GENERATED, knn=True)
def _pr(fake_feats, fake_logits, ref) -> Dict[str, float]:
    p, r = precision_recall(ref.features, fake_feats, k=3)
    return {"precision": p, "recall": r}


@METRICS.register("dc", kind="features", keys={"density": "max", "coverage": "max"}, min_samples=10,
                  tasks=GENERATED, knn=True)
def _dc(fake_feats, fake_logits, ref) -> Dict[str, float]:
    d, c = density_coverage(ref.features, fake_feats, k=5)
    return {"density": d, "coverage": c}


def is_knn(name: str) -> bool:
    """Whether a feature metric's value depends on how many fakes and reals it compares (pr, dc)."""
    return bool(METRICS.meta(name).get("knn"))


def knn_counts(num_fake: int, num_real: int, knn_samples: Optional[int]) -> Tuple[int, int]:
    """(fakes, reals) the k-NN metrics compare: `knn_samples` of each, capped by what there is."""
    n = min(knn_samples or num_fake, num_fake)
    return n, min(n, num_real)


def compute_metrics(fake_feats, fake_logits, ref: ReferenceStats, metrics: Iterable[str],
                    knn_samples: Optional[int] = None) -> Dict[str, float]:
    """Values of the named metrics of fake features/logits against the reference. The k-NN
    metrics use the first `knn_samples` fakes and reference images (see `knn_counts`)."""
    names = list(metrics)
    fns = [check_kind(name, "features") for name in names]  # unknown or other kind -> ConfigError before any work
    fake_feats = _np32(fake_feats)
    fake_logits = None if fake_logits is None else _np32(fake_logits)
    n_fake, n_real = knn_counts(len(fake_feats), ref.count, knn_samples)
    knn_ref = ReferenceStats(ref.mu, ref.sigma, ref.features[:n_real], ref.logits[:n_real], ref.protocol)
    out: Dict[str, float] = {}
    for name, fn in zip(names, fns):
        if is_knn(name):
            out.update(fn(fake_feats[:n_fake], None, knn_ref))
        else:
            out.update(fn(fake_feats, fake_logits, ref))
    return out


def _np32(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def generate_features(
    sample_fn: Callable[[int], torch.Tensor],
    num_samples: int,
    extractor: Extractor,
    batch_size: int = 500,
    device: Union[str, torch.device, None] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw num_samples from sample_fn(n) (float images in [-1, 1]), round to uint8, extract.

    Returns (features (N, D), logits (N, K)), float32 on CPU. `device`, when given, is where
    the extractor runs.
    """
    if device is not None:
        extractor = extractor.to(device)
    feats, logits = [], []
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        with torch.no_grad():
            x = sample_fn(n)
        if x.shape[0] != n:
            raise ValueError(f"sample_fn({n}) returned {x.shape[0]} images")
        out = extractor(to_uint8(x))
        feats.append(out["features"].cpu())
        logits.append(out["logits"].cpu())
        done += n
    return torch.cat(feats), torch.cat(logits)


def evaluate(
    sample_fn: Callable[[int], torch.Tensor],
    ref_images: torch.Tensor,
    ref_name: str,
    metrics: Sequence[str] = ("fid",),
    extractor: Union[str, Extractor] = "fmnist-cnn",
    num_samples: int = 5000,
    batch_size: int = 500,
    device: Union[str, torch.device] = "cpu",
    cache_dir: Optional[str] = None,
    weights: Optional[str] = None,
) -> Tuple[Dict[str, float], Dict[str, Union[str, int]]]:
    """Metrics of a generator against reference images -> (values, protocol dict)."""
    metrics = list(metrics)
    for name in metrics:
        check_kind(name, "features")
    if num_samples < 2:
        raise ConfigError(f"num_samples must be >= 2, got {num_samples}")
    ext = build_extractor(extractor, weights=weights, device=device) if isinstance(extractor, str) else extractor.to(device)
    ref = reference_stats(ref_images, ext, ref_name, cache_dir, batch_size)
    feats, logits = generate_features(sample_fn, num_samples, ext, batch_size)
    values = compute_metrics(feats, logits, ref, metrics)
    proto = Protocol(**{**ref.protocol.as_dict(), "num_samples": num_samples})
    return values, proto.as_dict()
