"""Fréchet distance: closed forms, invariances, a scipy sqrtm reference, and the accumulators."""
import numpy as np
import pytest
import torch

from raygan.metrics import FeatureStats, feature_stats, frechet_distance


def _rand_cov(rng, d, n=None):
    a = rng.standard_normal((d, n or 2 * d))
    return a @ a.T / (n or 2 * d)


def _scipy_fd(mu1, s1, mu2, s2):
    """The classic formula (pytorch-fid style) with scipy.linalg.sqrtm, no `disp=`."""
    from scipy import linalg

    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_1d_closed_form():
    # N(1, 2^2) vs N(-2, 5^2): (1 - -2)^2 + (2 - 5)^2 = 18
    fd = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[25.0]]))
    assert fd == pytest.approx(18.0, abs=1e-12)


def test_diagonal_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_scaling_rotation_translation():
    rng = np.random.default_rng(1)
    d = 12
    x = rng.standard_normal((500, d)) @ rng.standard_normal((d, d))
    y = rng.standard_normal((400, d)) * 1.5 + 0.7
    base = frechet_distance(*feature_stats(x), *feature_stats(y))
    assert base > 1.0
    c = 3.0
    assert frechet_distance(*feature_stats(c * x), *feature_stats(c * y)) == pytest.approx(c * c * base, rel=1e-10)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))  # random orthogonal matrix
    assert frechet_distance(*feature_stats(x @ q), *feature_stats(y @ q)) == pytest.approx(base, rel=1e-10)
    t = rng.standard_normal(d) * 10
    assert frechet_distance(*feature_stats(x + t), *feature_stats(y + t)) == pytest.approx(base, rel=1e-9)


BACKENDS = [("numpy", "auto"), ("numpy", "eigh"), ("torch", "auto"), ("torch", "eigh")]


@pytest.mark.parametrize("backend,method", BACKENDS)
def test_self_distance_is_zero(backend, method):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 64)) @ rng.standard_normal((64, 64))
    mu, sigma = feature_stats(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma, backend=backend, method=method)) < 1e-8


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_singular_covariance_closed_form(backend):
    # S1 = B B^T of rank 10 in 64-d (Cholesky fails -> clipped eigh). The nonzero eigenvalues of
    # S1^½ S2 S1^½ are those of B^T S2 B (10 x 10), an independent route to the trace term.
    # Tolerance 1e-7: the 54 round-off eigenvalues (~1e-14) become ~1e-7 after the sqrt.
    rng = np.random.default_rng(3)
    b = rng.standard_normal((64, 10))
    s1, s2 = b @ b.T, _rand_cov(rng, 64)
    mu1, mu2 = rng.standard_normal(64), rng.standard_normal(64)
    tr_sqrt = np.sqrt(np.linalg.eigvalsh(b.T @ s2 @ b)).sum()
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2, backend=backend) == pytest.approx(expected, rel=1e-7)
    # fewer samples than dims on both sides: finite and positive
    x, y = rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) + 0.5
    assert 0 < frechet_distance(*feature_stats(x), *feature_stats(y), backend=backend) < np.inf


@pytest.mark.parametrize("backend,method", BACKENDS)
def test_matches_scipy_sqrtm(backend, method):
    rng = np.random.default_rng(4)
    d = 64
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.5
    s1, s2 = _rand_cov(rng, d), _rand_cov(rng, d) * 2
    ref = _scipy_fd(mu1, s1, mu2, s2)
    ours = frechet_distance(mu1, s1, mu2, s2, backend=backend, method=method)
    assert ours == pytest.approx(ref, rel=1e-6)
    # the Cholesky fast path and the eigh path agree far below the 1e-6 goal
    assert ours == pytest.approx(frechet_distance(mu1, s1, mu2, s2, method="eigh"), rel=1e-11)


def test_bad_arguments():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), method="sqrtm")


def test_feature_stats_unbiased():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 7))
    mu, sigma = feature_stats(torch.from_numpy(x).float())
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float32), rowvar=False), rtol=1e-5)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-6)


def test_feature_stats_accumulates_in_chunks():
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.standard_normal((1000, 32)) * 3 + 1)
    acc = FeatureStats()
    for chunk in torch.split(x, 137):
        acc.update(chunk)
    assert acc.n == 1000
    mu, sigma = acc.mu_sigma()
    mu_ref, sigma_ref = feature_stats(x)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-10, atol=1e-12)


def test_feature_stats_all_reduce_simulation():
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.standard_normal((600, 16))).float()
    rank0, rank1 = FeatureStats(keep=True), FeatureStats(keep=True)
    rank0.update(x[:250])
    rank1.update(x[250:])
    # what all_reduce(SUM) does to each rank's tensors, in place
    for t0, t1 in zip(rank0.tensors(), rank1.tensors()):
        total = t0 + t1
        t0.copy_(total)
        t1.copy_(total)
    whole = FeatureStats().update(x)
    for a, b in zip((rank0, rank1), (rank1, rank0)):
        np.testing.assert_allclose(a.mu_sigma()[1], whole.mu_sigma()[1], rtol=1e-12, atol=1e-14)
    assert rank0.n == 600
    rebuilt = FeatureStats.from_tensors(rank0.tensors())
    np.testing.assert_allclose(rebuilt.mu_sigma()[0], feature_stats(x)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rebuilt.mu_sigma()[1], feature_stats(x)[1], rtol=1e-9, atol=1e-12)
    assert torch.equal(rank0.features, x[:250])
    merged = FeatureStats(keep=True).merge(FeatureStats(keep=True).update(x[:250])).merge(
        FeatureStats(keep=True).update(x[250:])
    )
    assert torch.equal(merged.features, x)
    np.testing.assert_allclose(merged.mu_sigma()[1], whole.mu_sigma()[1], rtol=1e-12, atol=1e-14)
