"""coursekit.retrieval.cam (stage 07): class activation maps of the real EfficientNet-Lite0 on a real photo
(their mean plus the bias is the network's logits, they are linear in the weights, the cat's map is
highest on the cat), bilinear upsampling against a hand-computed ramp, and CroW against python loops
over channels and positions and its normalisation identity. The weights must be in the cache
(``coursekit data fetch``, once, online); nothing here downloads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coursekit.data.samples import colour_photo
from coursekit.nets.pretrained import load_efficientnet_lite0, preprocess
from coursekit.retrieval import cam as C

CATS = range(281, 286)  # ImageNet's tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def chelsea():
    """The photo (300x451, a cat's face filling its left four fifths) resized, not cropped, to 224x224,
    and the network's logits and head features for it."""
    model = load_efficientnet_lite0("cpu", download=False)
    image = torch.from_numpy(colour_photo("chelsea")).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    with torch.no_grad():
        x = preprocess(image)
        features = model.features(x)
        logits = model(x)
    return features, logits, model.classifier.weight.detach(), model.classifier.bias.detach()


def sparse_maps(*shape, seed=0, sparsity=0.6):
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(*shape, generator=g, dtype=torch.float64) * 6
    return values * (torch.rand(*shape, generator=g, dtype=torch.float64) > sparsity)


# -- CAM -----------------------------------------------------------------------------------------------


def test_the_mean_of_every_class_map_plus_its_bias_is_the_networks_logit(chelsea):
    features, logits, weight, bias = chelsea
    every_class = torch.arange(1000)[None]  # (N, k) = (1, 1000): all the maps of the image
    maps = C.class_activation_maps(features, weight, every_class)
    assert maps.shape == (1, 1000, 7, 7)
    torch.testing.assert_close(maps.mean(dim=(-2, -1)) + bias, logits, rtol=1e-5, atol=1e-4)
    top = int(logits.argmax())
    assert top in CATS
    one = C.class_activation_maps(features, weight, top)
    assert one.shape == (1, 7, 7)
    torch.testing.assert_close(one, maps[:, top])


def test_class_maps_are_linear_in_the_weights(chelsea):
    features = chelsea[0].double()
    g = torch.Generator().manual_seed(1)
    w1, w2 = (torch.randn(3, 1280, generator=g, dtype=torch.float64) for _ in range(2))
    classes = torch.tensor([[0, 2]])
    combined = C.class_activation_maps(features, 2.5 * w1 - 0.5 * w2, classes)
    expected = (2.5 * C.class_activation_maps(features, w1, classes)
                - 0.5 * C.class_activation_maps(features, w2, classes))
    torch.testing.assert_close(combined, expected, rtol=1e-12, atol=1e-10)


def test_the_top_class_map_is_highest_on_the_cat(chelsea):
    features, logits, weight, _ = chelsea
    maps = C.upsample_maps(C.class_activation_maps(features, weight, logits.argmax(dim=1)), (300, 451))
    assert maps.shape == (1, 300, 451)
    row, column = divmod(int(maps[0].argmax()), 451)
    assert 20 <= row < 290 and 40 <= column < 380  # inside the box of the cat's face, in the photo's pixels
    face, background = maps[0, 40:280, 60:360].mean(), maps[0, :, 400:].mean()  # the right strip is a wall
    assert face > 2 * background


def test_one_class_per_image_and_several_classes_per_image_are_the_sum_by_hand():
    g = torch.Generator().manual_seed(2)
    features = sparse_maps(3, 4, 2, 3, seed=3)
    weights = torch.randn(5, 4, generator=g, dtype=torch.float64)
    per_image = C.class_activation_maps(features, weights, torch.tensor([4, 0, 2]))
    several = C.class_activation_maps(features, weights, torch.tensor([[1, 3], [0, 0], [4, 2]]))
    assert per_image.shape == (3, 2, 3) and several.shape == (3, 2, 2, 3)
    f, w = features.numpy(), weights.numpy()
    for n, c in enumerate([4, 0, 2]):
        for y in range(2):
            for x in range(3):
                assert per_image[n, y, x].item() == pytest.approx(sum(w[c, k] * f[n, k, y, x] for k in range(4)))
    for n, cs in enumerate([[1, 3], [0, 0], [4, 2]]):
        for j, c in enumerate(cs):
            np.testing.assert_allclose(several[n, j].numpy(), np.tensordot(w[c], f[n], axes=1), rtol=1e-12)


def test_class_maps_refuse_bad_input_naming_it():
    features, weights = torch.rand(2, 4, 3, 3), torch.rand(10, 4)
    with pytest.raises(ValueError, match="classes must be class indices in 0..9; got 10"):
        C.class_activation_maps(features, weights, 10)
    with pytest.raises(ValueError, match="got values from -1 to 3"):
        C.class_activation_maps(features, weights, torch.tensor([3, -1]))
    with pytest.raises(ValueError, match=r"classes must be an int, \(2,\) or \(2, k\); got \(3,\)"):
        C.class_activation_maps(features, weights, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer tensor"):
        C.class_activation_maps(features, weights, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"weights must be \(C, K\) with K = 4.*got \(10, 5\)"):
        C.class_activation_maps(features, torch.rand(10, 5), 0)
    with pytest.raises(ValueError, match=r"features must be \(N, K, H, W\)"):
        C.class_activation_maps(torch.rand(4, 3, 3), weights, 0)


def test_upsampling_is_bilinear_with_pixel_centres():
    # align_corners=False: output pixel x samples the input at (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped to [0, 1]: a ramp 0, 1 becomes 0, 0.25, 0.75, 1 (and in the other direction too)
    ramp = torch.tensor([[[0.0, 1.0]]])
    np.testing.assert_allclose(C.upsample_maps(ramp, (1, 4))[0, 0].numpy(), [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(C.upsample_maps(ramp.transpose(1, 2), (4, 1))[0, :, 0].numpy(), [0, 0.25, 0.75, 1])
    several = torch.full((2, 3, 7, 7), 2.5)
    assert torch.equal(C.upsample_maps(several, 224), torch.full((2, 3, 224, 224), 2.5))
    with pytest.raises(ValueError, match="maps must be"):
        C.upsample_maps(torch.zeros(7, 7), 224)
    with pytest.raises(ValueError, match="size must be"):
        C.upsample_maps(torch.zeros(1, 7, 7), (224, 0))


# -- CroW ----------------------------------------------------------------------------------------------


def test_crow_spatial_weight_is_normalised_so_that_its_fourth_powers_sum_to_one():
    x = sparse_maps(3, 8, 5, 6, seed=4)
    s = C.crow_spatial_weight(x)
    assert s.shape == (3, 5, 6)
    np.testing.assert_allclose(s.pow(4).sum(dim=(-2, -1)).numpy(), 1, rtol=1e-12)
    # in general ||S^b||_a = 1, and S is (S' / ||S'||_a)^(1/b) position by position
    s = C.crow_spatial_weight(x, a=3, b=1.5)
    np.testing.assert_allclose(s.pow(1.5).pow(3).sum(dim=(-2, -1)).numpy(), 1, rtol=1e-12)
    total = x.numpy().sum(axis=1)
    norm = (total ** 3).sum(axis=(1, 2), keepdims=True) ** (1 / 3)
    np.testing.assert_allclose(s.numpy(), (total / norm) ** (1 / 1.5), rtol=1e-12)


def loop_channel_weight(image: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """crow.py's channel weight for one image (K, H, W), channel by channel; the paper's form for eps > 0."""
    channels, height, width = image.shape
    q = [np.count_nonzero(image[k]) / (height * width) for k in range(channels)]
    if eps > 0:
        return np.array([math.log((channels * eps + sum(q)) / (eps + q[k])) for k in range(channels)])
    return np.array([math.log(sum(q) / q[k]) if q[k] > 0 else 0.0 for k in range(channels)])


def test_crow_channel_weight_is_the_log_inverse_sparsity_and_0_for_an_empty_channel():
    x = sparse_maps(2, 6, 4, 5, seed=5)
    x[0, 2] = 0  # an all-zero channel
    x[1, 4] = 0
    omega = C.crow_channel_weight(x)
    assert omega.shape == (2, 6) and omega[0, 2] == 0 and omega[1, 4] == 0
    for n in range(2):
        np.testing.assert_allclose(omega[n].numpy(), loop_channel_weight(x[n].numpy()), rtol=1e-12)
        np.testing.assert_allclose(C.crow_channel_weight(x, eps=1e-3)[n].numpy(),
                                   loop_channel_weight(x[n].numpy(), eps=1e-3), rtol=1e-12)
    # a channel active everywhere gets the least weight of the channels that are active at all
    x[0, 0] = 1.0
    omega = C.crow_channel_weight(x)[0]
    assert torch.all(omega[0] < omega[[1, 3, 4, 5]])


def loop_crow(image: np.ndarray) -> np.ndarray:
    """CroW for one image (K, H, W) with python loops over channels and positions (a = b = 2)."""
    channels, height, width = image.shape
    total = [[sum(image[k, i, j] for k in range(channels)) for j in range(width)] for i in range(height)]
    norm = math.sqrt(sum(total[i][j] ** 2 for i in range(height) for j in range(width)))
    weight = [[math.sqrt(total[i][j] / norm) for j in range(width)] for i in range(height)]
    omega = loop_channel_weight(image)
    return np.array([omega[k] * sum(weight[i][j] * image[k, i, j] for i in range(height) for j in range(width))
                     for k in range(channels)])


def test_crow_and_ucrow_are_the_loops():
    x = sparse_maps(3, 5, 4, 6, seed=6)
    x[1, 3] = 0
    out = C.crow(x)
    assert out.shape == (3, 5)
    for n in range(3):
        np.testing.assert_allclose(out[n].numpy(), loop_crow(x[n].numpy()), rtol=1e-12)
    np.testing.assert_allclose(C.ucrow(x).numpy(), x.numpy().sum(axis=(2, 3)), rtol=1e-14)


def test_a_blank_image_gets_zero_weights_not_nan():
    x = torch.zeros(2, 3, 4, 4)
    x[1, 0, 1, 1] = 2.0
    assert torch.equal(C.crow_spatial_weight(x)[0], torch.zeros(4, 4))
    assert torch.equal(C.crow(x)[0], torch.zeros(3)) and torch.isfinite(C.crow(x)).all()
    with pytest.raises(ValueError, match="a must be a positive number"):
        C.crow_spatial_weight(x, a=0)
    with pytest.raises(ValueError, match="eps must be a number >= 0"):
        C.crow_channel_weight(x, eps=-1)


@pytest.mark.gpu
def test_cam_and_crow_run_on_cuda_and_agree_with_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = sparse_maps(2, 16, 7, 7, seed=7).float()
    weights = torch.randn(10, 16, generator=torch.Generator().manual_seed(8))
    classes = torch.tensor([[3, 9], [0, 1]])
    pieces = {
        "cam": lambda f, w, c: C.upsample_maps(C.class_activation_maps(f, w, c), 32),
        "crow": lambda f, w, c: C.crow(f),
        "channel weight": lambda f, w, c: C.crow_channel_weight(f, eps=1e-3),
    }
    for name, piece in pieces.items():
        out = piece(x.cuda(), weights.cuda(), classes.cuda())
        assert out.device.type == "cuda", name
        torch.testing.assert_close(out.cpu(), piece(x, weights, classes), rtol=1e-5, atol=1e-5, msg=name)
