"""Plausible wrong answers to the stage-09 exercises, as edits of the solution, a delegating answer for each,
and valid answers written another way (the format: docs/ANATOMY.md §4)."""

WRONG = {
    "reciprocal-affinity-impl": {
        "not mutual: linked when either lists the other": [
            ("    mutual = listed & listed.T", "    mutual = listed | listed.T"),
        ],
        "the self-loop kept (a list that names the item itself)": [
            ("    mutual.fill_diagonal_(False)\n", ""),
        ],
        "negative similarities not clamped to 0": [
            ("    values[rows, neighbours] = similarities.clamp_min(0) ** gamma",
             "    values[rows, neighbours] = similarities ** gamma"),
        ],
        "the power gamma left out": [
            ("    values[rows, neighbours] = similarities.clamp_min(0) ** gamma",
             "    values[rows, neighbours] = similarities.clamp_min(0)"),
        ],
    },
    "normalise-impl": {
        "row normalisation D^-1 A (not symmetric)": [
            ("    return scale[:, None] * A * scale[None, :]",
             "    return A / degree.clamp_min(torch.finfo(A.dtype).tiny)[:, None]"),
        ],
        "D^-1 on both sides instead of D^-1/2": [
            ("    scale = torch.where(degree > 0, degree.clamp_min(torch.finfo(A.dtype).tiny).rsqrt(), torch.zeros((), dtype=A.dtype))",
             "    scale = torch.where(degree > 0, degree.clamp_min(torch.finfo(A.dtype).tiny).reciprocal(), torch.zeros((), dtype=A.dtype))"),
        ],
        "isolated items divided by zero (NaN rows)": [
            ("    scale = torch.where(degree > 0, degree.clamp_min(torch.finfo(A.dtype).tiny).rsqrt(), torch.zeros((), dtype=A.dtype))",
             "    scale = degree.rsqrt()"),
        ],
    },
    "query-vector-impl": {
        "the power taken before the sum over regions": [
            ("    summed = similarities if similarities.ndim == 1 else similarities.sum(dim=0)",
             "    summed = (similarities.clamp_min(0) ** gamma).reshape(-1, similarities.shape[-1]).sum(dim=0)"),
            ("    y[top.indices] = top.values.clamp_min(0) ** gamma", "    y[top.indices] = top.values"),
        ],
        "every item kept, not the k_q largest": [
            ("    top = torch.topk(summed, k_q)", "    top = torch.topk(summed, len(summed))"),
        ],
        "k_q + 1 kept": [
            ("    top = torch.topk(summed, k_q)", "    top = torch.topk(summed, min(k_q + 1, len(summed)))"),
        ],
        "the mean over regions instead of the sum": [
            ("    summed = similarities if similarities.ndim == 1 else similarities.sum(dim=0)",
             "    summed = similarities if similarities.ndim == 1 else similarities.mean(dim=0)"),
        ],
    },
    "diffuse-impl": {
        "(I - alpha W) x = y: the 1 / (1 - alpha) left out": [
            ("        return (v - alpha * (W @ v)) / (1 - alpha)", "        return v - alpha * (W @ v)"),
        ],
        "alpha where 1 - alpha belongs": [
            ("        return (v - alpha * (W @ v)) / (1 - alpha)", "        return (v - (1 - alpha) * (W @ v)) / alpha"),
        ],
        "tol and max_iterations not passed on (pcg's defaults always)": [
            ("    return solvers.conjugate_gradient(apply, y, tol=tol, max_iterations=max_iterations).x",
             "    return solvers.conjugate_gradient(apply, y).x"),
        ],
        "Zhou's iteration x <- alpha W x + (1 - alpha) y instead of CG": [
            ("    return solvers.conjugate_gradient(apply, y, tol=tol, max_iterations=max_iterations).x",
             "    x = (1 - alpha) * y\n    for _ in range(max_iterations):\n        x = alpha * (W @ x) + (1 - alpha) * y\n"
             "    return x"),
        ],
    },
    "gmp-weights-impl": {
        "lambda left out (V V^T w = 1)": [
            ("    gram = V @ V.T + lam * torch.eye(len(V), dtype=V.dtype, device=V.device)", "    gram = V @ V.T"),
        ],
        "lambda added to every entry instead of the diagonal": [
            ("    gram = V @ V.T + lam * torch.eye(len(V), dtype=V.dtype, device=V.device)",
             "    gram = V @ V.T + lam * torch.ones(len(V), len(V), dtype=V.dtype, device=V.device)"),
        ],
        "1 over the Gram matrix's row sums instead of a solve": [
            ("    return torch.linalg.solve(gram, torch.ones(len(V), dtype=V.dtype, device=V.device))",
             "    return 1 / (gram @ torch.ones(len(V), dtype=V.dtype, device=V.device))"),
        ],
    },
    "spectral-ranking-impl": {
        "h without its 1 - alpha": [
            ("    h = (1 - alpha) / (1 - alpha * values)", "    h = 1 / (1 - alpha * values)"),
        ],
        "alpha where 1 - alpha belongs": [
            ("    h = (1 - alpha) / (1 - alpha * values)", "    h = alpha / (1 - (1 - alpha) * values)"),
        ],
        "h applied twice": [
            ("    return vectors @ (h * (vectors.T @ y))", "    return vectors @ (h ** 2 * (vectors.T @ y))"),
        ],
    },
    "spectral-embedding-impl": {
        "U h instead of U h^1/2": [
            ("    return vectors * torch.sqrt(h)", "    return vectors * h"),
        ],
        "h without its 1 - alpha": [
            ("    h = (1 - alpha) / (1 - alpha * values)", "    h = 1 / (1 - alpha * values)"),
        ],
        "the root of the eigenvalues instead of h's": [
            ("    return vectors * torch.sqrt(h)", "    return vectors * torch.sqrt(values.abs())"),
        ],
    },
}

DELEGATING = {
    "reciprocal-affinity-impl": """
def reciprocal_affinity(similarities, neighbours, gamma=3.0):
    return knn.affinity_from_lists(similarities, neighbours, gamma).to_dense()
""",
    "normalise-impl": """
def normalise(A):
    return knn.symmetric_normalise(A)
""",
    "query-vector-impl": """
def query_vector(similarities, k_q=10, gamma=3.0):
    return diffusion.query_vector(similarities, k_q, gamma)
""",
    "diffuse-impl": {
        "stage 09's diffusion": """
def diffuse(W, y, alpha=0.99, tol=1e-6, max_iterations=20):
    return diffusion.diffusion(W, y, alpha, tol, max_iterations)
""",
        "stage 08's local search (switched off here)": """
from coursekit.graphs import centrality

def diffuse(W, y, alpha=0.99, tol=1e-6, max_iterations=20):
    return centrality.local_search(W, y, alpha, tol, max_iterations).x
""",
        "a dense solve (switched off here)": """
def diffuse(W, y, alpha=0.99, tol=1e-6, max_iterations=20):
    dense = W.to_dense() if W.layout != torch.strided else W
    return (1 - alpha) * torch.linalg.solve(torch.eye(len(y), dtype=y.dtype) - alpha * dense, y)
""",
    },
    "gmp-weights-impl": """
def gmp_weights(V, lam=1.0):
    return diffusion.gmp_weights(V, torch.zeros(len(V), dtype=torch.int64), lam)
""",
    "spectral-ranking-impl": """
def spectral_ranking(values, vectors, y, alpha=0.99):
    return diffusion.spectral_ranking(values, vectors, y, alpha)
""",
    "spectral-embedding-impl": """
def spectral_embedding(values, vectors, alpha=0.99):
    return diffusion.spectral_embedding(values, vectors, alpha)
""",
}

VISIBLE_ONLY = {}

NO_INPUTS = {}

# Valid answers written another way: each must pass every test cell of its exercise.
VALID = {
    "normalise-impl": {
        "the diagonal matrices multiplied out": [
            ("    return scale[:, None] * A * scale[None, :]", "    return torch.diag(scale) @ A @ torch.diag(scale)"),
        ],
    },
    "query-vector-impl": {
        "a sort instead of topk": [
            ("    top = torch.topk(summed, k_q)\n    y = torch.zeros_like(summed)\n    y[top.indices] = top.values.clamp_min(0) ** gamma",
             "    order = torch.argsort(summed, descending=True)[:k_q]\n    y = torch.zeros_like(summed)\n"
             "    y[order] = summed[order].clamp_min(0) ** gamma"),
        ],
    },
    "diffuse-impl": {
        "CG on I - alpha W with (1 - alpha) y: the same iterates": [
            ("        return (v - alpha * (W @ v)) / (1 - alpha)", "        return v - alpha * (W @ v)"),
            ("    return solvers.conjugate_gradient(apply, y, tol=tol, max_iterations=max_iterations).x",
             "    return solvers.conjugate_gradient(apply, (1 - alpha) * y, tol=tol, max_iterations=max_iterations).x"),
        ],
    },
    "spectral-embedding-impl": {
        "the root as a power": [
            ("    return vectors * torch.sqrt(h)", "    return vectors * h ** 0.5"),
        ],
    },
}
