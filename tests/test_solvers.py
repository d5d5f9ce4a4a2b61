"""coursekit.graphs.solvers (stage 08): conjugate gradient against numpy's dense solve, scipy's cg (the same
iterates, column by column), hand cases and the stopping rule."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

from coursekit.graphs.solvers import CGResult, conjugate_gradient

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")  # the tests' own CSR


def spd(n: int, seed: int, condition: float = 50.0) -> np.ndarray:
    """A random symmetric positive-definite ``(n, n)`` matrix with eigenvalues spread over [1, condition]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.geomspace(1, condition, n)) @ q.T


def sparse_spd(n: int, seed: int) -> scipy.sparse.csr_array:
    """A random sparse symmetric, strictly diagonally dominant (so positive-definite) matrix."""
    rng = np.random.default_rng(seed)
    off = scipy.sparse.random_array((n, n), density=0.05, rng=rng, data_sampler=lambda size: rng.uniform(-1, 1, size))
    off = off + off.T
    off.setdiag(0)
    dominance = np.abs(off).sum(1) + rng.uniform(0.2, 1.0, n)
    return scipy.sparse.csr_array(off + scipy.sparse.diags_array(dominance))


def scipy_cg(A, b, iterations: int, rtol: float = 0.0, x0=None) -> np.ndarray:
    """scipy's cg on one right-hand side (rtol = 0: exactly ``iterations`` iterations)."""
    x, _ = scipy.sparse.linalg.cg(A, b, rtol=rtol, atol=0.0, maxiter=iterations, x0=x0)
    return x


def test_a_converged_solve_is_numpys_dense_solve():
    A = spd(40, seed=0)
    b = np.random.default_rng(1).normal(size=40)
    result = conjugate_gradient(A, b, tol=1e-13, max_iterations=400)
    assert isinstance(result, CGResult) and result.converged
    assert isinstance(result.x, np.ndarray) and result.x.dtype == np.float64 and result.x.shape == (40,)
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-10, atol=1e-12)
    assert len(result.residuals) == result.iterations + 1 and result.residuals[-1] <= 1e-13


def test_every_column_runs_its_own_cg_with_the_iterates_of_scipy():
    A = spd(30, seed=2, condition=300.0)
    B = np.random.default_rng(3).normal(size=(30, 5))
    B[:, 3] *= 1e4  # the scale of one column must not leak into the others' alpha and beta
    for iterations in (1, 4, 9):  # not converged: the iterates themselves are compared
        result = conjugate_gradient(torch.from_numpy(A), torch.from_numpy(B), tol=0.0, max_iterations=iterations)
        assert result.iterations == iterations and not result.converged
        expected = np.stack([scipy_cg(A, B[:, q], iterations) for q in range(5)], 1)
        scale = np.abs(expected).max(0)  # each column against its own size
        np.testing.assert_allclose(result.x.numpy() / scale, expected / scale, rtol=1e-10, atol=1e-12)
        # and a block solve is the column by column solve of this very function
        for q in (0, 3):
            single = conjugate_gradient(A, B[:, q], tol=0.0, max_iterations=iterations).x
            np.testing.assert_allclose(result.x.numpy()[:, q], single, rtol=1e-12, atol=1e-14 * np.abs(single).max())


def test_a_converged_column_stops_while_the_others_go_on():
    A = spd(200, seed=4, condition=20.0)
    values, vectors = np.linalg.eigh(A)
    rng = np.random.default_rng(5)
    B = rng.normal(size=(200, 3))
    B[:, 1] = vectors[:, 7]  # an eigenvector: CG is exact after one step, x = v / lambda
    B[:, 2] = vectors[:, :8] @ rng.normal(size=8) + 1e-7 * rng.normal(size=200)  # nearly 8 eigenvectors: quicker
    result = conjugate_gradient(A, B, tol=1e-10, max_iterations=200)
    assert result.converged and result.iterations > 5
    np.testing.assert_allclose(result.x[:, 1], vectors[:, 7] / values[7], rtol=1e-10, atol=1e-14)
    singles = [conjugate_gradient(A, B[:, q], tol=1e-10, max_iterations=200) for q in range(3)]
    assert result.iterations == max(single.iterations for single in singles) and singles[1].iterations == 1
    for q in (0, 2):  # each column stopped where its own solve stops: scipy's iterate at its own tol
        np.testing.assert_allclose(result.x[:, q], scipy_cg(A, B[:, q], 200, rtol=1e-10), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(result.x[:, q], singles[q].x, rtol=1e-12, atol=1e-14)
        assert np.linalg.norm(B[:, q] - A @ result.x[:, q]) <= 1.01e-10 * np.linalg.norm(B[:, q])
    assert singles[2].iterations < singles[0].iterations  # so column 2 stopped before the block did


def test_sparse_scipy_and_callable_matrices_agree_with_the_dense_solve():
    A = sparse_spd(120, seed=6)
    dense = A.toarray()
    B = np.random.default_rng(7).normal(size=(120, 3))
    expected = np.linalg.solve(dense, B)
    coo = A.tocoo()
    # a torch COO tensor with one entry split in two (duplicates are summed, as a sparse matrix means)
    rows, cols, vals = coo.row.tolist(), coo.col.tolist(), coo.data.tolist()
    rows.append(rows[0]), cols.append(cols[0]), vals.append(0.25 * vals[0])
    vals[0] *= 0.75
    torch_coo = torch.sparse_coo_tensor(torch.tensor([rows, cols]), torch.tensor(vals, dtype=torch.float64), (120, 120),
                                        check_invariants=True)
    matrices = {"numpy": dense, "scipy csr": A, "scipy coo": coo, "torch dense": torch.from_numpy(dense),
                "torch coo": torch_coo, "torch csr": torch.from_numpy(dense).to_sparse_csr()}
    for name, matrix in matrices.items():
        for rhs in (B, torch.from_numpy(B)):
            result = conjugate_gradient(matrix, rhs, tol=1e-12, max_iterations=500)
            assert isinstance(result.x, type(rhs)) and result.converged, name  # the result is b's kind
            np.testing.assert_allclose(np.asarray(result.x), expected, rtol=1e-9, atol=1e-11, err_msg=name)
    # a callable sees b's kind and shape: numpy (n, Q), torch (n,)
    seen = []

    def numpy_operator(v):
        seen.append((type(v), v.shape))
        return A @ v

    result = conjugate_gradient(numpy_operator, B, tol=1e-12, max_iterations=500)
    assert result.converged and set(seen) == {(np.ndarray, (120, 3))}
    np.testing.assert_allclose(result.x, expected, rtol=1e-9, atol=1e-11)
    torch_dense = torch.from_numpy(dense)
    x = conjugate_gradient(lambda v: torch_dense @ v, torch.from_numpy(B[:, 0]), tol=1e-12, max_iterations=500).x
    assert isinstance(x, torch.Tensor) and x.shape == (120,)
    np.testing.assert_allclose(x.numpy(), expected[:, 0], rtol=1e-9, atol=1e-11)


def test_the_stopping_rule_is_pcgs_relative_residual():
    A = spd(60, seed=8, condition=20.0)
    b = np.random.default_rng(9).normal(size=60)
    tight = conjugate_gradient(A, b, tol=1e-10, max_iterations=1000)
    loose = conjugate_gradient(A, b, tol=1e-3, max_iterations=1000)
    assert tight.converged and loose.converged and loose.iterations < tight.iterations
    for result, tol in ((tight, 1e-10), (loose, 1e-3)):
        history = np.array(result.residuals)
        assert len(history) == result.iterations + 1 and history[0] == pytest.approx(1.0, rel=1e-14)
        assert history[-1] <= tol < history[-2]  # it stops at the first iterate that meets the rule
    # the history is ||b - A x_t|| / ||b|| along scipy's own iterates
    iterates = []
    scipy.sparse.linalg.cg(A, b, rtol=1e-3, atol=0.0, maxiter=1000, callback=lambda xk: iterates.append(xk.copy()))
    true = [np.linalg.norm(b - A @ xk) / np.linalg.norm(b) for xk in iterates]
    np.testing.assert_allclose(loose.residuals[1:], true, rtol=1e-6)
    # CG's residual norm need not fall at every step (its error's A-norm does); on this system, down to 1e-3,
    # it does
    assert np.all(np.diff(loose.residuals) < 0)
    # too few iterations: not converged, and the last iterate is returned
    short = conjugate_gradient(A, b, tol=1e-10, max_iterations=3)
    assert short.iterations == 3 and not short.converged and short.residuals[-1] > 1e-10
    np.testing.assert_allclose(short.x, scipy_cg(A, b, 3), rtol=1e-10)


def test_zero_right_hand_sides_and_starting_points():
    A = spd(12, seed=10)
    start = np.ones(12)
    for x0 in (None, start):
        result = conjugate_gradient(A, np.zeros(12), x0=x0)
        assert result.iterations == 0 and result.converged and result.residuals == [0.0]
        assert np.all(result.x == 0)
    B = np.random.default_rng(11).normal(size=(12, 3))
    B[:, 1] = 0
    result = conjugate_gradient(A, B, tol=1e-12, max_iterations=100)
    assert np.all(result.x[:, 1] == 0)
    np.testing.assert_allclose(result.x, np.linalg.solve(A, B), rtol=1e-9, atol=1e-12)
    exact = np.linalg.solve(A, B[:, 0])
    assert conjugate_gradient(A, B[:, 0], x0=exact, tol=1e-8).iterations == 0  # started at the solution
    started = conjugate_gradient(A, B[:, 0], x0=start, tol=0.0, max_iterations=4).x
    np.testing.assert_allclose(started, scipy_cg(A, B[:, 0], 4, x0=start), rtol=1e-10)
    assert conjugate_gradient(A, B, max_iterations=0).iterations == 0


def test_a_matrix_that_is_not_positive_definite_is_refused():
    # p_0 = b = (1, 1): p^T A p = 1 - 1 = 0, a zero curvature
    with pytest.raises(ValueError, match="not positive definite"):
        conjugate_gradient(np.diag([1.0, -1.0]), np.ones(2))
    with pytest.raises(ValueError, match="not positive definite"):
        conjugate_gradient(torch.from_numpy(-spd(6, seed=12)), torch.ones(6, 2, dtype=torch.float64))
    # indefinite, caught later: the first direction is fine, a later one is not
    with pytest.raises(ValueError, match="not positive definite"):
        conjugate_gradient(np.diag([4.0, 3.0, 2.0, -50.0]), np.array([1.0, 1.0, 1.0, 0.1]), tol=1e-12)


def test_dtypes_and_kinds():
    A = spd(10, seed=13)
    b = np.random.default_rng(14).normal(size=10)
    single = conjugate_gradient(torch.from_numpy(A).float(), torch.from_numpy(b).float(), tol=1e-5, max_iterations=50)
    assert single.x.dtype == torch.float32 and single.converged
    np.testing.assert_allclose(single.x.numpy(), np.linalg.solve(A, b), rtol=1e-3, atol=1e-4)
    host = conjugate_gradient(A.astype(np.float32), b.astype(np.float32), tol=1e-12, max_iterations=100)
    assert isinstance(host.x, np.ndarray) and host.x.dtype == np.float64  # numpy is solved in float64
    mixed = conjugate_gradient(scipy.sparse.csr_array(A), torch.from_numpy(b), tol=1e-12, max_iterations=100)
    assert isinstance(mixed.x, torch.Tensor) and mixed.x.dtype == torch.float64


def test_bad_arguments_name_what_was_expected():
    A = spd(5, seed=15)
    with pytest.raises(ValueError, match=r"b must have n = 5 rows to match matrix \(5, 5\); got \(4,\)"):
        conjugate_gradient(A, np.ones(4))
    with pytest.raises(ValueError, match=r"matrix must be square \(n, n\); got \(5, 4\)"):
        conjugate_gradient(A[:, :4], np.ones(5))
    with pytest.raises(ValueError, match=r"b must be \(n,\) or \(n, Q\); got \(5, 1, 1\)"):
        conjugate_gradient(A, np.ones((5, 1, 1)))
    with pytest.raises(ValueError, match=r"x0 must have b's shape \(5,\); got \(5, 1\)"):
        conjugate_gradient(A, np.ones(5), x0=np.ones((5, 1)))
    with pytest.raises(ValueError, match="tol must be"):
        conjugate_gradient(A, np.ones(5), tol=-1e-6)
    with pytest.raises(ValueError, match="max_iterations must be an integer >= 0; got 2.5"):
        conjugate_gradient(A, np.ones(5), max_iterations=2.5)
    with pytest.raises(TypeError, match="matrix must be"):
        conjugate_gradient(A.tolist(), np.ones(5))
    with pytest.raises(TypeError, match="b must be"):
        conjugate_gradient(A, [1.0] * 5)
    with pytest.raises(ValueError, match="b must be finite"):
        conjugate_gradient(A, np.array([1.0, np.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"matrix\(v\) must return A v of v's shape \(5,\); got \(4,\)"):
        conjugate_gradient(lambda v: v[:4], np.ones(5))


@pytest.mark.gpu
def test_cg_runs_on_cuda_and_agrees_with_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    A = sparse_spd(500, seed=16)
    B = torch.from_numpy(np.random.default_rng(17).normal(size=(500, 4)))
    dense = torch.from_numpy(A.toarray())
    on_cpu = conjugate_gradient(dense, B, tol=1e-10, max_iterations=300)
    for name, matrix in (("dense", dense), ("coo", dense.to_sparse()), ("csr", dense.to_sparse_csr()),
                         ("callable", lambda v: dense.cuda() @ v)):
        on_gpu = conjugate_gradient(matrix.cuda() if isinstance(matrix, torch.Tensor) else matrix, B.cuda(),
                                    tol=1e-10, max_iterations=300)
        assert on_gpu.x.device.type == "cuda" and on_gpu.converged, name
        assert on_gpu.iterations == on_cpu.iterations, name
        torch.testing.assert_close(on_gpu.x.cpu(), on_cpu.x, rtol=1e-9, atol=1e-11, msg=name)
    # a scipy matrix with a CUDA right-hand side is solved on the GPU
    assert conjugate_gradient(A, B.cuda(), tol=1e-10, max_iterations=300).x.device.type == "cuda"
