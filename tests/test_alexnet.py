"""coursekit.nets.alexnet and coursekit.nets.augment (stage 05) against the paper's numbers, torch's
own layers and optimiser, autograd, brute force and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.data import samples
from coursekit.nets import alexnet as A
from coursekit.nets import augment as G


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- the architecture ----------------------------------------------------------------------------

# the paper's layers, counted by hand: filters x (kernel area x input maps each filter reads) + biases
PAPER_PARAMETERS = {
    "conv1": 96 * (11 * 11 * 3) + 96,
    "conv2": 256 * (5 * 5 * 48) + 256,
    "conv3": 384 * (3 * 3 * 256) + 384,
    "conv4": 384 * (3 * 3 * 192) + 384,
    "conv5": 256 * (3 * 3 * 192) + 256,
    "fc6": (6 * 6 * 256) * 4096 + 4096,
    "fc7": 4096 * 4096 + 4096,
    "fc8": 4096 * 1000 + 1000,
}


def test_the_parameters_are_the_papers_sixty_million():
    model = A.AlexNet()
    assert A.parameter_counts(model) == PAPER_PARAMETERS
    total = sum(p.numel() for p in model.parameters())
    assert total == sum(PAPER_PARAMETERS.values()) == 60_965_224  # "60 million parameters"


def test_the_maps_have_the_papers_sizes_in_the_torch_model():
    model = A.AlexNet().eval()
    seen = {}
    for name, module in model.features.named_children():
        module.register_forward_hook(lambda m, args, out, name=name: seen.update({name: tuple(out.shape[1:])}))
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    assert seen["conv1"] == (96, 55, 55) and seen["pool1"] == (96, 27, 27)
    assert seen["conv2"] == (256, 27, 27) and seen["pool2"] == (256, 13, 13)
    assert seen["conv3"] == (384, 13, 13) and seen["conv4"] == (384, 13, 13) and seen["conv5"] == (256, 13, 13)
    assert seen["pool5"] == (256, 6, 6)
    sides = A.map_sizes(A.Design())
    assert all(sides[name] == seen[name][1] for name in sides)


def test_the_neurons_match_the_caption_except_conv1():
    caption = [253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    counted = list(A.neurons().values())
    assert counted[1:] == caption[1:]
    assert counted[0] == 55 * 55 * 96 == 290_400 != caption[0]  # the caption's first figure follows from no square map
    assert 224 * 224 * 3 == 150_528


def test_the_split_layers_read_half_the_maps():
    model = A.AlexNet()
    layers = model.layers()
    assert layers["conv2"].weight.shape == (256, 48, 5, 5)  # "256 kernels of size 5x5x48"
    assert layers["conv3"].weight.shape == (384, 256, 3, 3)
    assert layers["conv4"].weight.shape == (384, 192, 3, 3) and layers["conv5"].weight.shape == (256, 192, 3, 3)


@pytest.mark.parametrize("size,design", [(224, None), (56, "style")])
def test_the_two_towers_compute_the_one_towers_function(size, design):
    torch.manual_seed(0)
    one = A.AlexNet() if design is None else A.alexnet_style(37)
    A.paper_init_(one)
    with torch.no_grad():  # larger weights than the paper's start, so that every layer matters
        for layer in one.layers().values():
            layer.weight.mul_(12 if layer.weight.ndim == 4 else 4)
            layer.bias.copy_(seeded(*layer.bias.shape, seed=layer.bias.numel()) * 0.1)
    one.eval()
    two = A.TwoTowerAlexNet.from_one_tower(one, devices=("cpu", "cpu")).eval()
    assert sum(p.numel() for p in two.parameters()) == sum(p.numel() for p in one.parameters())
    x = seeded(3, 3, size, size, seed=5)
    with torch.no_grad():
        a, b = one(x), two(x)
    assert a.abs().max() > 1e-2  # the outputs are not all ~0: the test can tell networks apart
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))
    # and a network that mixes the towers' maps at conv2 (no groups) is a different function
    with torch.no_grad():
        two.towers[0].conv2.weight.copy_(two.towers[1].conv2.weight)
        assert (two(x) - a).abs().max() > 1e-3


def test_the_towers_share_one_device_unless_there_are_two_gpus():
    two = A.TwoTowerAlexNet(A.Design(num_classes=10, size=56, conv1=(11, 2, 5), widths=(8, 8, 8, 8, 8), hidden=8))
    devices = {p.device for p in two.parameters()}
    assert len(devices) == (2 if torch.cuda.device_count() >= 2 else 1)


@pytest.mark.gpu
def test_the_towers_run_model_parallel_on_two_gpus():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    one = A.alexnet_style(10).eval()
    two = A.TwoTowerAlexNet.from_one_tower(one).eval()
    assert {str(p.device) for p in two.towers[0].parameters()} == {"cuda:0"}
    assert {str(p.device) for p in two.towers[1].parameters()} == {"cuda:1"}
    x = seeded(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(two(x).cpu(), one(x), rtol=1e-3, atol=1e-4)


def test_a_two_tower_network_needs_two_groups_and_two_devices():
    with pytest.raises(ValueError, match="groups=2"):
        A.TwoTowerAlexNet(A.Design(groups=1, widths=(8, 8, 8, 8, 8), hidden=8))
    with pytest.raises(ValueError, match="two devices"):
        A.TwoTowerAlexNet(A.Design(widths=(8, 8, 8, 8, 8), hidden=8), devices=("cpu",))
    with pytest.raises(ValueError, match="split into 2 towers"):
        A.Design(widths=(9, 8, 8, 8, 8))


# -- local response normalisation ----------------------------------------------------------------

def lrn_brute_force(a, k, n, alpha, beta):
    a = a.double().numpy()
    out = np.empty_like(a)
    C = a.shape[1]
    for i in range(C):
        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2)
        out[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
    return out


@pytest.mark.parametrize("n", [5, 3, 7])
def test_lrn_is_the_papers_formula_and_torchs_with_alpha_times_n(n):
    a = seeded(2, 11, 4, 3, seed=n) * 30  # large enough that the normalisation is far from 1/k^beta
    ours = A.local_response_norm(a, 2.0, n, 1e-3, 0.75)
    np.testing.assert_allclose(ours.double().numpy(), lrn_brute_force(a, 2.0, n, 1e-3, 0.75), rtol=1e-5)
    torch_lrn = torch.nn.LocalResponseNorm(n, alpha=n * 1e-3, beta=0.75, k=2.0)(a)
    torch.testing.assert_close(ours, torch_lrn, rtol=1e-5, atol=1e-6)
    naive = torch.nn.LocalResponseNorm(n, alpha=1e-3, beta=0.75, k=2.0)(a)  # without the conversion
    assert (naive - ours).abs().max() > 1e-2


def test_lrn_in_groups_normalises_each_half_on_its_own():
    a = seeded(1, 8, 2, 2) * 40
    both = A.LocalResponseNorm(groups=2)(a)
    torch.testing.assert_close(both[:, :4], A.local_response_norm(a[:, :4]))
    torch.testing.assert_close(both[:, 4:], A.local_response_norm(a[:, 4:]))
    with pytest.raises(ValueError, match="equal groups"):
        A.LocalResponseNorm(groups=3)(a)


# -- dropout -------------------------------------------------------------------------------------

def test_the_papers_dropout_and_torchs_inverted_one_have_the_same_expectation():
    x = seeded(200, 500).abs() + 0.5
    g = torch.Generator().manual_seed(1)
    train = A.paper_dropout(x, 0.5, True, g)
    kept = train != 0
    assert torch.equal(train[kept], x[kept])  # the kept entries are unchanged
    assert abs(kept.float().mean().item() - 0.5) < 0.01
    torch.testing.assert_close(A.paper_dropout(x, 0.5, False), 0.5 * x)
    # expectations over many draws: the paper's training output is its test output on average
    draws = torch.stack([A.paper_dropout(x[:4], 0.3, True, g) for _ in range(4000)]).mean(0)
    torch.testing.assert_close(draws, A.paper_dropout(x[:4], 0.3, False), rtol=0.06, atol=0.0)
    inverted = torch.stack([torch.nn.functional.dropout(x[:4], 0.3, True) for _ in range(4000)]).mean(0)
    torch.testing.assert_close(0.7 * inverted, draws, rtol=0.08, atol=0.0)
    with pytest.raises(ValueError, match="p must lie"):
        A.paper_dropout(x, 1.0)


# -- initialisation and the update rule ------------------------------------------------------------

def test_the_papers_initialisation():
    model = A.paper_init_(A.AlexNet())
    for name, layer in model.layers().items():
        w = layer.weight.detach()
        assert abs(w.std().item() - 0.01) < 0.0005 and abs(w.mean().item()) < 0.0005, name
        assert torch.all(layer.bias == (1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0)), name
    two = A.paper_init_(A.TwoTowerAlexNet(A.Design(num_classes=10, size=56, conv1=(11, 2, 5),
                                                   widths=(8, 8, 8, 8, 8), hidden=8), devices=("cpu", "cpu")))
    assert torch.all(two.towers[1].conv2.bias == 1) and torch.all(two.towers[1].conv3.bias == 0)
    assert torch.all(two.fc8.bias == 0)
    with pytest.raises(ValueError, match="5 convolutions"):
        A.paper_init_(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def quadratic_grad(w):
    return 3.0 * w - 1.0  # the gradient of a fixed quadratic loss, to compare update rules on


def test_papersgd_takes_torchs_steps_with_a_constant_rate():
    w0 = seeded(7, seed=3)
    ours, theirs = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    opt_ours = A.PaperSGD([ours], lr=0.05, momentum=0.9, decay=0.0005)
    opt_theirs = torch.optim.SGD([theirs], lr=0.05, momentum=0.9, weight_decay=0.0005)
    for _ in range(20):
        for w, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            w.grad = quadratic_grad(w.detach())
            opt.step()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_papersgd_is_the_papers_rule_when_the_rate_changes():
    w0 = seeded(5, seed=4).double()
    rates = [0.1] * 5 + [0.01] * 5  # the paper divides the rate by 10 when the validation error stalls
    w, v = w0.numpy().copy(), np.zeros(5)
    for eps in rates:  # the paper's equations, written out
        v = 0.9 * v - 0.0005 * eps * w - eps * quadratic_grad(torch.from_numpy(w)).numpy()
        w = w + v
    ours, theirs = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    opt_ours, opt_theirs = A.PaperSGD([ours], lr=0.1), torch.optim.SGD([theirs], lr=0.1, momentum=0.9, weight_decay=0.0005)
    for eps in rates:
        for param, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.param_groups[0]["lr"] = eps
            param.grad = quadratic_grad(param.detach())
            opt.step()
    np.testing.assert_allclose(ours.detach().numpy(), w, rtol=1e-12)
    assert np.abs(theirs.detach().numpy() - w).max() > 1e-3  # torch's velocity is rescaled by the new rate


# -- receptive fields ------------------------------------------------------------------------------

def receptive_field_by_autograd(layers, size=256):
    """The rows of input pixels that one output unit depends on, and the step to the next unit's, by autograd."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    y = x
    for kernel, stride in layers:
        y = torch.nn.functional.conv2d(y, torch.ones(1, 1, kernel, kernel), stride=stride)
    y[0, 0, 0, 0].backward()  # the first unit: no padding, so its field is not clipped
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    # the step between outputs: where a neighbouring unit's field starts
    x2 = torch.zeros(1, 1, size, size, requires_grad=True)
    y2 = x2
    for kernel, stride in layers:
        y2 = torch.nn.functional.conv2d(y2, torch.ones(1, 1, kernel, kernel), stride=stride)
    y2[0, 0, 1, 0].backward()
    rows2 = torch.nonzero(x2.grad[0, 0].abs().sum(1)).flatten()
    return int(rows.max() - rows.min() + 1), int(rows2.min() - rows.min())


@pytest.mark.parametrize("layers", [
    [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)],  # AlexNet
    [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2)],  # VGG-like
    [(7, 2), (3, 2), (1, 1), (3, 2)],
])
def test_receptive_fields_match_autograd(layers):
    found = A.receptive_fields(layers)
    for depth in range(1, len(layers) + 1):
        assert found[depth - 1] == receptive_field_by_autograd(layers[:depth]), depth


def test_alexnets_receptive_fields():
    fields = A.alexnet_receptive_fields()
    assert fields["conv1"] == (11, 4) and fields["conv5"] == (163, 16) and fields["pool5"] == (195, 32)


def test_flops_counts_the_multiply_adds():
    d = A.Design(num_classes=3, size=56, conv1=(11, 2, 5), widths=(4, 6, 8, 8, 6), hidden=10)
    sides = A.map_sizes(d)
    by_hand = (sides["conv1"] ** 2 * 4 * 3 * 121 + sides["conv2"] ** 2 * 6 * 2 * 25
               + sides["conv3"] ** 2 * 9 * (8 * 6 + 8 * 4 + 6 * 4) + 6 * sides["pool5"] ** 2 * 10 + 100 + 30)
    assert A.flops(d) == by_hand


# -- augmentation --------------------------------------------------------------------------------

def test_ten_crops_are_the_corners_the_centre_and_their_mirrors():
    x = seeded(2, 3, 9, 11)
    crops = G.ten_crops(x, 5)
    assert crops.shape == (2, 10, 3, 5, 5)
    windows = [(0, 0), (0, 6), (4, 0), (4, 6), (2, 3)]
    for i, (t, l) in enumerate(windows):
        assert torch.equal(crops[:, i], x[..., t:t + 5, l:l + 5])
        assert torch.equal(crops[:, 5 + i], x[..., t:t + 5, l:l + 5].flip(-1))
    assert torch.equal(G.centre_crop(x, 5), crops[:, 4])
    with pytest.raises(ValueError, match="does not fit"):
        G.ten_crops(x, 10)


def test_ten_crop_probabilities_average_the_softmax():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x = seeded(3, 3, 6, 6)
    crops = G.ten_crops(x, 4)
    with torch.no_grad():
        expected = torch.stack([model(crops[:, i]).softmax(-1) for i in range(10)]).mean(0)
    torch.testing.assert_close(G.ten_crop_probabilities(model, x, 4, batch_size=2), expected)


def test_the_pca_colour_basis_diagonalises_numpys_covariance():
    images = torch.randint(0, 256, (4, 3, 6, 5), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    images[:, 1] = (images[:, 0].int() * 3 // 4 + images[:, 1].int() // 4).to(torch.uint8)  # correlated channels
    values, vectors = G.pca_colour_basis(images)
    pixels = images.double().numpy().transpose(1, 0, 2, 3).reshape(3, -1) / 255
    cov = np.cov(pixels, bias=True)
    np.testing.assert_allclose(vectors.numpy() @ np.diag(values.numpy()) @ vectors.numpy().T, cov, atol=1e-12)
    np.testing.assert_allclose(vectors.numpy().T @ vectors.numpy(), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(values.numpy(), np.sort(np.linalg.eigvalsh(cov))[::-1], rtol=1e-10)


def test_the_pca_colour_shift_adds_one_colour_per_image():
    x = seeded(2, 3, 4, 4)
    values = torch.tensor([0.3, 0.1, 0.02])
    vectors = torch.linalg.qr(seeded(3, 3, seed=9))[0]
    alphas = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.3, 3.0]])
    out = G.pca_colour_shift(x, values, vectors, alphas)
    for n in range(2):
        shift = sum(alphas[n, i] * values[i] * vectors[:, i] for i in range(3))
        torch.testing.assert_close(out[n], x[n] + shift[:, None, None])
    with pytest.raises(ValueError, match=r"alphas must have shape \(2, 3\)"):
        G.pca_colour_shift(x, values, vectors, alphas[:1])


def test_the_paper_augmentation_crops_flips_and_shifts_colour_on_the_device():
    x = torch.rand(64, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    values, vectors = G.pca_colour_basis(x)
    plain = G.PaperAugment(8, values, vectors, sigma=0.0, flip=False)
    out = plain(x, torch.Generator().manual_seed(1))
    assert out.shape == (64, 3, 8, 8)
    # each output is one 8x8 window of its image
    for n in range(4):
        windows = x[n].unfold(1, 8, 1).unfold(2, 8, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 8, 8)
        assert any(torch.equal(w, out[n]) for w in windows)
    coloured = G.PaperAugment(8, values, vectors, mean=torch.zeros(3), sigma=0.1)(x, torch.Generator().manual_seed(1))
    shift = (coloured - coloured.mean((2, 3), keepdim=True)).abs().max()
    assert coloured.shape == (64, 3, 8, 8) and shift > 0


def test_exemplar_patches_are_windows_of_the_rescaled_photos():
    patches, where = samples.exemplar_patches(6, size=32, seed=3)
    assert patches.shape == (6, 3, 32, 32) and patches.dtype == np.uint8
    again, _ = samples.exemplar_patches(6, size=32, seed=3)
    assert np.array_equal(patches, again)
    name, top, left = where[0]
    photo = samples._resized(name, 256)
    assert min(photo.shape[:2]) == 256
    assert np.array_equal(patches[0], photo[top:top + 32, left:left + 32].transpose(2, 0, 1))
    with pytest.raises(ValueError, match="num_classes"):
        samples.exemplar_patches(0)
