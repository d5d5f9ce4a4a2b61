"""Plausible wrong answers to the stage-07 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    "average-precision-impl": {
        "junk not removed (counted as misses)": [
            ("    kept = ranked[~np.isin(ranked, junk)]", "    kept = ranked"),
        ],
        "the non-interpolated AP (the mean precision at the hits, as scikit-learn)": [
            ("    before = np.where(positions == 0, 1.0, j / np.maximum(positions, 1))", "    before = (j + 1) / (positions + 1)"),
        ],
        "divided by the positives retrieved instead of all positives": [
            ("    return float(((before + after) / 2).sum() / len(ok))",
             "    return float(((before + after) / 2).sum() / max(len(positions), 1))"),
        ],
        "1-based positions": [
            ("    positions = np.flatnonzero(np.isin(kept, ok))", "    positions = np.flatnonzero(np.isin(kept, ok)) + 1"),
        ],
        "junk treated as positives": [
            ("    kept = ranked[~np.isin(ranked, junk)]", "    kept = ranked"),
            ("    positions = np.flatnonzero(np.isin(kept, ok))",
             "    positions = np.flatnonzero(np.isin(kept, np.concatenate([ok, junk])))"),
        ],
    },
    "gem-impl": {
        "the mean instead of the power mean": [
            ("    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)", "    return x.clamp(min=eps).mean(dim=(-2, -1))"),
        ],
        "clamped after the power": [
            ("    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)",
             "    return x.pow(p).clamp(min=eps).mean(dim=(-2, -1)).pow(1.0 / p)"),
        ],
        "the sum instead of the mean": [
            ("    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)",
             "    return x.clamp(min=eps).pow(p).sum(dim=(-2, -1)).pow(1.0 / p)"),
        ],
        "no root 1/p": [
            ("    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)", "    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1))"),
        ],
        "pooled over the channels and one axis": [
            ("    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)",
             "    return x.clamp(min=eps).pow(p).mean(dim=(1, -1)).pow(1.0 / p)"),
        ],
    },
    "rmac-regions-impl": {
        "one region too many along the long side (an off-by-one extra)": [
            ("    extra = int(np.argmin(np.abs(1 - b / w - 0.4))) + 1  # the first minimum",
             "    extra = int(np.argmin(np.abs(1 - b / w - 0.4))) + 2  # the first minimum"),
        ],
        "the extra regions along the short side": [
            ("    extra_w, extra_h = (extra, 0) if height < width else ((0, extra) if height > width else (0, 0))",
             "    extra_w, extra_h = (0, extra) if height < width else ((extra, 0) if height > width else (0, 0))"),
        ],
        "levels counted from 0 (a side of 2w at the first scale)": [
            ("        side = int(np.floor(2 * w / (level + 1)))", "        side = int(np.floor(2 * w / level))"),
        ],
        "starts not rounded down (round to nearest)": [
            ("            return [int(np.floor(half + i * step)) - half for i in range(count)]",
             "            return [int(np.round(half + i * step)) - half for i in range(count)]"),
        ],
        "no extra regions on non-square maps": [
            ("    extra_w, extra_h = (extra, 0) if height < width else ((0, extra) if height > width else (0, 0))",
             "    extra_w, extra_h = 0, 0"),
        ],
        "the last minimum instead of the first": [
            ("    extra = int(np.argmin(np.abs(1 - b / w - 0.4))) + 1  # the first minimum",
             "    extra = len(b) - int(np.argmin(np.abs(1 - b / w - 0.4)[::-1]))  # the last minimum"),
        ],
    },
    "rmac-impl": {
        "regions not normalised before the sum": [
            ("        total = total + region / region.norm(dim=1, keepdim=True)", "        total = total + region"),
        ],
        "the sum not normalised": [
            ("    return total / total.norm(dim=1, keepdim=True)", "    return total"),
        ],
        "average instead of max pooling in the regions": [
            ("        region = x[:, :, top:top + side, left:left + side].amax(dim=(-2, -1))",
             "        region = x[:, :, top:top + side, left:left + side].mean(dim=(-2, -1))"),
        ],
        "top and left swapped": [
            ("        region = x[:, :, top:top + side, left:left + side].amax(dim=(-2, -1))",
             "        region = x[:, :, left:left + side, top:top + side].amax(dim=(-2, -1))"),
        ],
        "normalised over the images instead of the channels": [
            ("        total = total + region / region.norm(dim=1, keepdim=True)",
             "        total = total + region / region.norm(dim=0, keepdim=True)"),
        ],
    },
    "pca-whitening-impl": {
        "whitening learned on the descriptors it whitens (the test set)": [
            ("    mean = learn.mean(dim=0)\n    centred = learn - mean", "    mean = x.mean(dim=0)\n    centred = x - mean"),
        ],
        "the smallest eigenvalues kept (eigh's ascending order)": [
            ("    top = torch.argsort(values, descending=True)[:dim]", "    top = torch.arange(dim)"),
        ],
        "projected but not whitened (no division by the square root of the eigenvalues)": [
            ("    projected = (x - mean) @ vectors[:, top] / values[top].sqrt()", "    projected = (x - mean) @ vectors[:, top]"),
        ],
        "divided by the eigenvalues instead of their square roots": [
            ("    projected = (x - mean) @ vectors[:, top] / values[top].sqrt()", "    projected = (x - mean) @ vectors[:, top] / values[top]"),
        ],
        "not centred before the projection": [
            ("    projected = (x - mean) @ vectors[:, top] / values[top].sqrt()", "    projected = x @ vectors[:, top] / values[top].sqrt()"),
        ],
        "rows of the eigenvector matrix taken as the eigenvectors": [
            ("    projected = (x - mean) @ vectors[:, top] / values[top].sqrt()", "    projected = (x - mean) @ vectors[top].T / values[top].sqrt()"),
        ],
    },
    "cam-impl": {
        "every image's map for the first image's class": [
            ('    return torch.einsum("nk,nkhw->nhw", weights[classes], features)',
             '    return torch.einsum("k,nkhw->nhw", weights[classes[0]], features)'),
        ],
        "the wrong class's weights (the class index shifted by one)": [
            ('    return torch.einsum("nk,nkhw->nhw", weights[classes], features)',
             '    return torch.einsum("nk,nkhw->nhw", weights[(classes + 1) % len(weights)], features)'),
        ],
        "the weights' columns taken as the classes": [
            ('    return torch.einsum("nk,nkhw->nhw", weights[classes], features)',
             '    return torch.einsum("nk,nkhw->nhw", weights[:, classes % weights.shape[1]].T, features)'),
        ],
        "the mean over channels instead of the sum": [
            ('    return torch.einsum("nk,nkhw->nhw", weights[classes], features)',
             '    return torch.einsum("nk,nkhw->nhw", weights[classes], features) / features.shape[1]'),
        ],
    },
    "crow-impl": {
        "the spatial weight not normalised": [
            ("    spatial = (aggregate / norm).pow(1.0 / b)", "    spatial = aggregate.pow(1.0 / b)"),
        ],
        "a and b swapped": [
            ("    norm = aggregate.pow(a).sum(dim=(-2, -1), keepdim=True).pow(1.0 / a)\n    spatial = (aggregate / norm).pow(1.0 / b)",
             "    norm = aggregate.pow(b).sum(dim=(-2, -1), keepdim=True).pow(1.0 / b)\n    spatial = (aggregate / norm).pow(1.0 / a)"),
        ],
        "the inverse ratio in the channel weight (frequent channels weigh more)": [
            ("    ratio = q.sum(dim=1, keepdim=True) / q", "    ratio = q / q.sum(dim=1, keepdim=True)"),
        ],
        "the channel weight without the log": [
            ("    channel = torch.where(q > 0, torch.log(ratio), torch.zeros_like(q))",
             "    channel = torch.where(q > 0, ratio, torch.zeros_like(q))"),
        ],
        "the sparsity from the mean response instead of the fraction of positions that fire": [
            ("    q = (x > 0).flatten(2).to(x.dtype).mean(dim=2)", "    q = x.flatten(2).mean(dim=2)"),
        ],
        "a zero channel left infinite": [
            ("    channel = torch.where(q > 0, torch.log(ratio), torch.zeros_like(q))", "    channel = torch.log(ratio)"),
        ],
    },
}

DELEGATING = {
    "average-precision-impl": """
def average_precision(ranked, ok, junk=()):
    return evaluation.average_precision(ranked, ok, junk)
""",
    "gem-impl": """
def gem(x, p=3.0, eps=1e-6):
    return pooling.gem(x, p, eps)
""",
    "rmac-regions-impl": """
def rmac_regions(height, width, levels=3):
    return [tuple(r[:3]) for r in pooling.rmac_regions(height, width, levels).tolist()]
""",
    "rmac-impl": """
def rmac(x, regions):
    boxes = torch.tensor([[t, l, s, s] for t, l, s in regions])
    return pooling.l2n(pooling.l2n(pooling.regional_mac(x, boxes)).sum(1))
""",
    "pca-whitening-impl": """
def pca_whiten(learn, x, dim):
    return whitening.pca_whitening(learn, dim)(x)
""",
    "cam-impl": """
def class_activation_maps(features, weights, classes):
    return cam.class_activation_maps(features, weights, classes)
""",
    "crow-impl": """
def crow_weights(x, a=2.0, b=2.0):
    return cam.crow_spatial_weight(x, a, b), cam.crow_channel_weight(x)
""",
}

VISIBLE_ONLY = {}

NO_INPUTS = {}

# Valid answers written another way: each must pass every test cell of its exercise.
VALID = {
    "average-precision-impl": {
        "a loop over the ranking with a running count of hits": [
            ("""\
    ranked = np.asarray(ranked)
    ok = np.asarray(list(ok), dtype=np.int64)
    junk = np.asarray(list(junk), dtype=np.int64)
    kept = ranked[~np.isin(ranked, junk)]
    positions = np.flatnonzero(np.isin(kept, ok))
    j = np.arange(len(positions))
    before = np.where(positions == 0, 1.0, j / np.maximum(positions, 1))
    after = (j + 1) / (positions + 1)
    return float(((before + after) / 2).sum() / len(ok))""", """\
    ok, junk = set(int(i) for i in ok), set(int(i) for i in junk)
    ap, hits, place = 0.0, 0, 0
    for item in ranked:
        if int(item) in junk:
            continue
        if int(item) in ok:
            p0 = 1.0 if place == 0 else hits / place
            hits += 1
            ap += (p0 + hits / (place + 1)) / 2
        place += 1
    return ap / len(ok)"""),
        ],
    },
    "gem-impl": {
        "torch's lp-pool of the clamped maps, divided by the number of positions": [
            ("    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)",
             "    return (x.clamp(min=eps).pow(p).sum(dim=(-2, -1)) / (x.shape[-1] * x.shape[-2])) ** (1 / p)"),
        ],
    },
    "rmac-regions-impl": {
        "numpy arrays of starts and an outer product of the grid": [
            ("""\
        def starts(length, count):
            step = 0 if count == 1 else (length - side) / (count - 1)
            return [int(np.floor(half + i * step)) - half for i in range(count)]

        for top in starts(height, level + extra_h):
            for left in starts(width, level + extra_w):
                regions.append((top, left, side))""", """\
        def starts(length, count):
            step = 0 if count == 1 else (length - side) / (count - 1)
            return (np.floor(half + np.arange(count) * step) - half).astype(int)

        tops, lefts = np.meshgrid(starts(height, level + extra_h), starts(width, level + extra_w), indexing="ij")
        regions += [(int(t), int(left), side) for t, left in zip(tops.ravel(), lefts.ravel())]"""),
        ],
    },
    "rmac-impl": {
        "region vectors stacked, normalised with torch's normalize, with an eps": [
            ("""\
    total = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)
    for top, left, side in regions:
        region = x[:, :, top:top + side, left:left + side].amax(dim=(-2, -1))
        total = total + region / region.norm(dim=1, keepdim=True)
    return total / total.norm(dim=1, keepdim=True)""", """\
    pooled = torch.stack([x[:, :, t:t + s, left:left + s].flatten(2).max(dim=2).values for t, left, s in regions], dim=1)
    summed = torch.nn.functional.normalize(pooled, dim=2, eps=1e-6).sum(dim=1)
    return torch.nn.functional.normalize(summed, dim=1, eps=1e-6)"""),
        ],
    },
    "pca-whitening-impl": {
        "the SVD of the centred learning set instead of eigh of its covariance": [
            ("""\
    values, vectors = torch.linalg.eigh(centred.T @ centred / len(learn))
    top = torch.argsort(values, descending=True)[:dim]
    projected = (x - mean) @ vectors[:, top] / values[top].sqrt()""", """\
    _, singular, vt = torch.linalg.svd(centred, full_matrices=False)
    std = singular[:dim] / len(learn) ** 0.5
    projected = (x - mean) @ vt[:dim].T / std"""),
        ],
    },
    "cam-impl": {
        "a broadcast product summed over the channels": [
            ('    return torch.einsum("nk,nkhw->nhw", weights[classes], features)',
             "    return (weights[classes][:, :, None, None] * features).sum(dim=1)"),
        ],
    },
    "crow-impl": {
        "the spatial norm by torch.linalg.vector_norm, the weight by count_nonzero": [
            ("""\
    norm = aggregate.pow(a).sum(dim=(-2, -1), keepdim=True).pow(1.0 / a)
    spatial = (aggregate / norm).pow(1.0 / b)
    q = (x > 0).flatten(2).to(x.dtype).mean(dim=2)""", """\
    norm = torch.linalg.vector_norm(aggregate, ord=a, dim=(-2, -1), keepdim=True)
    spatial = (aggregate / norm) ** (1 / b)
    q = torch.count_nonzero(x.flatten(2), dim=2).to(x.dtype) / (x.shape[-1] * x.shape[-2])"""),
        ],
    },
}
