"""Plausible wrong answers to the stage-04 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    'pixel-statistics-impl': {
        'grey levels not scaled to [0, 1]': [
            ("""\
    x = images.float() / 255.0
    mean = x.mean()
    return float(mean), float((x - mean).square().mean().sqrt())
""",
             """\
    x = images.float()
    return float(x.mean()), float(x.std(unbiased=False))
"""),
        ],
        'the standard deviation of each image, averaged': [
            ("""\
    mean = x.mean()
    return float(mean), float((x - mean).square().mean().sqrt())
""",
             '    return float(x.mean()), float(x.std(dim=(1, 2), unbiased=False).mean())'),
        ],
        'squares taken in uint8, which wrap around at 256': [
            ("""\
    x = images.float() / 255.0
    mean = x.mean()
    return float(mean), float((x - mean).square().mean().sqrt())
""",
             """\
    mean = images.float().mean() / 255.0
    mean_square = (images * images).float().mean() / 255.0**2
    return float(mean), float((mean_square - mean**2).clamp(min=0).sqrt())
"""),
        ],
        'the sample standard deviation (divided by n - 1)': [
            ("""\
    x = images.float() / 255.0
    mean = x.mean()
    return float(mean), float((x - mean).square().mean().sqrt())
""",
             """\
    x = images.double() / 255.0
    return float(x.mean()), float(x.std())
"""),
        ],
    },
    'confusion-matrix-impl': {
        'transposed: rows are the predictions': [
            ("""\
    pairs = labels.long() * num_classes + predicted.long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )
""",
             """\
    pairs = predicted.long() * num_classes + labels.long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
"""),
        ],
        'bincount without minlength, so a missing last class breaks the shape': [
            ("""\
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )
""",
             '    return torch.bincount(pairs).reshape(num_classes, num_classes)'),
        ],
        'only the errors counted': [
            ("""\
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )
""",
             """\
    C = torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return C - torch.diag(torch.diag(C))
"""),
        ],
    },
    'permute-pixels-impl': {
        'the inverse permutation: input pixel j sent to output position permutation[j]': [
            ('    return images.reshape(n, h * w)[:, permutation.to(images.device)].reshape(n, h, w)',
             """\
    flat = images.reshape(n, h * w)
    out = torch.empty_like(flat)
    out[:, permutation] = flat
    return out.reshape(n, h, w)
"""),
        ],
        'pixels read column by column instead of row by row': [
            ('    return images.reshape(n, h * w)[:, permutation.to(images.device)].reshape(n, h, w)',
             '    return images.transpose(1, 2).reshape(n, h * w)[:, permutation].reshape(n, w, h).transpose(1, 2)'),
        ],
        'a fresh random permutation instead of the given one': [
            ('    return images.reshape(n, h * w)[:, permutation.to(images.device)].reshape(n, h, w)',
             '    return images.reshape(n, h * w)[:, torch.randperm(h * w)].reshape(n, h, w)'),
        ],
    },
    'shuffle-datasets-impl': {
        'a different permutation for the training and the test images': [
            ("""\
    permutation = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return permute_pixels(train, permutation), permute_pixels(test, permutation), permutation
""",
             """\
    g = torch.Generator().manual_seed(seed)
    first, second = torch.randperm(h * w, generator=g), torch.randperm(h * w, generator=g)
    return permute_pixels(train, first), permute_pixels(test, second), first
"""),
        ],
        'the seed ignored, so runs cannot be repeated': [
            ('    permutation = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))',
             '    permutation = torch.randperm(h * w)'),
        ],
        'the order of the images shuffled instead of their pixels': [
            ("""\
    h, w = train.shape[1:]
    permutation = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return permute_pixels(train, permutation), permute_pixels(test, permutation), permutation
""",
             """\
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=g)
    return train[order], test[order[: len(test)] % len(test)], order
"""),
        ],
    },
    'lenet-shapes-impl': {
        "a convolution's output size off by one (n - k)": [
            ('        n = n - 5 + 1 if kind == "conv" else n // 2', '        n = n - 5 if kind == "conv" else n // 2'),
        ],
        'sub-sampling rounded up': [
            ('        n = n - 5 + 1 if kind == "conv" else n // 2', '        n = n - 5 + 1 if kind == "conv" else (n + 1) // 2'),
        ],
        'sub-sampling keeps the channels of the next convolution': [
            ('        ("S2", 6, "pool"),', '        ("S2", 16, "pool"),'),
            ('        ("S4", 16, "pool"),', '        ("S4", 120, "pool"),'),
        ],
    },
    'conv-parameters-impl': {
        'biases forgotten': [
            ('    return inputs_read * kernel_size * kernel_size + out_channels',
             '    return inputs_read * kernel_size * kernel_size'),
        ],
        'kernel size not squared': [
            ('    return inputs_read * kernel_size * kernel_size + out_channels',
             '    return inputs_read * kernel_size + out_channels'),
        ],
        'the connection table ignored': [
            ("""\
    inputs_read = in_channels * out_channels if table is None else sum(len(row) for row in table)
    return inputs_read * kernel_size * kernel_size + out_channels
""",
             '    return in_channels * out_channels * kernel_size * kernel_size + out_channels'),
        ],
    },
    'lenet-parameters-impl': {
        'sub-sampling counted as having no parameters': [
            ('        "S2": 2 * 6,', '        "S2": 0,'),
            ('        "S4": 2 * 16,', '        "S4": 0,'),
        ],
        'the connection table always used': [
            ('        "C3": conv_parameters(6, 16, 5, table=models.LENET_C3_TABLE if partial else None),',
             '        "C3": conv_parameters(6, 16, 5, table=models.LENET_C3_TABLE),'),
        ],
        'F6 without its biases': [
            ('        "F6": 120 * 84 + 84,', '        "F6": 120 * 84,'),
        ],
    },
    'make-cnn-impl': {
        'no ReLU: a linear map made of convolutions': [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )'),
        ],
        'average pooling instead of max pooling': [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )'),
        ],
        'no padding: 28 -> 26 -> 13 -> 11 -> 5': [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 5 * 5, 10),\n    )'),
        ],
        'the convolutions without biases': [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1, bias=False), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1, bias=False), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )'),
        ],
        'a ReLU after the last layer too': [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10), torch.nn.ReLU(),\n    )'),
        ],
        'flattened in the order row, column, map': [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    class Permute(torch.nn.Module):\n        def forward(self, x):\n            return x.permute(0, 2, 3, 1)\n\n    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        Permute(), torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )'),
        ],
    },
    'subsampling-impl': {
        'the mean of each block, not its sum': [
            ('        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).sum(dim=(3, 5))',
             '        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).mean(dim=(3, 5))'),
        ],
        'max pooling instead of the sum': [
            ('        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).sum(dim=(3, 5))',
             '        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).amax(dim=(3, 5))'),
        ],
        'no squashing': [
            ('        return torch.tanh(blocks * self.coefficient[:, None, None] + self.bias[:, None, None])',
             '        return blocks * self.coefficient[:, None, None] + self.bias[:, None, None]'),
        ],
        'the coefficient applied after tanh': [
            ('        return torch.tanh(blocks * self.coefficient[:, None, None] + self.bias[:, None, None])',
             '        return torch.tanh(blocks) * self.coefficient[:, None, None] + self.bias[:, None, None]'),
        ],
        'one bias for all maps': [
            ('        self.coefficient = torch.nn.Parameter(torch.full((channels,), 0.25))\n        self.bias = torch.nn.Parameter(torch.zeros(channels))',
             '        self.coefficient = torch.nn.Parameter(torch.full((channels,), 0.25))\n        self.bias = torch.nn.Parameter(torch.zeros(1))'),
            ('        return torch.tanh(blocks * self.coefficient[:, None, None] + self.bias[:, None, None])',
             '        return torch.tanh(blocks * self.coefficient[:, None, None] + self.bias)'),
        ],
        'a coefficient that is not trainable': [
            ('        self.coefficient = torch.nn.Parameter(torch.full((channels,), 0.25))\n        self.bias = torch.nn.Parameter(torch.zeros(channels))',
             '        self.coefficient = torch.full((channels,), 0.25)\n        self.bias = torch.nn.Parameter(torch.zeros(channels))'),
        ],
        'blocks that overlap (stride 1)': [
            ('        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).sum(dim=(3, 5))',
             '        blocks = (x[:, :, :-1, :-1] + x[:, :, 1:, :-1] + x[:, :, :-1, 1:] + x[:, :, 1:, 1:])'),
        ],
    },
}

DELEGATING = {
    "pixel-statistics-impl": """
from coursekit.nets.training import MNIST_MEAN, MNIST_STD

def pixel_statistics(images):
    return MNIST_MEAN, MNIST_STD
""",
    "confusion-matrix-impl": "from coursekit.nets.training import confusion_matrix",
    "permute-pixels-impl": "from coursekit.data.transforms import permute_pixels",
    "shuffle-datasets-impl": """
from coursekit.data.transforms import permute_pixels, pixel_permutation

def shuffle_datasets(train, test, seed):
    permutation = pixel_permutation(train.shape[1] * train.shape[2], seed)
    return permute_pixels(train, permutation), permute_pixels(test, permutation), permutation
""",
    "lenet-shapes-impl": {
        "delegates to torch's layers": """
def lenet_shapes(size=32):
    net = models.LeNet5()
    x = torch.nn.functional.pad(torch.zeros(1, 1, size, size), (-2, -2, -2, -2))
    shapes = {}
    for name in ("c1", "s2", "c3", "s4", "c5"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name.upper(), tuple(o.shape[1:])))
    net(x)
    return shapes
""",
        "reads the shapes off stage 03's layers": """
from coursekit.convolution import layer

def lenet_shapes(size=32):
    x, shapes = np.zeros((1, 1, size, size)), {}
    for name, channels, kind in (("C1", 6, "conv"), ("S2", 6, "pool"), ("C3", 16, "conv"), ("S4", 16, "pool"), ("C5", 120, "conv")):
        x = layer.conv_forward(x, np.zeros((channels, x.shape[1], 5, 5)))[0] if kind == "conv" else layer.avg_pool(x, 2)
        shapes[name] = x.shape[1:]
    return shapes
""",
    },
    "make-cnn-impl": """
def make_cnn():
    return models.small_cnn()
""",
    "subsampling-impl": "Subsampling = models.Subsampling",
    "conv-parameters-impl": """
def conv_parameters(in_channels, out_channels, kernel_size, table=None):
    if table is not None:
        return models.parameter_count(models.PartialConv(table, kernel_size))
    return models.parameter_count(torch.nn.Conv2d(in_channels, out_channels, kernel_size))
""",
    "lenet-parameters-impl": """
def lenet_parameters(partial=True):
    net = models.LeNet5(partial=partial)
    counts = {name.upper(): models.parameter_count(getattr(net, name)) for name in ("c1", "s2", "c3", "s4", "c5", "f6")}
    counts["output"] = models.parameter_count(net.output)
    return counts
""",
}

# Exercises whose answer takes no input that a hidden test could vary: a lookup table cannot be told
# from the answer (the course checks skip the lookup-table proof for these, with this reason).
NO_INPUTS = {"lenet-parameters-impl": "it counts the parameters of one fixed architecture (the paper's LeNet-5)",
             "make-cnn-impl": "it builds one fixed architecture; its function is checked with hidden weights and images"}

# Test cells without hidden inputs, each with why: every other test cell checks values on hidden random
# inputs too (the course checks enforce it).
VISIBLE_ONLY = {'lenet-parameters-tests': 'it checks the parameter counts of one fixed architecture: no inputs to vary',
                'cnn-training': 'it checks what a short training run reaches, not values of given inputs'}


# Valid answers written another way: each must pass every test cell of its exercise.
VALID = {
    "lenet-shapes-impl": {
        "the keys in another order": [
            ("    return shapes", "    return dict(reversed(list(shapes.items())))"),
        ],
        "the shapes as lists": [
            ("    return shapes", "    return {name: list(shape) for name, shape in shapes.items()}"),
        ],
    },
    "make-cnn-impl": {
        "a module class with forward, its layers created in another order": [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    class CNN(torch.nn.Module):\n        def __init__(self):\n            super().__init__()\n            self.classify = torch.nn.Linear(32 * 7 * 7, 10)  # created first: the parameters come in another order\n            self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)\n            self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)\n\n        def forward(self, x):\n            F = torch.nn.functional\n            x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n            x = F.max_pool2d(F.relu(self.conv2(x)), 2)\n            return self.classify(x.reshape(len(x), -1))\n\n    return CNN()'),
        ],
        "max pooling before the ReLU (the two commute: relu is increasing)": [
            ('    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )',
             '    return torch.nn.Sequential(\n        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.MaxPool2d(2), torch.nn.ReLU(),\n        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.MaxPool2d(2), torch.nn.ReLU(),\n        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),\n    )'),
        ],
    },
    'subsampling-impl': {
        'avg_pool2d times 4': [
            ('        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).sum(dim=(3, 5))',
             '        blocks = 4 * torch.nn.functional.avg_pool2d(x, 2)'),
        ],
        'a grouped convolution with a 2x2 kernel of ones': [
            ('        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).sum(dim=(3, 5))',
             '        blocks = torch.nn.functional.conv2d(x, torch.ones(C, 1, 2, 2), stride=2, groups=C)'),
        ],
    },
}
