"""Sample-quality metrics (torch/numpy only): FID, KID, IS, precision/recall, density/coverage.

    from raygan.metrics import evaluate
    values, protocol = evaluate(sample_fn, ref_images, "fashion-mnist:test", metrics=["fid", "kid"])

Lower layers: `feature_stats` / `FeatureStats` (float64 moments, all-reducible),
`frechet_distance` (eigh-based, no scipy), `kid`, `inception_score`, `precision_recall`,
`density_coverage`; extractors by name through `build_extractor` / `EXTRACTORS`.
"""
from raygan.metrics.extractors import EXTRACTORS, Extractor, build_extractor
from raygan.metrics.frechet import frechet_distance
from raygan.metrics.inception_score import inception_score
from raygan.metrics.kid import kid
from raygan.metrics.prdc import density_coverage, precision_recall
from raygan.metrics.stats import FeatureStats, feature_stats
from raygan.metrics import restoration  # noqa: F401 (registers psnr, ssim, psnr_masked)
from raygan.metrics.evaluate import (  # noqa: E402 (after the pieces it builds on)
    METRICS,
    Protocol,
    ReferenceStats,
    compute_metrics,
    evaluate,
    generate_features,
    reference_stats,
    to_uint8,
)
from raygan.metrics import cas as _cas  # noqa: E402,F401  (registers cas, gan_test)
from raygan.metrics import translation  # noqa: E402,F401  (registers fid_a2b, fid_b2a, domain_acc, cycle_psnr)

__all__ = [
    "EXTRACTORS",
    "METRICS",
    "Extractor",
    "FeatureStats",
    "Protocol",
    "ReferenceStats",
    "build_extractor",
    "compute_metrics",
    "density_coverage",
    "evaluate",
    "feature_stats",
    "frechet_distance",
    "generate_features",
    "inception_score",
    "kid",
    "precision_recall",
    "reference_stats",
    "to_uint8",
]
