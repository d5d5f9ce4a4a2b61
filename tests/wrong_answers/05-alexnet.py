"""Plausible wrong answers to the stage-05 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    "alexnet-shapes-impl": {
        "conv1's padding ignored": [
            ("    k, s, p = conv1\n    n = out(size, k, s, p)", "    k, s, p = conv1\n    n = out(size, k, s)"),
        ],
        "the padding counted once, not on both sides": [
            ("        return (n + 2 * p - k) // s + 1", "        return (n + p - k) // s + 1"),
        ],
        "rounded up instead of down": [
            ("        return (n + 2 * p - k) // s + 1", "        return -(-(n + 2 * p - k) // s) + 1"),
        ],
        "pooling with a 2x2 window (stride 2), as LeNet": [
            ("""\
    n = out(n, 3, 2)
    shapes["pool1"] = (96, n, n)""", """\
    n = out(n, 2, 2)
    shapes["pool1"] = (96, n, n)"""),
            ("""\
    n = out(n, 3, 2)
    shapes["pool2"] = (256, n, n)""", """\
    n = out(n, 2, 2)
    shapes["pool2"] = (256, n, n)"""),
        ],
        "conv2 without its padding": [
            ("    n = out(n, 5, 1, 2)", "    n = out(n, 5, 1)"),
        ],
    },
    "alexnet-parameters-impl": {
        "no biases": [
            ('        "conv1": c1 * 3 * 11 * 11 + c1,', '        "conv1": c1 * 3 * 11 * 11,'),
            ('        "fc7": hidden * hidden + hidden,', '        "fc7": hidden * hidden,'),
        ],
        "the split layers read all their input maps": [
            ('        "conv2": c2 * (c1 // groups) * 5 * 5 + c2,', '        "conv2": c2 * c1 * 5 * 5 + c2,'),
            ('        "conv4": c4 * (c3 // groups) * 3 * 3 + c4,', '        "conv4": c4 * c3 * 3 * 3 + c4,'),
            ('        "conv5": c5 * (c4 // groups) * 3 * 3 + c5,', '        "conv5": c5 * c4 * 3 * 3 + c5,'),
        ],
        "conv3 split too": [
            ('        "conv3": c3 * c2 * 3 * 3 + c3,', '        "conv3": c3 * (c2 // groups) * 3 * 3 + c3,'),
        ],
        "fc6 reads one pool5 map per channel, not its pixels": [
            ('        "fc6": c5 * pool5 * pool5 * hidden + hidden,', '        "fc6": c5 * hidden + hidden,'),
        ],
        "the paper's numbers written in (right only for the paper's sizes)": [
            ("""\
    c1, c2, c3, c4, c5 = widths
    return {""", """\
    return {"conv1": 34944, "conv2": 307456, "conv3": 885120, "conv4": 663936, "conv5": 442624,
            "fc6": 37752832, "fc7": 16781312, "fc8": 4097000}
    c1, c2, c3, c4, c5 = widths
    return {"""),
        ],
    },
    "lrn-impl": {
        "the window not cut at the ends (wraps around)": [
            ("""\
        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2)
        sums[:, i] = squares[:, lo:hi + 1].sum(dim=1)""", """\
        window = [(j % C) for j in range(i - n // 2, i + n // 2 + 1)]
        sums[:, i] = squares[:, window].sum(dim=1)"""),
        ],
        "torch's convention: alpha divided by n": [
            ("    return a / (k + alpha * sums) ** beta", "    return a / (k + alpha / n * sums) ** beta"),
        ],
        "a window of n + 1 channels": [
            ("        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2)", "        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2 + 1)"),
        ],
        "the sum of the activities, not of their squares": [
            ("    squares = a * a", "    squares = a.abs()"),
        ],
        "the power beta forgotten": [
            ("    return a / (k + alpha * sums) ** beta", "    return a / (k + alpha * sums)"),
        ],
    },
    "dropout-impl": {
        "torch's inverted dropout": [
            ("""\
    if not training:
        return x * (1 - p)
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device)""", """\
    if not training:
        return x
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device) / (1 - p)"""),
        ],
        "keeps with probability p": [
            ("    keep = torch.rand(x.shape, generator=generator) >= p", "    keep = torch.rand(x.shape, generator=generator) < p"),
        ],
        "test output multiplied by p": [
            ("        return x * (1 - p)", "        return x * p"),
        ],
        "the generator ignored": [
            ("    keep = torch.rand(x.shape, generator=generator) >= p", "    keep = torch.rand(x.shape) >= p"),
        ],
        "one mask per column, shared by every row": [
            ("    keep = torch.rand(x.shape, generator=generator) >= p", "    keep = torch.rand(x.shape[-1], generator=generator) >= p"),
        ],
        "one mask per row of the batch, not per entry": [
            ("    keep = torch.rand(x.shape, generator=generator) >= p", "    keep = torch.rand(x.shape[:1] + (1,) * (x.ndim - 1), generator=generator) >= p"),
        ],
    },
    "ten-crops-impl": {
        "mirrored upside down": [
            ("    return torch.cat([five, five.flip(-1)], dim=1)", "    return torch.cat([five, five.flip(-2)], dim=1)"),
        ],
        "each crop followed by its mirror image": [
            ("    return torch.cat([five, five.flip(-1)], dim=1)", "    return torch.stack([five, five.flip(-1)], dim=2).flatten(1, 2)"),
        ],
        "the centre rounded up": [
            ("    starts = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]",
             "    starts = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size + 1) // 2, (W - size + 1) // 2)]"),
        ],
        "the top-right and bottom-left corners swapped": [
            ("    starts = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]",
             "    starts = [(0, 0), (H - size, 0), (0, W - size), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]"),
        ],
        "the crops one pixel too small": [
            ("    five = torch.stack([images[:, :, t:t + size, l:l + size] for t, l in starts], dim=1)",
             "    five = torch.stack([images[:, :, t:t + size - 1, l:l + size - 1] for t, l in starts], dim=1)"),
        ],
    },
    "pca-colour-impl": {
        "eigenvalues in eigh's ascending order": [
            ("    return values.flip(0), vectors.flip(1)", "    return values, vectors"),
        ],
        "the covariance of grey levels 0..255": [
            ("    x = images.double() / 255.0 if images.dtype == torch.uint8 else images.double()", "    x = images.double()"),
        ],
        "not centred: the second moment, not the covariance": [
            ("    centred = pixels - pixels.mean(dim=1, keepdim=True)", "    centred = pixels"),
        ],
        "the sample covariance (divided by n - 1)": [
            ("    covariance = centred @ centred.T / pixels.shape[1]", "    covariance = centred @ centred.T / (pixels.shape[1] - 1)"),
        ],
        "the eigenvectors as rows in the shift": [
            ("    shift = (alphas * eigenvalues) @ eigenvectors.T  # (N, 3): row n is sum_i alpha_ni lambda_i p_i",
             "    shift = (alphas * eigenvalues) @ eigenvectors"),
        ],
        "the standard deviations (square roots) instead of the eigenvalues": [
            ("    shift = (alphas * eigenvalues) @ eigenvectors.T  # (N, 3): row n is sum_i alpha_ni lambda_i p_i",
             "    shift = (alphas * eigenvalues.sqrt()) @ eigenvectors.T"),
        ],
        "the pixels of the channels mixed up (reshape without moving the channel axis)": [
            ("    pixels = x.permute(1, 0, 2, 3).reshape(3, -1)", "    pixels = x.reshape(3, -1)"),
        ],
    },
    "paper-init-impl": {
        "variance 0.01 (standard deviation 0.1)": [
            ("            layer.weight.normal_(0.0, 0.01)", "            layer.weight.normal_(0.0, 0.1)"),
        ],
        "the biases of 1 one layer off (conv1, conv3, conv4, fc6, fc7)": [
            ("            layer.bias.fill_(1.0 if index in (1, 3, 4, 5, 6) else 0.0)", "            layer.bias.fill_(1.0 if index in (0, 2, 3, 5, 6) else 0.0)"),
        ],
        "every bias at 1": [
            ("            layer.bias.fill_(1.0 if index in (1, 3, 4, 5, 6) else 0.0)", "            layer.bias.fill_(1.0)"),
        ],
        "fc8's biases at 1 too": [
            ("            layer.bias.fill_(1.0 if index in (1, 3, 4, 5, 6) else 0.0)", "            layer.bias.fill_(1.0 if index in (1, 3, 4, 5, 6, 7) else 0.0)"),
        ],
        "the convolutions only": [
            ("        for index, layer in enumerate(convs + linears):", "        for index, layer in enumerate(convs):"),
        ],
        "uniform weights of the same standard deviation's range": [
            ("            layer.weight.normal_(0.0, 0.01)", "            layer.weight.uniform_(-0.01, 0.01)"),
        ],
        "uniform weights with standard deviation 0.01": [
            ("            layer.weight.normal_(0.0, 0.01)", "            layer.weight.uniform_(-0.01 * 3**0.5, 0.01 * 3**0.5)"),
        ],
        "weights of +-0.01, random signs": [
            ("            layer.weight.normal_(0.0, 0.01)", "            layer.weight.copy_(0.01 * torch.randint(0, 2, layer.weight.shape).float().mul(2).sub(1))"),
        ],
    },
    "paper-sgd-impl": {
        "torch's form: the velocity of gradients, the rate applied to it": [
            ("""\
            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)
            w.add_(v)""", """\
            v.mul_(momentum).add_(g).add_(w, alpha=decay)
            w.add_(v, alpha=-lr)"""),
        ],
        "weight decay without the learning rate": [
            ("            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)", "            v.mul_(momentum).add_(w, alpha=-decay).add_(g, alpha=-lr)"),
        ],
        "the weights moved by the old velocity": [
            ("""\
            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)
            w.add_(v)""", """\
            w.add_(v)
            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)"""),
        ],
        "the velocity rebound, not updated in place": [
            ("""\
        for w, g, v in zip(weights, grads, velocities):
            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)""", """\
        for w, g, v in zip(weights, grads, velocities):
            v = momentum * v - decay * lr * w - lr * g"""),
        ],
        "no momentum": [
            ("            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)", "            v.zero_().add_(w, alpha=-decay * lr).add_(g, alpha=-lr)"),
        ],
    },
    "receptive-fields-impl": {
        "the kernels added up (the strides forgotten)": [
            ("        r = r + (k - 1) * j", "        r = r + (k - 1)"),
        ],
        "the stride updated before the field": [
            ("""\
        r = r + (k - 1) * j
        j = j * s""", """\
        j = j * s
        r = r + (k - 1) * j"""),
        ],
        "the field as kernel times stride": [
            ("        r = r + (k - 1) * j", "        r = k * j"),
        ],
        "the strides added, not multiplied": [
            ("        j = j * s", "        j = j + s - 1"),
        ],
    },
}

DELEGATING = {
    "alexnet-shapes-impl": """
def alexnet_shapes(size=224, conv1=(11, 4, 2)):
    sides = alexnet.map_sizes(alexnet.Design(size=size, conv1=conv1))
    widths = dict(conv1=96, pool1=96, conv2=256, pool2=256, conv3=384, conv4=384, conv5=256, pool5=256)
    return {name: (widths[name], side, side) for name, side in sides.items()}
""",
    "alexnet-parameters-impl": """
def alexnet_parameters(widths=(96, 256, 384, 384, 256), hidden=4096, num_classes=1000, pool5=6, groups=2):
    size = 224 if pool5 == 6 else 56
    design = alexnet.Design(num_classes=num_classes, size=size, widths=tuple(widths), hidden=hidden, groups=groups)
    return alexnet.parameter_counts(alexnet.AlexNet(design))
""",
    "lrn-impl": {
        "coursekit's": """
def local_response_norm(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    return alexnet.local_response_norm(a, k, n, alpha, beta)
""",
        "torch's functional form, converted": """
def local_response_norm(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    return torch.nn.functional.local_response_norm(a, n, alpha=n * alpha, beta=beta, k=k)
""",
    },
    "dropout-impl": """
def paper_dropout(x, p=0.5, training=True, generator=None):
    return alexnet.paper_dropout(x, p, training, generator)
""",
    "ten-crops-impl": """
def ten_crops(images, size):
    return augment.ten_crops(images, size)
""",
    "pca-colour-impl": """
def pca_colour(images):
    return augment.pca_colour_basis(images)


def colour_shift(x, eigenvalues, eigenvectors, alphas):
    return augment.pca_colour_shift(x, eigenvalues, eigenvectors, alphas)
""",
    "paper-init-impl": """
def paper_init(model):
    return alexnet.paper_init_(model)
""",
    "paper-sgd-impl": """
def paper_sgd_step(weights, grads, velocities, lr, momentum=0.9, decay=0.0005):
    optimiser = alexnet.PaperSGD(weights, lr=lr, momentum=momentum, decay=decay)
    for w, g, v in zip(weights, grads, velocities):
        w.grad = g
        optimiser.state[w]["velocity"] = v
    optimiser.step()
""",
    "receptive-fields-impl": """
def receptive_fields(layers):
    return alexnet.receptive_fields(layers)
""",
}

# Valid answers written another way: each must pass every test cell of its exercise.
VALID = {
    "alexnet-shapes-impl": {
        "the shapes as lists, the keys in another order": [
            ("    return shapes", "    return {name: list(shapes[name]) for name in reversed(list(shapes))}"),
        ],
    },
    "lrn-impl": {
        "the window sum as a convolution over channels": [
            ("""\
    C = a.shape[1]
    squares = a * a
    sums = torch.zeros_like(a)
    for i in range(C):
        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2)
        sums[:, i] = squares[:, lo:hi + 1].sum(dim=1)""", """\
    N, C, H, W = a.shape
    squares = (a * a).permute(0, 2, 3, 1).reshape(-1, 1, C)
    window = torch.ones(1, 1, n, dtype=a.dtype)
    sums = torch.nn.functional.conv1d(squares, window, padding=n // 2)[..., :C]
    sums = sums.reshape(N, H, W, C).permute(0, 3, 1, 2)"""),
        ],
    },
    "dropout-impl": {
        "torch.where with a uniform draw": [
            ("""\
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device)""", """\
    u = torch.rand(x.shape, generator=generator).to(x.device)
    return torch.where(u < p, torch.zeros_like(x), x)"""),
        ],
    },
    "pca-colour-impl": {
        "the shift added to x in place, and x returned": [
            ("    return x + shift[:, :, None, None]", "    x += shift[:, :, None, None]\n    return x"),
        ],
        "torch.cov and numpy's eigh, sorted by argsort; the shift with einsum": [
            ("""\
    pixels = x.permute(1, 0, 2, 3).reshape(3, -1)
    centred = pixels - pixels.mean(dim=1, keepdim=True)
    covariance = centred @ centred.T / pixels.shape[1]
    values, vectors = torch.linalg.eigh(covariance)  # ascending
    return values.flip(0), vectors.flip(1)""", """\
    covariance = torch.cov(x.transpose(0, 1).reshape(3, -1), correction=0)
    values, vectors = np.linalg.eigh(covariance.numpy())
    order = np.argsort(values)[::-1]
    return torch.from_numpy(values[order].copy()), torch.from_numpy(-vectors[:, order])"""),
            ("    shift = (alphas * eigenvalues) @ eigenvectors.T  # (N, 3): row n is sum_i alpha_ni lambda_i p_i",
             "    shift = torch.einsum('ci,ni,i->nc', eigenvectors, alphas, eigenvalues)"),
        ],
    },
    "paper-init-impl": {
        "torch.nn.init, the layers picked by name in an AlexNet": [
            ("""\
            layer.weight.normal_(0.0, 0.01)
            layer.bias.fill_(1.0 if index in (1, 3, 4, 5, 6) else 0.0)""", """\
            torch.nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            torch.nn.init.constant_(layer.bias, float(index in {1, 3, 4, 5, 6}))"""),
        ],
    },
    "paper-sgd-impl": {
        "slice assignment": [
            ("""\
            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)
            w.add_(v)""", """\
            v[...] = momentum * v - decay * lr * w - lr * g
            w[...] = w + v"""),
        ],
    },
    "receptive-fields-impl": {
        "a list of lists": [
            ("        out.append((r, j))", "        out.append([r, j])"),
        ],
    },
}
