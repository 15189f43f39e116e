"""KID, Inception Score, precision/recall, density/coverage, and the evaluation protocol."""
import math

import numpy as np
import pytest
import torch

import raygan.metrics.prdc as prdc
from raygan.errors import ConfigError
from raygan.metrics import (
    METRICS,
    build_extractor,
    compute_metrics,
    density_coverage,
    evaluate,
    generate_features,
    inception_score,
    kid,
    precision_recall,
    reference_stats,
    to_uint8,
)
from raygan.metrics.kid import mmd2_cubic


def col(*v):
    return np.array(v, dtype=np.float64).reshape(-1, 1)


# ---------------------------------------------------------------------------- KID
def test_kid_tiny_case_by_hand():
    # d = 1, k(a, b) = (a b + 1)^3; x = {0, 1}, y = {1, 2}, m = 2
    # off-diagonal k(x): 2 * k(0,1) = 2;  off-diagonal k(y): 2 * k(1,2) = 2 * 27 = 54
    # cross: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37
    # MMD² = (2 + 54) / (2 * 1) - 2 * 37 / 4 = 28 - 18.5 = 9.5
    mean, std = kid(col(0, 1), col(1, 2), num_subsets=5, subset_size=10)
    assert mean == pytest.approx(9.5, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)  # every subset is the whole set (clipped to N=2)


def test_kid_matches_direct_loop():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3)) + 0.3

    def k(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b)) / 3 + 1) ** 3

    m = 6
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    expected = (sxx + syy) / (m * (m - 1)) - 2 * sxy / (m * m)
    assert mmd2_cubic(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected, rel=1e-12)
    assert kid(x, y, num_subsets=3)[0] == pytest.approx(expected, rel=1e-12)


def test_kid_same_vs_shifted_distribution():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((600, 16))
    same = rng.standard_normal((600, 16))
    shifted = rng.standard_normal((600, 16)) + 1.0
    m_same, s_same = kid(real, same, num_subsets=20, subset_size=300)
    m_shift, _ = kid(real, shifted, num_subsets=20, subset_size=300)
    assert abs(m_same) < 0.05 and s_same > 0
    assert m_shift > 1.0 and m_shift > 50 * abs(m_same)
    # the seed makes it reproducible
    assert kid(real, shifted, num_subsets=5, subset_size=100, seed=3) == kid(real, shifted, num_subsets=5, subset_size=100, seed=3)


# ---------------------------------------------------------------------------- IS
def test_is_uniform_is_one():
    mean, std = inception_score(torch.zeros(100, 1008), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_is_confident_balanced_is_k():
    k = 7
    labels = torch.arange(140) % k  # every split of 14 rows holds each class twice
    logits = torch.nn.functional.one_hot(labels, k).double() * 1e4
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)


def test_is_by_hand():
    # p1 = (1, 0), p2 = (1/2, 1/2) -> p(y) = (3/4, 1/4)
    # KL1 = log(4/3); KL2 = 1/2 log(2/3) + 1/2 log(2); IS = exp((KL1 + KL2) / 2)
    logits = torch.tensor([[1e4, 0.0], [0.0, 0.0]])
    expected = math.exp((math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2)) / 2)
    assert inception_score(logits, splits=1)[0] == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------- PR / DC
def test_pr_dc_identical_sets():
    x = np.random.default_rng(2).standard_normal((300, 8))
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert density_coverage(x, x, k=5)[1] == 1.0


def test_pr_dc_disjoint_sets():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 1000
    assert precision_recall(real, fake) == (0.0, 0.0)
    assert density_coverage(real, fake) == (0.0, 0.0)


def test_precision_recall_by_hand():
    # k = 1. Real 0,1,2,3,10 -> radii 1,1,1,1,7. Fake 0.5,2.5,2.6,5,30,31 -> radii 2,.1,.1,2.4,1,1.
    # precision: 0.5, 2.5, 2.6 in unit balls; 5 in B(10, 7); 30, 31 in none -> 4/6
    # recall: 0, 1, 2 in B(0.5, 2); 3 in B(5, 2.4); 10 in none -> 4/5
    p, r = precision_recall(col(0, 1, 2, 3, 10), col(0.5, 2.5, 2.6, 5, 30, 31), k=1)
    assert p == pytest.approx(4 / 6) and r == pytest.approx(4 / 5)


def test_density_coverage_by_hand():
    # k = 1. Real 0,1,10,11 -> radii 1. Fake 0.5 in B(0),B(1); 0.2 in B(0),B(1); 5 in none.
    # density = 4 / (1 * 3); coverage: balls of 0 and 1 hold a fake, 10 and 11 do not -> 1/2
    d, c = density_coverage(col(0, 1, 10, 11), col(0.5, 0.2, 5), k=1)
    assert d == pytest.approx(4 / 3) and c == pytest.approx(0.5)


def test_pr_dc_2d_grid_by_hand():
    # real: unit grid 3x3 -> every k=1 radius is 1. fake: (0.5, 0) is in B((0,0)) and B((1,0));
    # (1, 1) is a grid point: in its own ball and the 4 neighbours' balls (distance 1 <= 1);
    # (5, 5) in none.
    real = np.array([(i, j) for i in range(3) for j in range(3)], dtype=np.float64)
    fake = np.array([(0.5, 0.0), (1.0, 1.0), (5.0, 5.0)])
    d, c = density_coverage(real, fake, k=1)
    assert d == pytest.approx((2 + 5) / 3)
    assert c == pytest.approx(6 / 9)  # covered: (0,0),(1,0),(1,1),(0,1),(2,1),(1,2)
    p, _ = precision_recall(real, fake, k=1)
    assert p == pytest.approx(2 / 3)


def test_prdc_chunking_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(4)
    real, fake = rng.standard_normal((150, 5)), rng.standard_normal((120, 5)) * 1.3
    full = precision_recall(real, fake), density_coverage(real, fake)
    monkeypatch.setattr(prdc, "CHUNK", 7)
    assert (precision_recall(real, fake), density_coverage(real, fake)) == full


# ---------------------------------------------------------------------------- protocol
@pytest.fixture(scope="module")
def fmnist():
    from raygan.metrics.extractors.fmnist_cnn import load_fashion_mnist

    test_x, _ = load_fashion_mnist("test")
    train_x, _ = load_fashion_mnist("train")
    return test_x[:1000], train_x[:1000]


def _sampler(images):
    state = {"i": 0}

    def sample(n):  # real images as a "generator": uint8 -> [-1, 1]
        out = images[state["i"] : state["i"] + n].float() / 127.5 - 1
        state["i"] += n
        return out

    return sample


def _sampler_float(x):
    state = {"i": 0}

    def sample(n):
        out = x[state["i"] : state["i"] + n]
        state["i"] += n
        return out

    return sample


def test_to_uint8_rounds():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.0039, 1.0, 1.5])
    assert to_uint8(x).tolist() == [0, 0, 128, 128, 255, 255]  # 127.5 -> 128 (round half to even: 128)
    imgs = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(to_uint8(imgs.float() / 127.5 - 1), imgs)


def test_reference_cache_roundtrip(tmp_path, fmnist):
    ref_x, _ = fmnist
    ext = build_extractor("fmnist-cnn")
    first = reference_stats(ref_x[:300], ext, "fashion-mnist:test", str(tmp_path), batch_size=128)
    assert not first.from_cache and first.path and (tmp_path / first.path.split("/")[-1]).exists()
    second = reference_stats(ref_x[:300], ext, "fashion-mnist:test", str(tmp_path))
    assert second.from_cache and second.path == first.path
    np.testing.assert_array_equal(first.mu, second.mu)
    np.testing.assert_array_equal(first.sigma, second.sigma)
    np.testing.assert_array_equal(first.features, second.features)
    # another count is another protocol -> another file
    third = reference_stats(ref_x[:200], ext, "fashion-mnist:test", str(tmp_path))
    assert not third.from_cache and third.path != first.path


def test_fid_real_vs_real_small_noise_large(tmp_path, fmnist):
    ref_x, other_x = fmnist
    gen = torch.Generator().manual_seed(0)
    real_vals, proto = evaluate(
        _sampler(other_x), ref_x, "fashion-mnist:test[:1000]", metrics=["fid", "kid", "is", "pr", "dc"],
        num_samples=1000, batch_size=250, cache_dir=str(tmp_path),
    )
    noise_vals, proto2 = evaluate(
        lambda n: torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1, ref_x, "fashion-mnist:test[:1000]",
        metrics=["fid", "kid", "pr", "dc"], num_samples=500, batch_size=250, cache_dir=str(tmp_path),
    )
    assert set(real_vals) == {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage"}
    assert real_vals["fid"] < 0.1 * noise_vals["fid"]
    assert real_vals["kid"] < 0.05 * noise_vals["kid"]
    assert real_vals["precision"] > 0.6 and real_vals["recall"] > 0.6 and real_vals["coverage"] > 0.8
    assert noise_vals["precision"] < 0.05 and noise_vals["coverage"] < 0.05
    assert 5.0 < real_vals["is"] <= 10.0  # 10 classes, confident classifier, balanced data
    assert set(proto) >= {"extractor", "weights_hash", "num_samples", "reference", "reference_count", "resize"}
    assert proto["extractor"] == "fmnist-cnn" and proto["num_samples"] == 1000 and proto2["num_samples"] == 500
    assert proto["reference"] == "fashion-mnist:test[:1000]" and proto["reference_count"] == 1000
    assert proto["resize"] == build_extractor("fmnist-cnn").resize and len(proto["weights_hash"]) == 64


def test_protocol_keys():
    from raygan.metrics import Protocol

    p = Protocol("fmnist-cnn", "ab" * 32, 5000, "fashion-mnist:test", 10000, "gray-crop28|bilinear28", "f00d")
    assert p.key() == Protocol(**p.as_dict()).key() and len(p.key()) == 16
    q = Protocol(**{**p.as_dict(), "num_samples": 10000})
    assert q.key() != p.key() and q.reference_key() == p.reference_key()
    r = Protocol(**{**p.as_dict(), "weights_hash": "random"})
    assert r.reference_key() != p.reference_key()


def test_compute_metrics_unknown_name_and_registry():
    assert {"dc", "fid", "is", "kid", "pr"} <= set(METRICS.names())  # the feature metrics (tasks add theirs)
    with pytest.raises(ConfigError, match="unknown metric 'fld'"):
        compute_metrics(np.zeros((4, 2)), None, None, ["fid", "fld"])


def test_generate_features_rounds_before_extracting():
    ext = build_extractor("fmnist-cnn")
    x = torch.rand(10, 1, 32, 32) * 2 - 1
    feats, logits = generate_features(_sampler_float(x), 10, ext, batch_size=4)  # batches 4, 4, 2
    direct = ext(to_uint8(x))
    assert feats.shape == (10, 128) and logits.shape == (10, 10)
    torch.testing.assert_close(feats, direct["features"])


def test_knn_metrics_ignore_a_constant_shift_of_the_features():
    """Audit defect 6: distances in float64 on centred features; a shift of 1e4 (features far from
    the origin) used to lose the small distances to float32 cancellation."""
    from raygan.metrics import density_coverage, precision_recall

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(400, 16, generator=g), torch.randn(300, 16, generator=g) * 1.2 + 0.3
    base = precision_recall(real, fake), density_coverage(real, fake)
    shifted = precision_recall(real + 1e4, fake + 1e4), density_coverage(real + 1e4, fake + 1e4)
    assert base == shifted
    assert 0 < base[0][0] < 1 and 0 < base[1][1] < 1  # a non-trivial case


def test_knn_metrics_compare_the_same_counts_at_ticks_and_at_the_end():
    """Audit defect 6: pr/dc use `eval.knn_samples` fakes and reals (default: the tick count), so a
    tick's value and the final one are made the same way; both counts are in the protocol."""
    from raygan.metrics import precision_recall
    from raygan.metrics.evaluate import ReferenceStats, compute_metrics, knn_counts

    g = torch.Generator().manual_seed(1)
    ref_feats = torch.randn(500, 8, generator=g).numpy()
    fake = torch.randn(300, 8, generator=g)
    ref = ReferenceStats(ref_feats.mean(0), np.cov(ref_feats, rowvar=False), ref_feats,
                         np.zeros((500, 10), np.float32), None)
    out = compute_metrics(fake, None, ref, ["pr"], knn_samples=200)
    assert (out["precision"], out["recall"]) == precision_recall(ref_feats[:200], fake[:200])
    assert knn_counts(300, 500, 200) == (200, 200) and knn_counts(100, 500, 200) == (100, 100)
    assert knn_counts(300, 150, None) == (300, 150)
