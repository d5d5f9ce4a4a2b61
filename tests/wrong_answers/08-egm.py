"""Plausible wrong answers to the stage-08 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    "gaussian-overlaps-impl": {
        "the spread sigma_i^2 alone instead of sigma_i^2 + sigma_k^2": [
            ("    spread = variances[:, None] + variances[None, :]", "    spread = variances[:, None] + 0 * variances[None, :]"),
        ],
        "the weights left out": [
            ("    return (weights[:, None] * weights[None, :] * (2 * np.pi * spread) ** (-d / 2)",
             "    return ((2 * np.pi * spread) ** (-d / 2)"),
        ],
        "the normalisation of a 1-D Gaussian whatever d": [
            ("    return (weights[:, None] * weights[None, :] * (2 * np.pi * spread) ** (-d / 2)",
             "    return (weights[:, None] * weights[None, :] * (2 * np.pi * spread) ** (-1 / 2)"),
        ],
        "the exponent without its 1/2": [
            ("            * np.exp(-squared / (2 * spread)))", "            * np.exp(-squared / spread))"),
        ],
        "distances instead of squared distances": [
            ("    squared = ((means[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)",
             "    squared = np.sqrt(((means[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1))"),
        ],
    },
    "self-responsibility-impl": {
        "i itself not left out of the sum": [
            ("    others[i] = False\n", ""),
        ],
        "summed over every component, kept or not": [
            ("    others = np.asarray(kept, dtype=bool).copy()", "    others = np.ones(len(overlaps), dtype=bool)"),
        ],
        "the responsibility of the others (1 - rho)": [
            ("    return float(own / (own + overlaps[i, others].sum()))",
             "    return float(overlaps[i, others].sum() / (own + overlaps[i, others].sum()))"),
        ],
    },
    "purge-impl": {
        "components visited by increasing weight": [
            ('    for i in np.argsort(-np.asarray(weights), kind="stable"):', '    for i in np.argsort(np.asarray(weights), kind="stable"):'),
        ],
        "components visited in index order": [
            ('    for i in np.argsort(-np.asarray(weights), kind="stable"):', "    for i in range(len(weights)):"),
        ],
        "rho against every other component instead of the kept ones": [
            ("        if self_responsibility(overlaps, i, kept) >= tau:",
             "        if self_responsibility(overlaps, i, np.ones(len(weights), dtype=bool)) >= tau:"),
        ],
        "kept only when rho exceeds tau (> instead of >=)": [
            ("        if self_responsibility(overlaps, i, kept) >= tau:", "        if self_responsibility(overlaps, i, kept) > tau:"),
        ],
        "an unstable sort of the weights (ties in any order)": [
            ('    for i in np.argsort(-np.asarray(weights), kind="stable"):', '    for i in np.argsort(-np.asarray(weights), kind="quicksort"):'),
        ],
        "kept when rho is below tau": [
            ("        if self_responsibility(overlaps, i, kept) >= tau:", "        if self_responsibility(overlaps, i, kept) < tau:"),
        ],
    },
    "m-step-impl": {
        "the variance around the new mean (EM's, no expansion)": [
            ("    squared = ((points[:, None, :] - previous_means[None, :, :]) ** 2).sum(axis=-1)  # (N, M)",
             "    squared = ((points[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)  # (N, M)"),
        ],
        "the variance not divided by d": [
            ("    variances = (weighted * squared).sum(axis=0) / (points.shape[1] * mass)",
             "    variances = (weighted * squared).sum(axis=0) / mass"),
        ],
        "the weights divided by the number of points instead of the total weight": [
            ("    weights = mass / point_weights.sum()", "    weights = mass / len(points)"),
        ],
        "the point weights ignored in the means and variances": [
            ("    weighted = responsibilities * point_weights[:, None]  # (N, M)\n    mass = weighted.sum(axis=0)  # N_k\n    weights = mass / point_weights.sum()",
             "    weighted = responsibilities  # (N, M)\n    mass = weighted.sum(axis=0)  # N_k\n    weights = (responsibilities * point_weights[:, None]).sum(axis=0) / point_weights.sum()"),
        ],
    },
    "conjugate-gradient-impl": {
        "the residual updated with the wrong sign": [
            ("        r = r - step * Ap", "        r = r + step * Ap"),
        ],
        "beta inverted": [
            ("        p = r + (rr_new / rr) * p", "        p = r + (rr / rr_new) * p"),
        ],
        "steepest descent (no conjugation)": [
            ("        p = r + (rr_new / rr) * p", "        p = r.clone()"),
        ],
        "an absolute tolerance instead of one relative to |b|": [
            ("    goal = tol * torch.linalg.vector_norm(b)", "    goal = tol"),
        ],
        "the step size with p.p instead of p.Ap": [
            ("        step = rr / (p @ Ap)", "        step = rr / (p @ p)"),
        ],
        "one step counted too many": [
            ("            return x, k\n", "            return x, k + 1\n"),
        ],
    },
    "katz-centrality-impl": {
        "without the (1 - alpha) factor": [
            ("    rhs = (1 - alpha) * ones", "    rhs = ones"),
        ],
        "alpha and 1 - alpha swapped": [
            ("    rhs = (1 - alpha) * ones", "    rhs = alpha * ones"),
            ("        return v - alpha * (W @ v)", "        return v - (1 - alpha) * (W @ v)"),
        ],
        "alpha ignored (taken as nearly 1)": [
            ("        return v - alpha * (W @ v)", "        return v - 0.999999 * (W @ v)"),
        ],
        "tol and max_iterations not passed on (CG's defaults)": [
            ("    g, _ = conjugate_gradient(apply, rhs, tol=tol, max_iterations=max_iterations)",
             "    g, _ = conjugate_gradient(apply, rhs)"),
        ],
        "a fixed-point iteration g <- (1 - alpha) 1 + alpha W g instead of CG": [
            ("    g, _ = conjugate_gradient(apply, rhs, tol=tol, max_iterations=max_iterations)",
             "    g = rhs.clone()\n    for _ in range(5000):\n        g = rhs + alpha * (W @ g)"),
        ],
        "one product by W (a truncated series) instead of solving": [
            ("    g, _ = conjugate_gradient(apply, rhs, tol=tol, max_iterations=max_iterations)",
             "    g = rhs + alpha * (W @ rhs)"),
        ],
    },
    "object-saliency-impl": {
        "each region overwrites the cells instead of adding to them": [
            ("        out[n, y0:y1, x0:x1] += g", "        out[n, y0:y1, x0:x1] = g"),
        ],
        "a float32 map": [
            ("    out = torch.zeros(images, height, width, dtype=torch.float64, device=centrality.device)",
             "    out = torch.zeros(images, height, width, device=centrality.device)"),
        ],
        "the end column and row included": [
            ("        out[n, y0:y1, x0:x1] += g", "        out[n, y0:y1 + 1, x0:x1 + 1] += g"),
        ],
        "x and y swapped": [
            ("        out[n, y0:y1, x0:x1] += g", "        out[n, x0:x1, y0:y1] += g"),
        ],
        "every region painted on the first image": [
            ("        out[n, y0:y1, x0:x1] += g", "        out[0, y0:y1, x0:x1] += g"),
        ],
        "only the most central region kept where regions overlap": [
            ("        out[n, y0:y1, x0:x1] += g", "        out[n, y0:y1, x0:x1] = torch.clamp(out[n, y0:y1, x0:x1], min=g)"),
        ],
    },
}

DELEGATING = {
    "gaussian-overlaps-impl": """
def gaussian_overlaps(means, variances, weights):
    return egm.gaussian_overlaps(means, variances, weights)
""",
    "self-responsibility-impl": """
def self_responsibility(overlaps, i, kept):
    return egm.self_responsibility(overlaps, i, kept)
""",
    "purge-impl": """
def purge(means, variances, weights, tau):
    return egm.purge(means, variances, weights, tau)
""",
    "m-step-impl": """
def m_step(points, responsibilities, previous_means, point_weights):
    return egm.m_step(points, responsibilities, previous_means, point_weights)
""",
    "conjugate-gradient-impl": {
        "coursekit's conjugate gradients": """
def conjugate_gradient(A, b, tol=1e-6, max_iterations=20):
    from coursekit.graphs import solvers
    result = solvers.conjugate_gradient(A, b, tol=tol, max_iterations=max_iterations)
    return result.x, result.iterations
""",
        "scipy's cg": """
def conjugate_gradient(A, b, tol=1e-6, max_iterations=20):
    import scipy.sparse.linalg as sla
    n = b.shape[0]
    apply = A if callable(A) else (lambda v: A @ v)
    operator = sla.LinearOperator((n, n), matvec=lambda v: apply(torch.as_tensor(v, dtype=torch.float64).flatten()).numpy())
    x, _ = sla.cg(operator, b.numpy(), rtol=tol, maxiter=max_iterations)
    return torch.as_tensor(x), max_iterations
""",
        "a dense solve": """
def conjugate_gradient(A, b, tol=1e-6, max_iterations=20):
    n = b.shape[0]
    apply = A if callable(A) else (lambda v: A @ v)
    M = torch.stack([apply(e) for e in torch.eye(n, dtype=torch.float64)], dim=1)
    return torch.linalg.solve(M, b), 1
""",
    },
    "katz-centrality-impl": {
        "coursekit's centrality": """
def katz_centrality(W, alpha=0.99, tol=1e-8, max_iterations=200):
    return centrality.katz_centrality(W, alpha, tol=tol, max_iterations=max_iterations).x
""",
        "numpy's solve": """
def katz_centrality(W, alpha=0.99, tol=1e-8, max_iterations=200):
    dense = W.to_dense().numpy() if W.is_sparse else W.numpy()
    n = len(dense)
    return torch.as_tensor(np.linalg.solve(np.eye(n) - alpha * dense, np.full(n, 1 - alpha)))
""",
    },
    "object-saliency-impl": """
def object_saliency(boxes, image, centrality, images, height, width):
    return discovery.object_saliency(boxes, image, centrality, images, height, width)
""",
}

VISIBLE_ONLY = {}

NO_INPUTS = {}

# Valid answers written another way: each must pass every test cell of its exercise.
VALID = {
    "gaussian-overlaps-impl": {
        "scipy's multivariate normal density of the differences": [
            ("""\
    means = np.asarray(means, dtype=np.float64)
    d = means.shape[1]
    spread = variances[:, None] + variances[None, :]
    squared = ((means[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    return (weights[:, None] * weights[None, :] * (2 * np.pi * spread) ** (-d / 2)
            * np.exp(-squared / (2 * spread)))""", """\
    import scipy.stats
    m, d = np.shape(means)
    out = np.empty((m, m))
    for i in range(m):
        for k in range(m):
            s = variances[i] + variances[k]
            out[i, k] = weights[i] * weights[k] * scipy.stats.multivariate_normal(np.zeros(d), s * np.eye(d)).pdf(
                np.asarray(means[i]) - np.asarray(means[k]))
    return out"""),
        ],
    },
    "purge-impl": {
        "a kept list grown in a loop, the weights sorted with sorted()": [
            ("""\
    kept = np.zeros(len(weights), dtype=bool)
    for i in np.argsort(-np.asarray(weights), kind="stable"):
        if self_responsibility(overlaps, i, kept) >= tau:
            kept[i] = True
    return kept""", """\
    chosen = []
    for i in sorted(range(len(weights)), key=lambda k: (-weights[k], k)):
        mask = np.isin(np.arange(len(weights)), chosen)
        if self_responsibility(overlaps, i, mask) >= tau:
            chosen.append(i)
    return np.isin(np.arange(len(weights)), chosen)"""),
        ],
    },
    "m-step-impl": {
        "einsum and the expansion added to the ML variance": [
            ("""\
    squared = ((points[:, None, :] - previous_means[None, :, :]) ** 2).sum(axis=-1)  # (N, M)
    variances = (weighted * squared).sum(axis=0) / (points.shape[1] * mass)""", """\
    around_new = np.einsum("nm,nmd->m", weighted, (points[:, None, :] - means[None]) ** 2) / mass
    variances = (around_new + ((means - previous_means) ** 2).sum(axis=1)) / points.shape[1]"""),
        ],
    },
    "conjugate-gradient-impl": {
        "the textbook loop with a residual norm check at the top": [
            ("""\
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    goal = tol * torch.linalg.vector_norm(b)
    if torch.sqrt(rr) <= goal:
        return x, 0
    for k in range(1, max_iterations + 1):
        Ap = apply(p)
        step = rr / (p @ Ap)
        x = x + step * p
        r = r - step * Ap
        rr_new = r @ r
        if torch.sqrt(rr_new) <= goal:
            return x, k
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, max_iterations""", """\
    x, r = torch.zeros_like(b), b.clone()
    p, k = r.clone(), 0
    while k < max_iterations and r.norm() > tol * b.norm():
        Ap = apply(p)
        a = r.dot(r) / p.dot(Ap)
        x += a * p
        r_next = r - a * Ap
        p = r_next + r_next.dot(r_next) / r.dot(r) * p
        r, k = r_next, k + 1
    return x, k"""),
        ],
    },
    "object-saliency-impl": {
        "masks of rows and columns broadcast, index_add over the images": [
            ("""\
    out = torch.zeros(images, height, width, dtype=torch.float64, device=centrality.device)
    for (x0, y0, x1, y1), n, g in zip(boxes.tolist(), image.tolist(), centrality.tolist()):
        out[n, y0:y1, x0:x1] += g
    return out""", """\
    rows, cols = torch.arange(height), torch.arange(width)
    in_rows = (rows[None] >= boxes[:, 1:2]) & (rows[None] < boxes[:, 3:4])
    in_cols = (cols[None] >= boxes[:, 0:1]) & (cols[None] < boxes[:, 2:3])
    painted = (in_rows[:, :, None] & in_cols[:, None, :]).double() * centrality[:, None, None]
    return torch.zeros(images, height, width, dtype=torch.float64).index_add_(0, image, painted)"""),
        ],
    },
}
