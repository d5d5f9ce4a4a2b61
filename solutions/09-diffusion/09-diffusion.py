# ---
# jupyter:
#   coursekit:
#     full_budget_on_cpu: false
# ---

# %% [markdown]
# # Stage 09 — Diffusion: query expansion on manifolds and fast spectral ranking
#
# *Deep learning for vision*, lecture slides "query expansion and searching on manifolds", "query expansion as a
# linear system" and "searching on manifolds as smoothing": Iscen, Tolias, Avrithis, Furon & Chum, *Efficient
# diffusion on region manifolds* (CVPR 2017), and *Fast spectral ranking for similarity search* (CVPR 2018).
#
# A query's nearest neighbours in descriptor space are a ball around it; the images of one object lie on a curved,
# thin **manifold** that a ball cuts across. Diffusion ranks the database by walks on a graph of the database instead:
# from the query's neighbours, along the edges of a reciprocal $k$-NN graph, so that an image far from the query in
# straight-line distance but reached by a chain of close images ranks high. The ranking is the solution of a linear
# system, $\mathcal L_\alpha x = y$, and also a low-pass filter of $y$ on the graph's spectrum, which makes it fast.
#
# **You will**
# 1. build the graph: the reciprocal affinity $a_{ij} = \max(s_{ij}, 0)^\gamma$ of neighbour lists and its symmetric
#    normalisation $W = D^{-1/2} A D^{-1/2}$, and rank three interleaved moons by diffusion against straight distance;
# 2. write the query vector $y$ of the authors' code and diffusion $\mathcal L_\alpha x = y$ by conjugate gradients,
#    and see what twenty iterations cost against a converged solve;
# 3. diffuse the descriptors of stage 07's retrieval set: one descriptor per image (stage 08's Table 1 with its
#    diffusion rows), then several regions per image pooled with generalised max-pooling weights (yours), and the
#    graph truncated to each query's shortlist;
# 4. see $\mathcal L_\alpha^{-1} = h_\alpha(W)$ as a filter on the eigenvalues of $W$, write the rank-$r$ spectral
#    ranking and its explicit embedding, and measure the trade-off of rank, accuracy and query time, with the
#    offline and online costs of each method in one table.
#
# A test cell that passes prints nothing. *Run All* stops at the first failing test: until your answers are done, run
# the cells one by one. While your code is graded, coursekit's pieces of this stage are switched off (those of earlier
# stages are yours to use: stage 08's conjugate gradients are `solvers.conjugate_gradient`), and so are the library's
# dense and sparse solvers and stage 08's `local_search`: diffusion is solved by CG here. The descriptors read the run
# budget: the **full** budget (the default) uses the benchmark's full size (minutes on a laptop CPU the first time,
# the network's maps are then kept in the data cache); the **fast** budget (autograding, CI, or
# `COURSEKIT_BUDGET=fast`) its small version. Tolerances: float64 answers are compared to about 1e-10 unless the
# exercise says otherwise.
#
# **Only the answer cells are graded: put all your code in them** (cells you add are dropped when your notebook is
# graded).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import time

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import torch

import coursekit
from coursekit.data import samples
from coursekit.data.instances import instance_set
from coursekit.explore import plots
from coursekit.grading import check, check_close, check_shape, demo, own_work, yours_or
from coursekit.graphs import diffusion, discovery, knn, solvers, sparse
from coursekit.nets.pretrained import load_efficientnet_lite0
from coursekit.retrieval import descriptors, evaluation

BUDGET = coursekit.budget()
DEVICE = coursekit.device()
coursekit.seed_everything(0)
SIZE = BUDGET.pick(full="full", fast="fast")
benchmark = instance_set("test", SIZE)  # stage 07's offline retrieval set, from the course's data cache
training = instance_set("train", SIZE)  # other objects: to learn the whitening on
network = load_efficientnet_lite0(DEVICE)  # ImageNet-trained EfficientNet-Lite0, from the data cache
# the library's solvers, and stage 08's diffusion, switched off while the answers of sections 2 and 4 run
SOLVERS = ["numpy.linalg.solve", "numpy.linalg.inv", "numpy.linalg.lstsq", "numpy.linalg.pinv", "scipy.linalg.solve",
           "scipy.linalg.inv", "scipy.linalg.lstsq", "scipy.sparse.linalg.cg", "scipy.sparse.linalg.spsolve",
           "scipy.sparse.linalg.bicgstab", "scipy.sparse.linalg.gmres", "scipy.sparse.linalg.minres",
           "torch.linalg.solve", "torch.linalg.inv", "torch.linalg.lstsq", "torch.linalg.pinv", "torch.cholesky_solve",
           "coursekit.graphs.centrality.local_search", "coursekit.graphs.centrality.katz_centrality"]
print(f"{BUDGET}; device {DEVICE}; benchmark: {len(benchmark.queries)} queries, {len(benchmark.images)} database "
      f"images; training set: {len(training.images)} images")

# %% [markdown]
# ## 1. The graph
#
# The nodes are the database items (images, or regions), with l2-normalised descriptors $v_i$ and similarities $s_{ij}
# = v_i^\top v_j$. Each item lists its $k$ nearest neighbours, $\mathrm{NN}_k(i)$ (exact, by chunked matrix products
# and a top-$k$ on the device: `knn.knn`). Two items are linked only if each lists the other, the **reciprocal**
# (mutual) neighbours that the authors keep "to handle noise and outliers", with the affinity
# $$a_{ij} = \begin{cases}\max(s_{ij}, 0)^\gamma & j \in \mathrm{NN}_k(i),\ i \in \mathrm{NN}_k(j),\ i \ne j,\\ 0 &
# \text{otherwise,}\end{cases}$$
# $\gamma = 3$: the power keeps strong links and damps weak ones. $A$ is symmetric, non-negative, with a zero
# diagonal (an item is not its own neighbour, though the authors' lists, like many, name it first).
#
# ### Exercise 1.1 — The reciprocal affinity
# Write `reciprocal_affinity(similarities, neighbours, gamma=3.0)`: row $i$ of `neighbours (n, k)` (int64) lists
# the neighbours of item $i$ (it may name $i$ itself), and row $i$ of `similarities (n, k)` (float64) their
# similarities to $i$ (symmetric: $s_{ij} = s_{ji}$). Return $A$ as a float64 torch tensor `(n, n)` (dense; a sparse
# tensor is accepted too).

# %% nbgrader={"grade": false, "grade_id": "reciprocal-affinity-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def reciprocal_affinity(similarities, neighbours, gamma=3.0):
    """A (n, n): max(s_ij, 0)^gamma where j lists i and i lists j, i != j; else 0. Inputs (n, k): lists by row."""
    ### BEGIN SOLUTION
    n = len(neighbours)
    rows = torch.arange(n, device=neighbours.device)[:, None].expand_as(neighbours)
    listed = torch.zeros(n, n, dtype=torch.bool, device=neighbours.device)
    listed[rows, neighbours] = True
    values = torch.zeros(n, n, dtype=similarities.dtype, device=similarities.device)
    values[rows, neighbours] = similarities.clamp_min(0) ** gamma
    mutual = listed & listed.T
    mutual.fill_diagonal_(False)
    return torch.where(mutual, values, torch.zeros((), dtype=values.dtype, device=values.device))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "reciprocal-affinity-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def affinity_of(s_r, neighbours_r, gamma_r=3.0):
    with own_work(stage=9, what="reciprocal_affinity"):
        A_r = reciprocal_affinity(torch.as_tensor(s_r, dtype=torch.float64).clone(),
                                  torch.as_tensor(neighbours_r, dtype=torch.int64).clone(), gamma_r)
    check(isinstance(A_r, torch.Tensor), "reciprocal_affinity must return a torch tensor")
    A_r = A_r.to_dense() if A_r.layout != torch.strided else A_r
    return check_shape(A_r.detach().cpu().double(), (len(neighbours_r), len(neighbours_r)), "A")


def lists_of(X_r, k_r, with_self_r):
    """Each row's k most similar rows of X (itself first if with_self), by brute force; their similarities."""
    S_r = X_r @ X_r.T
    order_r = np.argsort(-S_r, axis=1, kind="stable")
    order_r = order_r[:, :k_r] if with_self_r else np.array([[j for j in row if j != i][:k_r] for i, row in enumerate(order_r)])
    return np.take_along_axis(S_r, order_r, 1), order_r


def affinity_by_loops(s_r, neighbours_r, gamma_r):
    n_r = len(neighbours_r)
    A_r = np.zeros((n_r, n_r))
    for i in range(n_r):
        for value, j in zip(s_r[i], neighbours_r[i]):
            if j != i and i in list(neighbours_r[j]):
                A_r[i, j] = max(value, 0.0) ** gamma_r
    return A_r


# By hand: 0 lists 1 and 2, 1 lists 0 and 3, 2 lists 3 and 1, 3 lists 2 and 0. Reciprocal: {0, 1} and {2, 3}.
s_r = np.array([[0.9, 0.5], [0.9, 0.4], [0.8, 0.3], [0.8, 0.2]])
A_r = affinity_of(s_r, [[1, 2], [0, 3], [3, 1], [2, 0]], 2.0)
expected_r = np.zeros((4, 4))
expected_r[0, 1] = expected_r[1, 0] = 0.81
expected_r[2, 3] = expected_r[3, 2] = 0.64
check_close(A_r, expected_r, "A of four items by hand (gamma 2)", tol=1e-12)
X_r = np.linalg.qr(np.random.default_rng(9).normal(size=(8, 8)))[0][:, :3]
X_r /= np.linalg.norm(X_r, axis=1, keepdims=True)
A_r = affinity_of(*lists_of(X_r, 3, True))
check(np.array_equal(A_r, A_r.T), "A must be symmetric")
check(bool((np.diag(A_r) == 0).all()), "A must have a zero diagonal (lists that name an item itself)")
### BEGIN HIDDEN TESTS
gen_h = np.random.default_rng(91)
for case_h in range(8):
    n_h, d_h = int(gen_h.integers(6, 40)), int(gen_h.integers(2, 8))
    X_h = gen_h.normal(size=(n_h, d_h))
    X_h /= np.linalg.norm(X_h, axis=1, keepdims=True)
    k_h = n_h if case_h == 0 else int(gen_h.integers(1, n_h))  # every item listed: negative similarities too
    s_h, neighbours_h = lists_of(X_h, k_h, case_h % 2 == 0)
    gamma_h = (3.0, 1.0, 2.5)[case_h % 3]
    check_close(affinity_of(s_h, neighbours_h, gamma_h), affinity_by_loops(s_h, neighbours_h, gamma_h),
                f"A of random case {case_h} (n {n_h}, k {k_h}, gamma {gamma_h})", tol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# The walks on the graph are taken with the **symmetric normalisation** $W = D^{-1/2} A D^{-1/2}$, $D =
# \mathrm{diag}(A\mathbf 1)$: $w_{ij} = a_{ij}/\sqrt{d_i d_j}$. $W$ is symmetric, its eigenvalues lie in $[-1, 1]$,
# and $W\,(D^{1/2}\mathbf 1) = D^{1/2}\mathbf 1$: the eigenvalue 1, once per connected part of the graph. (The row
# normalisation $D^{-1}A$ is a random walk's transition matrix, with the same eigenvalues but not symmetric, and CG
# needs a symmetric system.)
#
# ### Exercise 1.2 — Symmetric normalisation
# Write `normalise(A)`: `A (n, n)` a dense float64 torch tensor, symmetric and non-negative; return $W$, dense
# float64. An isolated item (degree 0) gets a zero row and column, not a division by zero.

# %% nbgrader={"grade": false, "grade_id": "normalise-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def normalise(A):
    """W = D^-1/2 A D^-1/2 (n, n), D = diag(A 1); zero rows and columns for isolated items."""
    ### BEGIN SOLUTION
    degree = A.sum(dim=1)
    scale = torch.where(degree > 0, degree.clamp_min(torch.finfo(A.dtype).tiny).rsqrt(), torch.zeros((), dtype=A.dtype))
    return scale[:, None] * A * scale[None, :]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "normalise-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def normalise_of(A_r):
    with own_work(stage=9, what="normalise"):
        W_r = normalise(torch.as_tensor(A_r, dtype=torch.float64).clone())
    check(isinstance(W_r, torch.Tensor) and W_r.dtype == torch.float64, "normalise must return a float64 torch tensor")
    W_r = W_r.to_dense() if W_r.layout != torch.strided else W_r
    return check_shape(W_r.detach().cpu().numpy(), (len(A_r), len(A_r)), "W")


# By hand: a path 0 - 1 - 2 with weights 1 and 2 (degrees 1, 3, 2), and an isolated item 3
path_r = np.array([[0, 1, 0, 0], [1, 0, 2, 0], [0, 2, 0, 0], [0, 0, 0, 0]], dtype=float)
expected_r = np.zeros((4, 4))
expected_r[0, 1] = expected_r[1, 0] = 1 / np.sqrt(3)
expected_r[1, 2] = expected_r[2, 1] = 2 / np.sqrt(6)
check_close(normalise_of(path_r), expected_r, "W of a weighted path and an isolated item, by hand", tol=1e-12)
### BEGIN HIDDEN TESTS
gen_h = np.random.default_rng(92)
for case_h in range(6):
    n_h = int(gen_h.integers(3, 30))
    upper_h = np.triu(gen_h.uniform(0.05, 1, (n_h, n_h)) * (gen_h.random((n_h, n_h)) < 0.3), 1)
    A_h = upper_h + upper_h.T
    if case_h % 2:
        A_h[0, :] = A_h[:, 0] = 0  # an isolated item
    degree_h = A_h.sum(1)
    expected_h = np.zeros_like(A_h)
    for i in range(n_h):
        for j in range(n_h):
            if degree_h[i] > 0 and degree_h[j] > 0:
                expected_h[i, j] = A_h[i, j] / np.sqrt(degree_h[i] * degree_h[j])
    W_h = normalise_of(A_h)
    check_close(W_h, expected_h, f"W of random case {case_h}", tol=1e-12, atol=1e-15)
    root_h = np.sqrt(degree_h)
    check_close(W_h @ root_h, root_h, f"W D^1/2 1 = D^1/2 1 (case {case_h})", tol=1e-10, atol=1e-15)
### END HIDDEN TESTS

# %% [markdown]
# **The toy first.** Three interleaved half-moons (`samples.moons`, after the authors' `banana3.m`), 100 points each,
# the similarity a Gaussian kernel of the distance, $s_{ij} = \exp(-\lVert p_i - p_j\rVert^2 / 2\sigma^2)$ with $\sigma
# = 0.1$, $k = 10$, $\gamma = 3$; the query is the right tip of the first moon. The straight-line ranking spreads
# from the query as a disc and spills onto the moon that passes under the tip; diffusion (section 2) follows the
# query's own moon. Your graph is used once it is written (coursekit's until then).

# %% nbgrader={"grade": false, "grade_id": "moons-graph", "locked": true, "schema_version": 3, "solution": false, "task": false}
MOONS, MOON_OF = samples.moons(100, 3, noise=0.05, seed=0)
QUERY_POINT = int(np.argmax(MOONS[:, 0] * (MOON_OF == 0)))  # the right tip of moon 0
K_MOONS, GAMMA, ALPHA, BANDWIDTH, TOP = 10, 3.0, 0.99, 0.1, 100
moon_points = torch.tensor(MOONS)
kernel = torch.exp(-torch.cdist(moon_points, moon_points).square() / (2 * BANDWIDTH**2))
moon_similarities, moon_neighbours = torch.topk(kernel - 2 * torch.eye(len(MOONS), dtype=torch.float64), K_MOONS, dim=1)
moon_similarities = moon_similarities + 2 * (moon_neighbours == torch.arange(len(MOONS))[:, None])  # (no self here)
affinity_now = yours_or(reciprocal_affinity, lambda s, nb, g: knn.affinity_from_lists(s, nb, g).to_dense(), "the affinity")
normalise_now = yours_or(normalise, lambda A: knn.symmetric_normalise(A), "the normalisation")
MOON_A = affinity_now(moon_similarities, moon_neighbours, GAMMA)
MOON_A = MOON_A.to_dense() if MOON_A.layout != torch.strided else MOON_A
MOON_W = normalise_now(MOON_A)
print(f"{len(MOONS)} points, {int((MOON_A > 0).sum()) // 2} reciprocal edges of {K_MOONS * len(MOONS)} listed; "
      f"edges between moons: {int(((MOON_A > 0) & torch.tensor(MOON_OF[:, None] != MOON_OF[None, :])).sum()) // 2}")

# %% [markdown]
# ## 2. Query expansion as a linear system
#
# **The query vector.** A query $q$ is matched to the database by its similarities $s_i = v_q^\top v_i$ (for a query
# described by several regions, the **sum** over its regions of their similarities to $v_i$). Its $k_q$ most similar
# items are kept, as $y_i = \max(s_i, 0)^\gamma$, and every other entry of $y$ is 0 (the authors' `ymake`; the power
# comes after the sum).
#
# ### Exercise 2.1 — The query vector
# Write `query_vector(similarities, k_q=10, gamma=3.0)`: `similarities` a float64 torch tensor `(n,)`, or `(r, n)`
# for a query of $r$ regions; return $y$ `(n,)`, float64.

# %% nbgrader={"grade": false, "grade_id": "query-vector-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def query_vector(similarities, k_q=10, gamma=3.0):
    """y (n,): the k_q largest (region-summed) similarities as max(s, 0)^gamma, zeros elsewhere."""
    ### BEGIN SOLUTION
    summed = similarities if similarities.ndim == 1 else similarities.sum(dim=0)
    top = torch.topk(summed, k_q)
    y = torch.zeros_like(summed)
    y[top.indices] = top.values.clamp_min(0) ** gamma
    return y
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "query-vector-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def y_of(s_r, k_r, gamma_r=3.0):
    with own_work(stage=9, what="query_vector"):
        y_r = query_vector(torch.as_tensor(s_r, dtype=torch.float64).clone(), k_r, gamma_r)
    check(isinstance(y_r, torch.Tensor), "query_vector must return a torch tensor")
    return check_shape(y_r.detach().cpu().double().numpy(), (np.shape(s_r)[-1],), "y")


def y_by_sorting(s_r, k_r, gamma_r):
    summed_r = np.atleast_2d(s_r).sum(0)
    y_r = np.zeros_like(summed_r)
    top_r = np.argsort(-summed_r, kind="stable")[:k_r]
    y_r[top_r] = np.maximum(summed_r[top_r], 0) ** gamma_r
    return y_r


s_r = np.array([0.9, -0.2, 0.5, 0.7, 0.1, 0.3])
check_close(y_of(s_r, 3), np.array([0.729, 0, 0.125, 0.343, 0, 0]), "y of six similarities, k_q 3, by hand", tol=1e-12)
regions_r = np.array([[0.6, 0.1, 0.2, -0.3], [0.2, 0.5, -0.4, 0.1]])  # summed: 0.8, 0.6, -0.2, -0.2
check_close(y_of(regions_r, 2, 2.0), np.array([0.64, 0.36, 0, 0]), "y of a query of two regions (summed, then the power)",
            tol=1e-12)
### BEGIN HIDDEN TESTS
gen_h = np.random.default_rng(93)
for case_h in range(8):
    n_h = int(gen_h.integers(5, 60))
    s_h = gen_h.uniform(-1, 1, (int(gen_h.integers(1, 5)), n_h)) if case_h % 2 else gen_h.uniform(-1, 1, n_h)
    k_h = n_h if case_h == 0 else int(gen_h.integers(1, n_h + 1))
    gamma_h = (3.0, 1.0, 2.0, 0.5)[case_h % 4]
    check_close(y_of(s_h, k_h, gamma_h), y_by_sorting(s_h, k_h, gamma_h), f"y of random case {case_h}", tol=1e-12)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "graph-oracles", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Oracles of the tests of sections 2 and 4: small connected graphs, the diffusion by a dense solve, eigenpairs by eigh
def random_graph(n, seed, density=0.2):
    gen = np.random.default_rng(seed)
    upper = np.triu(gen.uniform(0.1, 1, (n, n)) * (gen.random((n, n)) < density), 1)
    upper[np.arange(n - 1), np.arange(1, n)] = 0.5  # a path through every item: connected
    A = upper + upper.T
    degree = A.sum(1)
    return A / np.sqrt(np.outer(degree, degree))


def exact_diffusion(W, y, alpha):
    return (1 - alpha) * np.linalg.solve(np.eye(len(W)) - alpha * W, y)


def top_eigenpairs(W, r):
    values, vectors = np.linalg.eigh(W)
    return values[::-1][:r].copy(), vectors[:, ::-1][:, :r].copy()


PAIR_VECTORS = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2)  # two linked items: eigenvectors of [[0, 1], [1, 0]]

# %% [markdown]
# **Diffusion.** With $\alpha \in (0, 1)$ the **regularised Laplacian** $\mathcal L_\alpha = (I - \alpha W)/(1 -
# \alpha)$ is symmetric positive definite, and the ranking is the solution of
# $$\mathcal L_\alpha x = y, \qquad x = (1-\alpha)(I - \alpha W)^{-1} y = (1 - \alpha)\sum_{t \ge 0} \alpha^t W^t y:$$
# every walk from the query's neighbours, a walk of length $t$ weighted by $\alpha^t$; it is also the fixed point of
# the iteration $x \leftarrow \alpha W x + (1-\alpha) y$ of Zhou et al. With $\alpha = 0.99$ the walks are long: far
# items reached by many short steps score high. The authors solve it by **conjugate gradients** (stage 08's), from
# $x_0 = 0$, with MATLAB pcg's rule: at most 20 iterations, or until $\lVert r\rVert \le 10^{-6}\lVert y\rVert$.
# (Scaling $\mathcal L_\alpha$ and $y$ together leaves the CG iterates, and the ranking, as they are.)
#
# ### Exercise 2.2 — Diffusion by conjugate gradients
# Write `diffuse(W, y, alpha=0.99, tol=1e-6, max_iterations=20)`: `W (n, n)` a float64 torch tensor (dense or
# sparse: `W @ v` works for both), `y (n,)` float64; return $x$ `(n,)`, the CG solution of $\mathcal L_\alpha x = y$
# from 0 with that stopping rule: `solvers.conjugate_gradient(A, b, tol=..., max_iterations=...)` takes $A$ as a
# function $v \mapsto Av$ and returns a result whose `.x` is the solution. $\mathcal L_\alpha$ need not be built.

# %% nbgrader={"grade": false, "grade_id": "diffuse-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def diffuse(W, y, alpha=0.99, tol=1e-6, max_iterations=20):
    """x (n,): L_alpha x = y, L_alpha = (I - alpha W) / (1 - alpha), by conjugate gradients from 0."""
    ### BEGIN SOLUTION
    def apply(v):  # L_alpha v
        return (v - alpha * (W @ v)) / (1 - alpha)

    return solvers.conjugate_gradient(apply, y, tol=tol, max_iterations=max_iterations).x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "diffuse-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def diffuse_of(W_r, y_r, alpha_r, **options_r):
    with own_work(*SOLVERS, stage=9, what="diffuse"):
        x_r = diffuse(W_r.clone(), torch.as_tensor(y_r, dtype=torch.float64).clone(), alpha_r, **options_r)
    check(isinstance(x_r, torch.Tensor), "diffuse must return a torch tensor")
    return check_shape(x_r.detach().cpu().double().numpy(), (W_r.shape[0],), "x")


W_r = random_graph(12, 7)
y_r = np.zeros(12)
y_r[[0, 3]] = [1.0, 0.5]
check_close(diffuse_of(torch.tensor(W_r), y_r, 0.9, tol=1e-13, max_iterations=500), exact_diffusion(W_r, y_r, 0.9),
            "x converged, against a dense solve (alpha 0.9)", tol=1e-9)
# One CG step from 0 goes along the residual y: x1 = (y.y / y.L y) y, whatever the scale of the system
L_r = (np.eye(12) - 0.9 * W_r) / 0.1
check_close(diffuse_of(torch.tensor(W_r), y_r, 0.9, tol=0.0, max_iterations=1), (y_r @ y_r) / (y_r @ L_r @ y_r) * y_r,
            "x after one CG step on L_alpha", tol=1e-10)
### BEGIN HIDDEN TESTS
for case_h, alpha_h in enumerate((0.5, 0.9, 0.99, 0.8)):
    n_h = 20 + 10 * case_h
    W_h = random_graph(n_h, 190 + case_h, 0.15)
    y_h = np.maximum(np.random.default_rng(290 + case_h).normal(size=n_h), 0) ** 3
    W_t_h = torch.tensor(W_h) if case_h % 2 else torch.tensor(W_h).to_sparse()
    x_h = diffuse_of(W_t_h, y_h, alpha_h, tol=1e-13, max_iterations=1000)
    check_close(x_h, exact_diffusion(W_h, y_h, alpha_h), f"x converged on random graph {case_h} (alpha {alpha_h})", tol=1e-8,
                atol=1e-14)
    L_h = (np.eye(n_h) - alpha_h * W_h) / (1 - alpha_h)
    x1_h = diffuse_of(W_t_h, y_h, alpha_h, tol=0.0, max_iterations=1)
    check_close(x1_h, (y_h @ y_h) / (y_h @ L_h @ y_h) * y_h, f"one CG step on L_alpha (case {case_h})", tol=1e-9)
# the stopping rule: the defaults stop after 20 steps at alpha 0.99 on a long path, short of the solution
path_h = np.zeros((300, 300))
path_h[np.arange(299), np.arange(1, 300)] = 1
path_h = path_h + path_h.T
W_h = path_h / np.sqrt(np.outer(path_h.sum(1), path_h.sum(1)))
y_h = np.zeros(300)
y_h[0] = 1.0
x20_h = diffuse_of(torch.tensor(W_h), y_h, 0.99)
x21_h = diffuse_of(torch.tensor(W_h), y_h, 0.99, tol=1e-6, max_iterations=21)
check(np.abs(x20_h - x21_h).max() > 1e-9, "with the defaults, CG stops after max_iterations = 20 steps")
check(np.count_nonzero(np.abs(x20_h) > 1e-300) <= 21, "after 20 CG steps from y = e_0 on a path, x reaches 21 items at most")
### END HIDDEN TESTS

# %% [markdown]
# **The moons, ranked.** Your diffusion (coursekit's until it is written), from the query vector of the query's $k_q
# = 5$ nearest points, converged here (a tolerance of $10^{-10}$): each point coloured by its rank, the top 100 drawn
# large. The share of the top 100 that lies on the query's own moon says which ranking follows the manifold.

# %% nbgrader={"grade": false, "grade_id": "moons-ranking", "locked": true, "schema_version": 3, "solution": false, "task": false}
query_vector_now = yours_or(query_vector, diffusion.query_vector, "the query vector")
diffuse_now = yours_or(diffuse, lambda W, y, alpha, tol, max_iterations: diffusion.diffusion(W, y, alpha, tol, max_iterations),
                       "diffusion")
moon_y = query_vector_now(kernel[QUERY_POINT].clone(), 5, GAMMA)
MOON_SCORES = {"Euclidean": -torch.cdist(moon_points[QUERY_POINT:QUERY_POINT + 1], moon_points)[0],
               "diffusion": diffuse_now(MOON_W, moon_y, ALPHA, 1e-10, 2000)}
ON_MOON = {}
fig, axes = plots.new_figure(2, width=5, height=3.4)
for ax, (name, score) in zip(axes, MOON_SCORES.items()):
    order = torch.argsort(score.cpu(), descending=True, stable=True).numpy()
    rank = np.empty(len(order))
    rank[order] = np.arange(len(order))
    ON_MOON[name] = float((MOON_OF[order[:TOP]] == MOON_OF[QUERY_POINT]).mean())
    ax.scatter(MOONS[:, 0], MOONS[:, 1], c=rank, cmap="viridis_r", s=8)
    ax.scatter(MOONS[order[:TOP], 0], MOONS[order[:TOP], 1], c=rank[order[:TOP]], cmap="viridis_r", s=26, vmin=0,
               vmax=len(order))
    ax.plot(*MOONS[QUERY_POINT], "r*", ms=15)
    ax.set(aspect="equal", xticks=[], yticks=[], title=f"{name}: {100 * ON_MOON[name]:.0f}% of the top {TOP} on its moon")
plots.show(fig)
converged = MOON_SCORES["diffusion"]
for iterations in (5, 10, 20, 50):
    early = diffuse_now(MOON_W, moon_y, ALPHA, 1e-6, iterations)
    share = float((MOON_OF[torch.argsort(early, descending=True)[:TOP].numpy()] == MOON_OF[QUERY_POINT]).mean())
    print(f"{iterations:3d} CG iterations: relative error {float((early - converged).norm() / converged.norm()):.3f}, "
          f"{100 * share:.0f}% of the top {TOP} on the query's moon")

if not coursekit.under_grading():  # the autograder skips the widget
    from coursekit.explore.graphs import DiffusionExplorer

    tips = [QUERY_POINT, int(np.argmin(MOONS[:, 0])), int(np.argmax(MOONS[:, 1] * (MOON_OF == 1) - 10 * (MOON_OF != 1)))]
    display(DiffusionExplorer(MOONS, MOON_OF, tips, k=K_MOONS, gamma=GAMMA, alpha=ALPHA, bandwidth=BANDWIDTH, top=TOP))

# %% [markdown]
# Twenty iterations at $\alpha = 0.99$ are not a converged solve: on this graph of 300 points the solution of twenty
# steps differs from the converged one by the relative error printed above. That is the authors' choice, made for
# speed: what matters is the top of the ranking, and it settles long before the tail does. In the explorer, $\alpha$
# sets how far the walks go (at 0.5 diffusion is barely more than the query's neighbours; near 1 it fills the whole
# moon), $k$ how many shortcuts between moons the graph has, and $\gamma$ how much the weak ones count.
#
# ## 3. Diffusion on the retrieval set
#
# The images of stage 07's benchmark, described as in stage 08 (`discovery.table_descriptors` runs stage 08's
# pipeline from the head's maps, kept in the data cache: MAC and R-MAC whitened, and the EGM descriptors pooled over
# the regions found on feature saliency, FS, and on object saliency, OS). **Global diffusion** is section 2 with one
# node per image: the reciprocal $k$-NN graph of the database's descriptors ($k = 50$ in the paper, fewer for the
# fast budget's 150 images), the query vector of its $k_q = 10$ nearest images, 20 CG iterations at $\alpha = 0.99$.
# For a few thousand images coursekit's sparse versions of your functions build the graph (`knn.knn_affinity`,
# `knn.symmetric_normalise`, `diffusion.diffusion`: the same formulas, stored sparse, all queries solved at once).
# The mAP is the Revisited protocols' (Easy, Medium, Hard), without diffusion ("kNN") and with it ("QE", as Table 1
# calls it).

# %% nbgrader={"grade": false, "grade_id": "global-diffusion", "locked": true, "schema_version": 3, "solution": false, "task": false}
started = time.perf_counter()
DATABASE_MAPS = descriptors.cached_feature_maps(network, benchmark.images, "head", batch_size=16)
TRAINING_MAPS = descriptors.cached_feature_maps(network, training.images, "head", batch_size=16)
QUERY_MAPS = [descriptors.cached_feature_maps(network, crop[None], "head").float() for crop in benchmark.query_crops()]
TABLE_1 = discovery.table_descriptors(DATABASE_MAPS, TRAINING_MAPS, QUERY_MAPS, extent=1.0,
                                      whiten_dim=BUDGET.pick(full=256, fast=128), k=BUDGET.pick(full=50, fast=20))
print(f"stage 08's descriptors in {time.perf_counter() - started:.1f} s")
K_GLOBAL, K_QUERY = BUDGET.pick(full=50, fast=10), 10
ALPHAS = (0.5, 0.9, 0.99)


def diffusion_ranks(W, queries, database, k_q, alpha, max_iterations=20):
    """Each query's database ids ranked by diffusion on the graph W of the database."""
    y = diffusion.query_vectors(queries.double(), database.double(), k_q, GAMMA)
    return diffusion.diffusion(W, y, alpha, 1e-6, max_iterations).T.argsort(dim=1, descending=True)


def revisited(ranks):
    return evaluation.revisited_map(ranks, benchmark.gnd)


RESULTS, GRAPHS, GRAPH_SECONDS = {}, {}, {}
for name, (q, d) in TABLE_1.methods.items():
    started = time.perf_counter()
    GRAPHS[name] = knn.symmetric_normalise(knn.knn_affinity(d.double(), K_GLOBAL, GAMMA))  # reciprocal k-NN, W
    GRAPH_SECONDS[name] = time.perf_counter() - started
    RESULTS[name, "kNN"] = revisited(evaluation.ranking(q, d))
    for alpha in ALPHAS:
        RESULTS[name, f"QE {alpha}"] = revisited(diffusion_ranks(GRAPHS[name], q, d, K_QUERY, alpha))
print(f"{'method':>16}  {'':>12}   easy medium   hard")
for (name, how), result in RESULTS.items():
    print(f"{name:>16}  {how:>12}  {100 * result['easy'].map:6.2f} {100 * result['medium'].map:6.2f} "
          f"{100 * result['hard'].map:6.2f}")
MAC_Q, MAC_D = TABLE_1.methods["MAC"]
MAC_W = GRAPHS["MAC"]
converged_mac = revisited(diffusion_ranks(MAC_W, MAC_Q, MAC_D, K_QUERY, ALPHA, max_iterations=1000))
print(f"MAC, QE 0.99 solved to convergence (1000 iterations): medium mAP {100 * converged_mac['medium'].map:.2f}, "
      f"against {100 * RESULTS['MAC', 'QE 0.99']['medium'].map:.2f} after 20")
# your diffusion (coursekit's until it is written) against scipy's CG on the same system, both converged
first_y = diffusion.query_vectors(MAC_Q[:1].double(), MAC_D.double(), K_QUERY, GAMMA)[:, 0]
yours = diffuse_now(MAC_W, first_y.clone(), ALPHA, 1e-12, 2000).cpu().numpy()
laplacian = (scipy.sparse.eye_array(len(MAC_D)) - ALPHA * sparse.torch_to_scipy(MAC_W)) / (1 - ALPHA)
by_scipy, _ = scipy.sparse.linalg.cg(laplacian, first_y.cpu().numpy(), rtol=1e-12, maxiter=2000)
print(f"the first query's diffusion against scipy.sparse.linalg.cg: max |x - x_scipy| / max |x_scipy| = "
      f"{np.abs(yours - by_scipy).max() / np.abs(by_scipy).max():.1e}")

# %% [markdown]
# **Regional diffusion.** The paper's best results come from regions: each database image contributes several
# nodes, the graph links regions ($k = 200$ in the paper), and a query's vector sums, for each database region, the
# similarities of all the query's regions (your `query_vector` on an `(r, n)` input). After diffusion an image scores
# the weighted sum of its regions' scores, with **generalised max-pooling** weights (Murray & Perronnin): for an image
# whose regions are the rows of $V$ `(r, d)`, the weights $w$ `(r,)` solve
# $$(V V^\top + \lambda I)\,w = \mathbf 1, \qquad \lambda = 1,$$
# so that the pooled vector $V^\top w$ has about the same similarity to each of its regions: a region repeated many
# times does not outweigh a distinct one (the authors' `gmpweights`; in their column convention $V^\top V$).
#
# ### Exercise 3.1 — GMP weights
# Write `gmp_weights(V, lam=1.0)`: `V (r, d)` float64 torch, one image's regional descriptors as rows; return $w$
# `(r,)`, float64 (a linear solve of size $r$: `torch.linalg.solve` is allowed here).

# %% nbgrader={"grade": false, "grade_id": "gmp-weights-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gmp_weights(V, lam=1.0):
    """w (r,): (V V^T + lam I) w = 1 for one image's regions V (r, d)."""
    ### BEGIN SOLUTION
    gram = V @ V.T + lam * torch.eye(len(V), dtype=V.dtype, device=V.device)
    return torch.linalg.solve(gram, torch.ones(len(V), dtype=V.dtype, device=V.device))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gmp-weights-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def gmp_of(V_r, lam_r=1.0):
    with own_work(stage=9, what="gmp_weights"):
        w_r = gmp_weights(torch.as_tensor(V_r, dtype=torch.float64).clone(), lam_r)
    check(isinstance(w_r, torch.Tensor), "gmp_weights must return a torch tensor")
    return check_shape(w_r.detach().cpu().double().numpy(), (len(V_r),), "w")


# By hand: two orthogonal unit regions, V V^T = I: w = 1 / (1 + lam); a region given twice and one apart
check_close(gmp_of(np.eye(2, 3)), np.array([0.5, 0.5]), "w of two orthogonal regions", tol=1e-12)
check_close(gmp_of(np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]]), 1.0), np.array([1 / 3, 1 / 3, 1 / 2]),
            "w of a repeated region and a distinct one", tol=1e-12)
### BEGIN HIDDEN TESTS
gen_h = np.random.default_rng(94)
for case_h in range(8):
    r_h, d_h = int(gen_h.integers(1, 9)), int(gen_h.integers(2, 20))
    V_h = gen_h.normal(size=(r_h, d_h))
    V_h /= np.linalg.norm(V_h, axis=1, keepdims=True)
    lam_h = (1.0, 0.1, 3.0)[case_h % 3]
    w_h = gmp_of(V_h, lam_h)
    check_close((V_h @ V_h.T + lam_h * np.eye(r_h)) @ w_h, np.ones(r_h), f"(V V^T + lam I) w = 1 (case {case_h})", tol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# The regions are the FS regions of stage 08 (one to three per image, each described by its whitened regional MAC);
# a query's regions are found on its own FS. The graph of all the database's regions, $k$ = 200 in the paper (fewer
# here: there are about two regions per image, and the fast budget has 300 regions in all), the query vector from
# its $k_q = k$ most similar regions. **Truncation** is the authors' way to large collections: for each query, only
# the shortlist of its $m$ most similar images by a global descriptor (MAC here) and their regions, the affinity
# restricted to them and normalised again, and diffusion on that small graph (`diffusion.truncated_diffusion`); every
# other image scores 0, after the shortlist's.

# %% nbgrader={"grade": false, "grade_id": "regional-diffusion", "locked": true, "schema_version": 3, "solution": false, "task": false}
REGIONS, REGION_DESCRIPTORS = TABLE_1.regions, TABLE_1.descriptors.double()
K_REGIONS = BUDGET.pick(full=200, fast=20)
SHORTLIST = BUDGET.pick(full=500, fast=50)
gmp_now = yours_or(gmp_weights, lambda V, lam: diffusion.gmp_weights(V, torch.zeros(len(V), dtype=torch.int64), lam),
                   "the GMP weights")
GMP = torch.zeros(len(REGIONS.image), dtype=torch.float64, device=REGION_DESCRIPTORS.device)
for n in range(len(benchmark.images)):
    rows = torch.nonzero(REGIONS.image == n).flatten()
    if len(rows):
        GMP[rows] = gmp_now(REGION_DESCRIPTORS[rows], 1.0).to(GMP)
REGION_A = knn.knn_affinity(REGION_DESCRIPTORS, K_REGIONS, GAMMA)
REGION_W = knn.symmetric_normalise(REGION_A)
region_y = torch.stack([query_vector_now((regions.double() @ REGION_DESCRIPTORS.T).clone(), K_REGIONS, GAMMA)
                        for regions in TABLE_1.query_descriptors], dim=1)  # (R, Q)
images_count = len(benchmark.images)


def image_ranks(region_scores):
    """Images ranked by their regions' GMP-weighted scores (an image without regions last)."""
    scores = diffusion.pool_to_images(region_scores, REGIONS.image, images_count, GMP)
    has_regions = REGIONS.count(images_count) > 0
    return torch.where(has_regions[:, None], scores, -torch.inf).T.argsort(dim=1, descending=True)


MAC_ORDER = evaluation.ranking(MAC_Q, MAC_D)  # (Q, N): the shortlists come from MAC


def truncated_ranks(alpha):
    """Each query's shortlist of MAC's first SHORTLIST images ranked by diffusion on its regions' subgraph, then
    the rest of the database in MAC's order."""
    ranks = []
    for q in range(len(MAC_Q)):
        shortlist = MAC_ORDER[q, :SHORTLIST]
        keep = torch.nonzero(torch.isin(REGIONS.image, shortlist)).flatten()
        scores = diffusion.pool_to_images(diffusion.truncated_diffusion(REGION_A, region_y[:, q], keep, alpha),
                                          REGIONS.image, images_count, GMP)
        inside = shortlist[torch.argsort(scores[shortlist], descending=True, stable=True)]
        ranks.append(torch.cat([inside, MAC_ORDER[q, SHORTLIST:]]))
    return torch.stack(ranks)


RESULTS["FS regions", "kNN (summed)"] = revisited(image_ranks(region_y))
for alpha in ALPHAS:
    RESULTS["FS regions", f"QE {alpha}"] = revisited(image_ranks(diffusion.diffusion(REGION_W, region_y, alpha)))
    RESULTS["FS regions", f"trunc. {alpha}"] = revisited(truncated_ranks(alpha))
for (name, how), result in RESULTS.items():
    if name == "FS regions":
        print(f"{name:>16}  {how:>12}  {100 * result['easy'].map:6.2f} {100 * result['medium'].map:6.2f} "
              f"{100 * result['hard'].map:6.2f}")
print(f"{len(REGIONS.image)} regions, {REGION_A._nnz() // 2} reciprocal edges (k = {K_REGIONS}); GMP weights from "
      f"{float(GMP.min()):.2f} to {float(GMP.max()):.2f}")

# %% [markdown]
# **Table 1, completed.** The rows of stage 08's Table 1 with their diffusion (the paper's QE column), and the
# regional diffusion of the FS regions, measured above. *What the numbers say* is written below the costs table of
# section 4, with the figures of both budgets.
#
# ## 4. Searching on manifolds as smoothing: fast spectral ranking
#
# $W$ is symmetric: $W = U \Lambda U^\top$ with orthonormal eigenvectors $U$ and eigenvalues $\lambda_j \in [-1, 1]$.
# Then
# $$\mathcal L_\alpha^{-1} = (1-\alpha)(I - \alpha W)^{-1} = U\, h_\alpha(\Lambda)\, U^\top = h_\alpha(W),\qquad
# h_\alpha(\lambda) = \frac{1 - \alpha}{1 - \alpha\lambda}:$$
# diffusion is a **filter on the graph's spectrum**. $h_\alpha(1) = 1$ and $h_\alpha(-1) = (1-\alpha)/(1+\alpha)$
# ($0.005$ at $\alpha = 0.99$): a low-pass filter, which keeps the smooth eigenvectors (eigenvalues near 1, nearly
# constant along each well-connected part of the graph) and damps the rest. So the largest $r$ eigenpairs alone,
# computed once offline by a Lanczos solver (scipy's `eigsh`, `diffusion.spectral_basis`), give the rank-$r$
# approximation
# $$x \approx U_r\, h_\alpha(\Lambda_r)\, U_r^\top y,$$
# and a query costs two products with an $n \times r$ matrix instead of a sparse solve. Better still, with the
# **explicit embedding** $E = U_r\, h_\alpha(\Lambda_r)^{1/2}$ `(n, r)` (row $i$ the new descriptor of item $i$; $h_\alpha
# > 0$ on $[-1, 1]$, so the root is real), $x^\top = (y^\top E)\,E^\top$: the query is the single vector $y^\top E$,
# and the search a dot product with every row, as plain $k$-NN search is.

# %% nbgrader={"grade": false, "grade_id": "spectrum", "locked": true, "schema_version": 3, "solution": false, "task": false}
MAX_RANK = min(BUDGET.pick(full=400, fast=100), len(MAC_D) - 2)
started = time.perf_counter()
VALUES, VECTORS = diffusion.spectral_basis(MAC_W, MAX_RANK)
EIGEN_SECONDS = time.perf_counter() - started
dense_values = scipy.linalg.eigh(MAC_W.to_dense().cpu().numpy(), eigvals_only=True)[::-1]
print(f"the {MAX_RANK} largest eigenvalues of W ({len(MAC_D)} images, k = {K_GLOBAL}) by eigsh in {EIGEN_SECONDS:.2f} s; "
      f"largest difference from a dense eigh: {np.abs(VALUES.cpu().numpy() - dense_values[:MAX_RANK]).max():.1e}; "
      f"eigenvalues equal to 1 (one per connected part): {int((np.abs(dense_values - 1) < 1e-9).sum())}")
fig, (ax_spectrum, ax_filter) = plots.new_figure(2, width=5, height=3.2)
ax_spectrum.hist(dense_values, bins=60, color="0.6")
ax_spectrum.hist(VALUES.cpu().numpy(), bins=60, range=(dense_values.min(), 1), color="tab:red", label=f"the {MAX_RANK} kept")
ax_spectrum.set(xlabel="eigenvalue of W", ylabel="count", title="the spectrum of the MAC graph")
ax_spectrum.legend(fontsize=8)
grid = np.linspace(-1, 1, 400)
for alpha in ALPHAS:
    ax_filter.plot(grid, diffusion.transfer(grid, alpha), label=f"alpha {alpha}")
ax_filter.set(xlabel="eigenvalue lambda", ylabel="h_alpha(lambda)", yscale="log", title="diffusion as a low-pass filter")
ax_filter.legend(fontsize=8)
plots.show(fig)

# %% [markdown]
# ### Exercise 4.1 — Spectral ranking
# Write `spectral_ranking(values, vectors, y, alpha=0.99)`: `values (r,)` and `vectors (n, r)` the largest eigenpairs
# of $W$ (float64 torch), `y (n,)`; return $x = U_r h_\alpha(\Lambda_r) U_r^\top y$ `(n,)`. No solver: the point is
# that none is needed.

# %% nbgrader={"grade": false, "grade_id": "spectral-ranking-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def spectral_ranking(values, vectors, y, alpha=0.99):
    """x (n,) = U h(Lambda) U^T y, h(lambda) = (1 - alpha) / (1 - alpha lambda): rank-r diffusion."""
    ### BEGIN SOLUTION
    h = (1 - alpha) / (1 - alpha * values)
    return vectors @ (h * (vectors.T @ y))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "spectral-ranking-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def spectral_of(values_r, vectors_r, y_r, alpha_r):
    arguments_r = [torch.as_tensor(a, dtype=torch.float64).clone() for a in (values_r, vectors_r, y_r)]
    with own_work(*SOLVERS, stage=9, what="spectral_ranking"):
        x_r = spectral_ranking(*arguments_r, alpha_r)
    check(isinstance(x_r, torch.Tensor), "spectral_ranking must return a torch tensor")
    return check_shape(x_r.detach().cpu().double().numpy(), (np.shape(vectors_r)[0],), "x")


# By hand: two linked items, W = [[0, 1], [1, 0]]: eigenvalues 1 and -1, vectors (1, 1)/sqrt 2 and (1, -1)/sqrt 2
check_close(spectral_of([1.0, -1.0], PAIR_VECTORS, [1.0, 0.0], 0.5), np.array([2 / 3, 1 / 3]),
            "x on two linked items (alpha 0.5, full rank)", tol=1e-12)
check_close(spectral_of([1.0], PAIR_VECTORS[:, :1], [1.0, 0.0], 0.5), np.array([0.5, 0.5]),
            "x on two linked items (alpha 0.5, rank 1)", tol=1e-12)
### BEGIN HIDDEN TESTS
for case_h, alpha_h in enumerate((0.99, 0.9, 0.5, 0.95)):
    n_h = 15 + 7 * case_h
    W_h = random_graph(n_h, 490 + case_h, 0.2)
    y_h = np.maximum(np.random.default_rng(590 + case_h).normal(size=n_h), 0)
    check_close(spectral_of(*top_eigenpairs(W_h, n_h), y_h, alpha_h), exact_diffusion(W_h, y_h, alpha_h),
                f"full rank equals the exact diffusion (case {case_h}, alpha {alpha_h})", tol=1e-8, atol=1e-14)
    r_h = 1 + case_h * 3
    values_h, vectors_h = top_eigenpairs(W_h, r_h)
    expected_h = sum((1 - alpha_h) / (1 - alpha_h * lam) * (v @ y_h) * v for lam, v in zip(values_h, vectors_h.T))
    check_close(spectral_of(values_h, vectors_h, y_h, alpha_h), expected_h, f"rank {r_h} (case {case_h})", tol=1e-10,
                atol=1e-14)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4.2 — The explicit embedding
# Write `spectral_embedding(values, vectors, alpha=0.99)`: the same eigenpairs; return $E = U_r h_\alpha(\Lambda_r)^{1/2}$
# `(n, r)`, float64, so that $(y^\top E) E^\top$ is the rank-$r$ ranking of exercise 4.1.

# %% nbgrader={"grade": false, "grade_id": "spectral-embedding-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def spectral_embedding(values, vectors, alpha=0.99):
    """E (n, r) = U h(Lambda)^1/2: item i's new descriptor is row i; dot products give the ranking."""
    ### BEGIN SOLUTION
    h = (1 - alpha) / (1 - alpha * values)
    return vectors * torch.sqrt(h)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "spectral-embedding-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def embedding_of(values_r, vectors_r, alpha_r):
    arguments_r = [torch.as_tensor(a, dtype=torch.float64).clone() for a in (values_r, vectors_r)]
    with own_work(*SOLVERS, stage=9, what="spectral_embedding"):
        E_r = spectral_embedding(*arguments_r, alpha_r)
    check(isinstance(E_r, torch.Tensor), "spectral_embedding must return a torch tensor")
    return check_shape(E_r.detach().cpu().double().numpy(), np.shape(vectors_r), "E")


check_close(embedding_of([1.0, -1.0], PAIR_VECTORS, 0.5), PAIR_VECTORS * np.sqrt([1.0, 1 / 3]),
            "E of two linked items (alpha 0.5)", tol=1e-12)
### BEGIN HIDDEN TESTS
for case_h, alpha_h in enumerate((0.99, 0.7, 0.9)):
    n_h = 20 + 9 * case_h
    W_h = random_graph(n_h, 690 + case_h, 0.25)
    values_h, vectors_h = top_eigenpairs(W_h, 2 + 4 * case_h)
    E_h = embedding_of(values_h, vectors_h, alpha_h)
    h_h = (1 - alpha_h) / (1 - alpha_h * values_h)
    check_close(E_h @ E_h.T, vectors_h @ np.diag(h_h) @ vectors_h.T, f"E E^T = U h U^T (case {case_h})", tol=1e-10,
                atol=1e-14)
    y_h = np.maximum(np.random.default_rng(790 + case_h).normal(size=n_h), 0)
    check_close((y_h @ E_h) @ E_h.T, vectors_h @ (h_h * (vectors_h.T @ y_h)), f"(y^T E) E^T is the ranking (case {case_h})",
                tol=1e-10, atol=1e-14)
### END HIDDEN TESTS

# %% [markdown]
# **Rank, accuracy and query time.** For each rank $r$, the embedding of your function (coursekit's until it is
# written) ranks the database for every query by dot products; against it, the converged diffusion (the exact
# $\mathcal L_\alpha^{-1}y$) and CG's 20 iterations. The error is $\lVert x_r - x\rVert / \lVert x\rVert$ over the
# queries, the mAP the Revisited Medium protocol's.

# %% nbgrader={"grade": false, "grade_id": "trade-off", "locked": true, "schema_version": 3, "solution": false, "task": false}
embedding_now = yours_or(spectral_embedding, diffusion.spectral_embedding, "the spectral embedding")
MAC_Y = diffusion.query_vectors(MAC_Q.double(), MAC_D.double(), K_QUERY, GAMMA)  # (n, Q)
EXACT = diffusion.diffusion(MAC_W, MAC_Y, ALPHA, 1e-10, 2000)
RANKS = [r for r in (2, 5, 10, 20, 50, 100, 200, 400) if r <= MAX_RANK]


def seconds_per_query(search, repeats=3):
    """Seconds per query of ``search()``, which ranks every query (the device's queue emptied before the clock stops)."""
    wait = torch.cuda.synchronize if MAC_D.is_cuda else (lambda: None)
    search()
    wait()
    started = time.perf_counter()
    for _ in range(repeats):
        search()
    wait()
    return (time.perf_counter() - started) / repeats / len(MAC_Q)


TRADE = {}
for r in RANKS:
    E = embedding_now(VALUES[:r].clone(), VECTORS[:, :r].clone(), ALPHA)
    scores = (MAC_Y.T @ E) @ E.T  # (Q, n)
    TRADE[r] = (float((scores.T - EXACT).norm() / EXACT.norm()), revisited(scores.argsort(dim=1, descending=True))["medium"].map,
                seconds_per_query(lambda E=E: ((MAC_Y.T @ E) @ E.T).argsort(dim=1, descending=True)))
cg_seconds = seconds_per_query(lambda: diffusion.diffusion(MAC_W, MAC_Y, ALPHA).T.argsort(dim=1, descending=True))
knn_seconds = seconds_per_query(lambda: (MAC_Q @ MAC_D.T).argsort(dim=1, descending=True))
cg_medium = RESULTS["MAC", "QE 0.99"]["medium"].map
fig, (ax_error, ax_time) = plots.new_figure(2, width=5, height=3.2)
ax_error.semilogx(RANKS, [TRADE[r][0] for r in RANKS], "o-", color="tab:red", label="relative error")
ax_error.set(xlabel="rank r", ylabel="|x_r - x| / |x|", title="spectral ranking against the exact diffusion")
ax_map = ax_error.twinx()
ax_map.semilogx(RANKS, [100 * TRADE[r][1] for r in RANKS], "s--", color="tab:blue", label="mAP (Medium)")
ax_map.axhline(100 * cg_medium, color="tab:blue", lw=0.8, ls=":", label="CG, 20 iterations")
ax_map.set(ylabel="mAP (Medium), %")
ax_map.legend(fontsize=8, loc="center right")
ax_time.loglog(RANKS, [1e6 * TRADE[r][2] for r in RANKS], "o-", label="spectral (rank r)")
ax_time.axhline(1e6 * cg_seconds, color="tab:orange", label="CG, 20 iterations")
ax_time.axhline(1e6 * knn_seconds, color="0.4", ls="--", label="k-NN search")
ax_time.set(xlabel="rank r", ylabel="microseconds per query", title="query time")
ax_time.legend(fontsize=8)
plots.show(fig)
for r in RANKS:
    print(f"rank {r:4d}: relative error {TRADE[r][0]:.3f}, mAP (Medium) {100 * TRADE[r][1]:6.2f}, "
          f"{1e6 * TRADE[r][2]:8.1f} us per query")

if not coursekit.under_grading():  # the autograder skips the widget
    from coursekit.explore.graphs import SpectralExplorer

    display(SpectralExplorer(MAC_W, MAC_Y, alpha=ALPHA, max_rank=min(MAX_RANK, 100), exact=EXACT))

# %% [markdown]
# **Offline and online costs.** What each method stores and spends, measured in this run on this device: the graph
# (its construction, and the sparse $W$: an index pair and a value per edge), the eigendecomposition and the
# embedding ($n \times r$), against the descriptors themselves and plain $k$-NN search. (For a hundred thousand images
# and more, `benchmarks/diffusion.py` measures the graph and the queries, exact and approximate.)

# %% nbgrader={"grade": false, "grade_id": "costs", "locked": true, "schema_version": 3, "solution": false, "task": false}
edges = MAC_W._nnz()
rank_kept = max(RANKS)
COSTS = {
    "k-NN search": ("-", f"{MAC_D.numel() * MAC_D.element_size() / 1024:.0f} kB descriptors", knn_seconds),
    "diffusion, CG 20 its": (f"graph {GRAPH_SECONDS['MAC']:.2f} s", f"+ {edges * (2 * 8 + 8) / 1024:.0f} kB graph ({edges} entries)",
                             cg_seconds),
    f"spectral, rank {rank_kept}": (f"graph + eigsh {GRAPH_SECONDS['MAC'] + EIGEN_SECONDS:.2f} s",
                                    f"{len(MAC_D) * rank_kept * 8 / 1024:.0f} kB embedding", TRADE[rank_kept][2]),
}
print(f"{'method':>22}  {'offline':>22}  {'memory':>30}  query time")
for name, (offline, memory, seconds) in COSTS.items():
    print(f"{name:>22}  {offline:>22}  {memory:>30}  {1e6 * seconds:8.1f} us")

# %% [markdown]
# **What the numbers say.** Measured on a 2-core CPU (2026-12-04) in both budgets: the fast one (150 database
# images, 12 queries) and the full one (2,400 images, 66 queries); mAP Medium, in percent.
#
# - **The moons**: straight distance puts 27% of its top 100 on the query's moon, diffusion 100% (converged); CG's
#   20 iterations leave a relative error of 0.025 and 97% on the moon, 10 iterations 0.21 and 50%.
# - **Global diffusion at the authors' $\alpha = 0.99$ hurts every descriptor here**: MAC 48.9 → 29.4 (fast), 41.1 →
#   32.4 (full); R-MAC, FS.EGM, OS.EGM and OS.EGM-4 alike. It is not the unconverged solve: solved to convergence
#   the full budget's MAC gives 32.35 as after 20 iterations. **A short walk helps**: at $\alpha = 0.5$ MAC goes to
#   48.9 (fast, unchanged) and 52.0 (full, +11), and every descriptor of the full budget gains 8 to 10 points. The
#   diffusion papers' databases have many images of each object, a dense manifold that long walks follow; here
#   an object has a handful of images, each a small instance in its own clutter, and long walks leave the
#   object for images of similar backgrounds. Stage 08's ordering of the descriptors (MAC first, the EGM ones a
#   little behind) stays the same with diffusion: Table 1's QE rows do not reverse it here, as they do in the paper.
# - **Regional diffusion**: the GMP-pooled region scores without diffusion are 47.4 (fast) and 40.9 (full), diffusion
#   at $\alpha = 0.5$ gives 54.4 and 50.9, at 0.9 52.5 and 49.5, and at 0.99 it collapses (21.1, 18.0). Truncated to
#   the shortlist of MAC's first 50 (fast) or 500 (full) images it keeps most of the gain at 0.5 (53.8, 48.0) and
#   loses less at 0.99 (34.4, 28.6): the shortlist bounds how far a walk can drift.
# - **Spectral ranking** (at $\alpha = 0.99$, the exact diffusion its reference): the relative error falls with the
#   rank (0.20 at rank 2, 0.013 at 100 of 150 images; 0.28 at 2, 0.064 at 400 of 2,400), and the mAP follows it up
#   to about rank 50, where the full budget's 34.9 is above the exact diffusion's 32.4: the low-rank filter keeps
#   only the smoothest components and behaves as a shorter walk would. A query costs dot products with the
#   embedding: 0.09 to 0.17 ms against 0.5 ms for 20 CG iterations and 0.09 ms for plain $k$-NN (full budget, this
#   CPU); the eigendecomposition of the 2,400-image graph took 1.6 s once. `benchmarks/diffusion.py` measures the
#   same at 10,000 and 100,000 items.

# %% nbgrader={"grade": false, "grade_id": "lessons", "locked": true, "schema_version": 3, "solution": false, "task": false}
check(ON_MOON["diffusion"] > ON_MOON["Euclidean"] + 0.2, "on the moons, diffusion should follow the query's moon")
full_values, full_vectors = (torch.from_numpy(a.copy()) for a in np.linalg.eigh(MOON_W.cpu().numpy()))
full_rank = diffusion.spectral_ranking(full_values, full_vectors, moon_y.cpu().double(), ALPHA)
check(float((full_rank - converged.cpu()).norm() / converged.norm()) < 1e-6,
      "at full rank the spectral ranking should be the converged diffusion")
check(TRADE[max(RANKS)][0] < TRADE[min(RANKS)][0], "a larger rank should approximate the diffusion better")
check(RESULTS["MAC", "QE 0.99"]["medium"].map < RESULTS["MAC", "kNN"]["medium"].map,
      "on this benchmark, long walks (alpha 0.99) should lose MAC's ranking")
check(RESULTS["FS regions", "QE 0.5"]["medium"].map > RESULTS["FS regions", "kNN (summed)"]["medium"].map + 0.03,
      "a short walk (alpha 0.5) should improve the regional search")
check(all(result["easy"].map > 0.2 for (_, how), result in RESULTS.items() if how.startswith("kNN")),
      "every descriptor should retrieve far better than chance without diffusion")
print("the lessons hold in this run")

# %% [markdown] nbgrader={"grade": true, "grade_id": "manifold-question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Question (2 points).** On the moons, diffusion found the query's moon where straight distance did not; on this
# benchmark, diffusing one descriptor per image did not help MAC. What does diffusion assume about how a database is
# laid out, and which of these assumptions fail here? What does $\alpha$ trade, and when would you truncate the
# graph or use the spectral embedding instead of solving by CG for each query?
#
# ### BEGIN SOLUTION
# Diffusion assumes that the images relevant to a query lie on a connected, densely sampled manifold: a chain of
# images, each close to the next (the same object from slowly changing viewpoints), so that relevance spreads along
# the reciprocal k-NN edges and reaches images that are far from the query in straight distance. It also assumes
# that the query's nearest neighbours (its y) are mostly relevant, and that the graph has few edges between different
# objects. On the moons all of this holds by construction. Here it fails: each object has only a handful of
# images, each a small pasted instance in a different cluttered photo, so the relevant images do not form a chain;
# a global descriptor of a cluttered photo is dominated by the background, so the reciprocal neighbours of an image
# are often images with a similar background, and diffusion spreads the query's score along the clutter. Regions
# help where they isolate the object; with EGM's coarse regions they mostly do not.
#
# alpha sets the length of the walks: near 0 the ranking is y itself (the query's k_q neighbours, then nothing);
# near 1 the walks are long, the ranking reaches far along the manifold, and also across any wrong edge; and the
# system is harder to solve (CG needs more iterations as the condition number (1 + alpha) / (1 - alpha) grows).
# Truncation bounds the cost of a query on a large collection: diffusion on the shortlist's subgraph only, at the
# price of never reaching an image outside the shortlist. The spectral embedding moves the cost offline (an
# eigendecomposition once) and makes each query a dot-product search, the fastest online, but the rank r limits how
# sharp the ranking can be, and a database that changes needs the basis computed again.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# - The reciprocal k-NN graph and its symmetric normalisation (`coursekit.graphs.knn`: `knn`, `knn_affinity`,
#   `affinity_from_lists`, `symmetric_normalise`), stored sparse.
# - Query expansion as a linear system: the query vector and diffusion by conjugate gradients with the authors'
#   stopping rule (`coursekit.graphs.diffusion`: `query_vector`, `query_vectors`, `diffusion`; CG is
#   `coursekit.graphs.solvers.conjugate_gradient`, stage 08's), and the `DiffusionExplorer` (`coursekit.explore.graphs`).
# - Global and regional diffusion on the retrieval set: stage 08's descriptors (`coursekit.graphs.discovery.table_descriptors`),
#   GMP weights, pooling to images, truncation (`diffusion.gmp_weights`, `pool_to_images`, `truncated_diffusion`).
# - Searching on manifolds as smoothing: the transfer function, the spectral basis, rank-r spectral ranking and its
#   explicit embedding (`diffusion.transfer`, `spectral_basis`, `spectral_ranking`, `spectral_embedding`), and the
#   `SpectralExplorer`.
