"""coursekit.retrieval.whitening (stage 07) against numpy.linalg.eigh, the defining properties of
PCA-whitening (zero mean, identity covariance of the whitened training set) and of Lw (P S_w P^T = I,
P (X - m)(X - m)^T P^T diagonal), and the formulas of the shrunk covariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.retrieval import whitening as W


def correlated(count, size, seed=0):
    """Gaussian descriptors with very different variances along random directions, offset from 0."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(size, size)) * np.geomspace(5, 0.1, size)[:, None]
    return torch.from_numpy(rng.normal(size=(count, size)) @ mixing + rng.normal(size=size) * 3)


def raw(whitening, x):
    """The whitened vectors before the l2-normalisation: P (x - m), computed here in numpy."""
    return (x.numpy() - whitening.mean.numpy()) @ whitening.projection.numpy().T


def numpy_pca(x: np.ndarray):
    """Eigenvalues (descending) and eigenvectors (columns) of the 1/N covariance, by numpy."""
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred / len(x))
    return values[::-1], vectors[:, ::-1]


def assert_rows_equal_up_to_sign(a: np.ndarray, b: np.ndarray, rtol=1e-8):
    signs = np.sign((a * b).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(a, signs * b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("dim", [None, 8, 3])
def test_pca_whitened_training_set_has_zero_mean_and_identity_covariance(dim):
    x = correlated(500, 8, seed=1)
    w = W.pca_whitening(x, dim=dim)
    assert w.dim == (dim or 8) and w.projection.shape == (w.dim, 8)
    y = raw(w, x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(y.T @ y / len(y), np.eye(w.dim), atol=1e-10)
    # the call is that, l2-normalised with cirtorch's eps
    np.testing.assert_allclose(w(x).numpy(), y / (np.linalg.norm(y, axis=1, keepdims=True) + 1e-6), rtol=1e-12, atol=1e-13)


def test_pca_projection_and_eigenvalues_are_numpys():
    x = correlated(300, 6, seed=2)
    w = W.pca_whitening(x, dim=4)
    values, vectors = numpy_pca(x.numpy())
    np.testing.assert_allclose(w.eigenvalues.numpy(), values[:4], rtol=1e-10)
    np.testing.assert_allclose(w.mean.numpy(), x.numpy().mean(axis=0), rtol=1e-12)
    assert_rows_equal_up_to_sign(w.projection.numpy(), vectors[:, :4].T / np.sqrt(values[:4])[:, None])
    assert torch.all(w.eigenvalues[:-1] >= w.eigenvalues[1:])
    # the sign convention: each row's largest entry is positive
    rows = w.projection.numpy()
    assert np.all(rows[np.arange(4), np.abs(rows).argmax(axis=1)] > 0)


def test_pca_of_fewer_descriptors_than_dimensions_keeps_the_non_degenerate_directions():
    x = correlated(6, 10, seed=3)  # 6 points span 5 dimensions around their mean
    w = W.pca_whitening(x)
    assert w.dim == 5 and torch.isfinite(w.projection).all()
    y = raw(w, x)
    np.testing.assert_allclose(y.T @ y / len(y), np.eye(5), atol=1e-8)
    values, _ = numpy_pca(x.numpy())
    assert values[5] < 1e-12 * values[0]  # numpy agrees that the sixth is zero
    with pytest.raises(ValueError, match=r"dim=6 exceeds the rank 5 .* N=6 descriptors of D=10"):
        W.pca_whitening(x, dim=6)
    assert W.pca_whitening(x, dim=5).dim == 5


def test_shrinkage_shrinks_the_eigenvalues_towards_their_mean_and_keeps_the_eigenvectors():
    x = correlated(6, 10, seed=4)
    s = 0.25
    w = W.pca_whitening(x, shrinkage=s)
    assert w.dim == 10  # no eigenvalue is zero any more
    values, vectors = numpy_pca(x.numpy())
    shrunk = (1 - s) * values + s * values.sum() / 10
    np.testing.assert_allclose(w.eigenvalues.numpy(), shrunk, rtol=1e-9, atol=1e-12)
    assert_rows_equal_up_to_sign(w.projection.numpy()[:5], vectors[:, :5].T / np.sqrt(shrunk[:5])[:, None])


def test_a_whitening_is_applied_in_the_inputs_dtype_and_moves_between_devices():
    x = correlated(200, 5, seed=5)
    w = W.pca_whitening(x.float(), dim=3)
    assert w.mean.dtype == w.projection.dtype == torch.float64  # learned in float64
    out = w(x[:7].float())
    assert out.dtype == torch.float32 and out.shape == (7, 3)
    torch.testing.assert_close(out, w(x[:7]).float(), rtol=1e-5, atol=1e-6)
    assert w(x[:6].reshape(2, 3, 5)).shape == (2, 3, 3)  # any leading dimensions
    moved = w.to("meta")
    assert moved.projection.device.type == moved.mean.device.type == "meta" and moved.dim == 3
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., 5\); got \(7, 4\)"):
        w(torch.zeros(7, 4))


def matching_pairs(count, size, seed=0):
    """``count`` points of ``size`` dimensions, the first half queries whose positives (the second half)
    are noisy copies, the noise anisotropic so that S_w is far from a multiple of I."""
    rng = np.random.default_rng(seed)
    half = count // 2
    queries = rng.normal(size=(half, size)) * np.linspace(3, 1, size)
    noise = rng.normal(size=(half, size)) @ (rng.normal(size=(size, size)) * 0.3)
    x = np.concatenate([queries, queries + noise])
    return torch.from_numpy(x), torch.arange(half), torch.arange(half, 2 * half)


def test_learned_whitening_whitens_the_pairs_and_decorrelates_the_set():
    x, q, p = matching_pairs(400, 7, seed=6)
    w = W.learned_whitening(x, q, p)
    xs, m = x.numpy(), x.numpy()[q.numpy()].mean(axis=0)
    np.testing.assert_allclose(w.mean.numpy(), m, rtol=1e-12)
    projection = w.projection.numpy()
    differences = xs[q.numpy()] - xs[p.numpy()]
    within = differences.T @ differences / len(differences)
    np.testing.assert_allclose(projection @ within @ projection.T, np.eye(7), atol=1e-9)
    spread = projection @ (xs - m).T @ (xs - m) @ projection.T
    np.testing.assert_allclose(spread, np.diag(np.diag(spread)), atol=1e-8 * np.abs(spread).max())
    np.testing.assert_allclose(np.diag(spread), w.eigenvalues.numpy(), rtol=1e-9)
    assert np.all(np.diff(w.eigenvalues.numpy()) <= 0)
    # the eigenvalues are those of the decorrelated set, by numpy: L^{-1} (X - m)(X - m)^T L^{-T}
    inverse = np.linalg.inv(np.linalg.cholesky(within))
    expected = np.linalg.eigvalsh(inverse @ (xs - m).T @ (xs - m) @ inverse.T)[::-1]
    np.testing.assert_allclose(w.eigenvalues.numpy(), expected, rtol=1e-9)
    reduced = W.learned_whitening(x, q.tolist(), p.tolist(), dim=3)
    assert reduced.dim == 3
    assert_rows_equal_up_to_sign(reduced.projection.numpy(), projection[:3])


def test_learned_whitening_with_too_few_pairs_adds_jitter_and_warns():
    x, q, p = matching_pairs(8, 6, seed=7)  # 4 pairs cannot make a 6x6 S_w positive definite
    with pytest.warns(RuntimeWarning, match="added 1e-"):
        w = W.learned_whitening(x, q, p)
    assert torch.isfinite(w.projection).all() and w.dim == 6


def test_whitening_refuses_bad_input_naming_it():
    x = correlated(20, 4, seed=8)
    with pytest.raises(ValueError, match=r"descriptors must be \(N, D\) with N >= 2; got \(4,\)"):
        W.pca_whitening(x[0])
    with pytest.raises(ValueError, match=r"dim must be None or an integer in 1..4"):
        W.pca_whitening(x, dim=5)
    with pytest.raises(ValueError, match="descriptors must vary"):
        W.pca_whitening(torch.ones(5, 3))
    with pytest.raises(ValueError, match="shrinkage"):
        W.pca_whitening(x, shrinkage=1.5)
    with pytest.raises(ValueError, match=r"positive_index must index the 20 descriptors"):
        W.learned_whitening(x, [0, 1], [2, 20])
    with pytest.raises(ValueError, match="pair up"):
        W.learned_whitening(x, [0, 1, 2], [3, 4])
    with pytest.raises(TypeError, match="floating-point"):
        W.pca_whitening(torch.ones(5, 3, dtype=torch.long))


@pytest.mark.gpu
def test_whitening_learns_and_applies_on_cuda_as_on_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, q, p = matching_pairs(400, 7, seed=9)
    learners = (lambda d: W.pca_whitening(d, dim=5),
                lambda d: W.learned_whitening(d, q.to(d.device), p.to(d.device)))
    for learn in learners:
        on_cpu, on_cuda = learn(x), learn(x.cuda())
        assert on_cuda.projection.device.type == "cuda"
        torch.testing.assert_close(on_cuda.projection.cpu(), on_cpu.projection, rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(on_cuda(x.cuda().float()).cpu(), on_cpu(x.float()), rtol=1e-5, atol=1e-6)
