"""Plausible wrong answers to the stage-06 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    "branch-gradients-impl": {
        "the total gradient given as each copy's contribution": [
            ("    return total, first, second", "    return total, total, total"),
        ],
        "the copies' contributions swapped": [
            ("    return total, first, second", "    return total, second, first"),
        ],
        "the second input through the first copy": [
            ("    y2 = torch.func.functional_call(net, copy2, (x2,))", "    y2 = torch.func.functional_call(net, copy1, (x2,))"),
        ],
        "the total as twice the first copy's contribution": [
            ("    total = [a + b for a, b in zip(first, second)]", "    total = [2 * a for a in first]"),
        ],
    },
    "contrastive-loss-impl": {
        "t and 1 - t swapped": [
            ("    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2",
             "    return (1 - t) * d**2 + t * torch.clamp(margin - d, min=0) ** 2"),
        ],
        "the squared distance where the margin needs the distance": [
            ("    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2",
             "    return t * d**2 + (1 - t) * torch.clamp(margin - d**2, min=0) ** 2"),
        ],
        "the hinge left out": [
            ("    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2",
             "    return t * d**2 + (1 - t) * (margin - d) ** 2"),
        ],
        "the hinge not squared": [
            ("    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2",
             "    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0)"),
        ],
        "the paper's factors 1/2": [
            ("    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2",
             "    return 0.5 * (t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2)"),
        ],
        "the mean over the pairs instead of each pair's loss": [
            ("    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2",
             "    return (t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2).mean()"),
        ],
    },
    "contrastive-gradients-impl": {
        "the repulsion's sign flipped (dissimilar pairs attract)": [
            ("    g1 = 2 * t * diff - 2 * (1 - t) * torch.clamp(margin - d, min=0) * diff / d",
             "    g1 = 2 * t * diff + 2 * (1 - t) * torch.clamp(margin - d, min=0) * diff / d"),
        ],
        "the direction not normalised (no division by d)": [
            ("    g1 = 2 * t * diff - 2 * (1 - t) * torch.clamp(margin - d, min=0) * diff / d",
             "    g1 = 2 * t * diff - 2 * (1 - t) * torch.clamp(margin - d, min=0) * diff"),
        ],
        "a force beyond the margin (the hinge left out)": [
            ("    g1 = 2 * t * diff - 2 * (1 - t) * torch.clamp(margin - d, min=0) * diff / d",
             "    g1 = 2 * t * diff - 2 * (1 - t) * (margin - d) * diff / d"),
        ],
        "the same gradient for both ends": [
            ("    return g1, -g1", "    return g1, g1"),
        ],
        "the factor 2 left out": [
            ("    g1 = 2 * t * diff - 2 * (1 - t) * torch.clamp(margin - d, min=0) * diff / d",
             "    g1 = t * diff - (1 - t) * torch.clamp(margin - d, min=0) * diff / d"),
        ],
    },
    "nearest-neighbours-impl": {
        "the sample itself among its neighbours": [
            ("        d[torch.arange(len(rows)), torch.arange(start, start + len(rows))] = float(\"inf\")",
             "        pass"),
        ],
        "the sample left out only in the first chunk": [
            ("        d[torch.arange(len(rows)), torch.arange(start, start + len(rows))] = float(\"inf\")",
             "        d[torch.arange(len(rows)), torch.arange(len(rows))] = float(\"inf\")"),
        ],
        "the farthest instead of the nearest": [
            ("        found.append(d.topk(k, dim=1, largest=False).indices)",
             "        found.append(d.masked_fill(torch.isinf(d), -1.0).topk(k, dim=1, largest=True).indices)"),
        ],
        "the squared norms left out (only -2 a.b)": [
            ("        d = norms[start:start + chunk, None] - 2 * rows @ flat.T + norms[None, :]",
             "        d = -2 * rows @ flat.T"),
        ],
        "the sample left out by its distance 0, not by its index (drops duplicates)": [
            ("        d[torch.arange(len(rows)), torch.arange(start, start + len(rows))] = float(\"inf\")",
             "        d[d <= 1e-9] = float(\"inf\")"),
        ],
        "uint8 pixels differenced without a conversion (differences wrap around)": [
            ("    flat = x.reshape(len(x), -1).double()\n    norms = flat.square().sum(1)",
             "    flat = x.reshape(len(x), -1)\n    norms = None"),
            ("        d = norms[start:start + chunk, None] - 2 * rows @ flat.T + norms[None, :]",
             "        d = (rows[:, None, :] - flat[None, :, :]).abs().double().square().sum(2)"),
        ],
    },
    "slant-impl": {
        "mu20 where mu02 belongs": [
            ("    mu02 = (w * dy * dy).sum((1, 2)) / mass", "    mu02 = (w * dx * dx).sum((1, 2)) / mass"),
        ],
        "the sign flipped (top to the right negative)": [
            ("    return -mu11 / mu02", "    return mu11 / mu02"),
        ],
        "moments about the image's corner, not the centre of mass": [
            ("    dy = ys - cy[:, None, None]\n    dx = xs - cx[:, None, None]",
             "    dy = ys + 0 * cy[:, None, None]\n    dx = xs + 0 * cx[:, None, None]"),
        ],
        "x and y swapped (rows taken as x)": [
            ("    mu02 = (w * dy * dy).sum((1, 2)) / mass", "    mu02 = (w * dx * dx).sum((1, 2)) / mass"),
            ("    return -mu11 / mu02", "    return mu11 / mu02"),
        ],
    },
    "triplet-losses-impl": {
        "the triplet loss on distances, not squared distances": [
            ("    return torch.clamp(margin + (a - p).square().sum(1) - (a - n).square().sum(1), min=0)",
             "    return torch.clamp(margin + (a - p).norm(dim=1) - (a - n).norm(dim=1), min=0)"),
        ],
        "the triplet's hinge left out": [
            ("    return torch.clamp(margin + (a - p).square().sum(1) - (a - n).square().sum(1), min=0)",
             "    return margin + (a - p).square().sum(1) - (a - n).square().sum(1)"),
        ],
        "the cosine similarity where the distance belongs": [
            ("        return 1 - (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1))",
             "        return (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1))"),
        ],
        "the dot product, not normalised": [
            ("        return 1 - (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1))",
             "        return 1 - (u * v).sum(1)"),
        ],
        "the margin subtracted": [
            ("    return torch.clamp(distance(a, p) - distance(a, n) + margin, min=0)",
             "    return torch.clamp(distance(a, p) - distance(a, n) - margin, min=0)"),
        ],
        "the ranking loss without its hinge": [
            ("    return torch.clamp(distance(a, p) - distance(a, n) + margin, min=0)",
             "    return distance(a, p) - distance(a, n) + margin"),
        ],
    },
    "mine-negatives-impl": {
        "a negative from the query's own cluster": [
            ("            if cluster == int(query_clusters[q]) or (one_per_cluster and cluster in used):",
             "            if one_per_cluster and cluster in used:"),
            ("        used = {int(query_clusters[q])}", "        used = set()"),
        ],
        "one_per_cluster ignored (always N1)": [
            ("            if cluster == int(query_clusters[q]) or (one_per_cluster and cluster in used):",
             "            if cluster == int(query_clusters[q]):"),
        ],
        "the least similar first": [
            ("        for index in scores[q].argsort(descending=True).tolist():",
             "        for index in scores[q].argsort().tolist():"),
        ],
        "the query's cluster left in play for N1": [
            ("            if cluster == int(query_clusters[q]) or (one_per_cluster and cluster in used):",
             "            if one_per_cluster and cluster in used:"),
        ],
        "zeros, not -1, where fewer than k qualify": [
            ("    out = torch.full((len(queries), k), -1, dtype=torch.long)",
             "    out = torch.zeros((len(queries), k), dtype=torch.long)"),
        ],
    },
}

DELEGATING = {
    "branch-gradients-impl": """
def branch_gradients(net, x1, x2, pair_loss):
    return siamese.branch_gradients(net, x1, x2, pair_loss)
""",
    "contrastive-loss-impl": """
def contrastive_loss(y1, y2, t, margin=1.0):
    return losses.contrastive_loss(y1, y2, t, margin, reduction="none")
""",
    "contrastive-gradients-impl": {
        "coursekit's gradient": """
def contrastive_gradients(y1, y2, t, margin=1.0):
    return losses.contrastive_gradient(y1, y2, t, margin)
""",
        "autograd": """
def contrastive_gradients(y1, y2, t, margin=1.0):
    a, b = y1.detach().clone().requires_grad_(True), y2.detach().clone().requires_grad_(True)
    d = (a - b).square().sum(1).sqrt()
    return torch.autograd.grad((t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2).sum(), (a, b))
""",
    },
    "nearest-neighbours-impl": """
def nearest_neighbours(x, k=5, chunk=1024):
    return pairs.euclidean_knn(x, k, chunk)
""",
    "slant-impl": """
def slant(images):
    return siamese.slant(images)
""",
    "triplet-losses-impl": """
def triplet_loss(a, p, n, margin=0.1):
    return losses.triplet_loss(a, p, n, margin, reduction="none")


def ranking_loss(a, p, n, margin=0.5):
    return losses.ranking_loss(a, p, n, margin, reduction="none")
""",
    "mine-negatives-impl": """
def mine_negatives(queries, pool, query_clusters, pool_clusters, k=5, one_per_cluster=True):
    return losses.mine_negatives(queries, pool, query_clusters, pool_clusters, k, one_per_cluster)
""",
}

# Test cells without hidden inputs, each with why (the course checks enforce the rest).
VISIBLE_ONLY = {}

NO_INPUTS = {}

# Valid answers written another way: each must pass every test cell of its exercise.
VALID = {
    "branch-gradients-impl": {
        "the shared gradient by autograd, each copy's with the other's output detached": [
            ("""\
    params = dict(net.named_parameters())
    copy1 = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
    copy2 = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
    y1 = torch.func.functional_call(net, copy1, (x1,))
    y2 = torch.func.functional_call(net, copy2, (x2,))
    g = torch.autograd.grad(pair_loss(y1, y2), list(copy1.values()) + list(copy2.values()))
    first, second = list(g[: len(params)]), list(g[len(params):])
    total = [a + b for a, b in zip(first, second)]""", """\
    ps = list(net.parameters())
    total = list(torch.autograd.grad(pair_loss(net(x1), net(x2)), ps))
    first = list(torch.autograd.grad(pair_loss(net(x1), net(x2).detach()), ps))
    second = [a - b for a, b in zip(total, first)]"""),
        ],
    },
    "contrastive-loss-impl": {
        "torch's pairwise_distance (it adds 1e-6 to each difference) and relu": [
            ("    d = (y1 - y2).square().sum(1).sqrt()", "    d = torch.nn.functional.pairwise_distance(y1, y2)"),
            ("    return t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2",
             "    return torch.where(t == 1, d**2, torch.relu(margin - d) ** 2)"),
        ],
    },
    "contrastive-gradients-impl": {
        "the unit vector and the two cases apart": [
            ("    g1 = 2 * t * diff - 2 * (1 - t) * torch.clamp(margin - d, min=0) * diff / d",
             "    unit = diff / d\n    g1 = torch.where(t > 0.5, 2 * diff, -2 * torch.relu(margin - d) * unit)"),
        ],
    },
    "nearest-neighbours-impl": {
        "torch.cdist per chunk, in float32": [
            ("        d = norms[start:start + chunk, None] - 2 * rows @ flat.T + norms[None, :]",
             "        d = torch.cdist(rows.float(), flat.float())"),
        ],
    },
    "mine-negatives-impl": {
        "ranked by Euclidean distance (the same order for unit vectors)": [
            ("    scores = queries @ pool.T", "    scores = -torch.cdist(queries, pool)"),
        ],
    },
}
