"""coursekit.retrieval.descriptors and .finetune: batched description and fine-tuning tuples.

Oracles: the network called on each image alone (not batched, not grouped), a brute-force walk for
N2 negatives, counting for the matching pairs, and the gradient of a frozen batch norm (its running
statistics must not move).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.nets.pretrained import load_efficientnet_lite0, preprocess
from coursekit.retrieval import descriptors, finetune


@pytest.fixture(scope="module")
def model():
    return load_efficientnet_lite0("cpu", download=False)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (5, 64, 96, 3), dtype=np.uint8)


def one_by_one(model, images, layer, pooling):
    with torch.no_grad():
        return torch.cat([pooling(model.feature_maps(preprocess(torch.from_numpy(im[None])), [layer])[layer])
                          for im in images])


def test_describe_equals_the_network_on_each_image_alone(model, images):
    mac = lambda maps: maps.amax((-2, -1))  # noqa: E731
    found = descriptors.describe(model, images, {"head": ("head", mac), "b6": ("block6", lambda m: m.mean((-2, -1)))},
                                 batch_size=2)
    torch.testing.assert_close(found["head"], one_by_one(model, images, "head", mac), rtol=1e-4, atol=1e-5)
    assert found["b6"].shape == (5, 192)


def test_images_of_several_sizes_come_back_in_their_order(model, images):
    mixed = [images[0], images[1][:40, :50], images[2], images[3][:32]]
    mac = lambda maps: maps.amax((-2, -1))  # noqa: E731
    found = descriptors.describe(model, mixed, {"mac": ("head", mac)}, batch_size=3)["mac"]
    for i, image in enumerate(mixed):
        torch.testing.assert_close(found[i], one_by_one(model, [image], "head", mac)[0], rtol=1e-4, atol=1e-5)


def test_feature_maps_have_the_layers_shape(model, images):
    maps = descriptors.feature_maps(model, images[:3], "block7", batch_size=2)
    assert maps.shape == (3, 320, 2, 3)  # stride 32: 64x96 -> 2x3
    torch.testing.assert_close(maps.amax((-2, -1)), one_by_one(model, images[:3], "block7", lambda m: m.amax((-2, -1))),
                               rtol=1e-4, atol=1e-5)


def rewrite(path, name, change, stamp=False):
    """Change one stored array of a cache file in place; with ``stamp``, write its sha256 beside it too."""
    from coursekit.data.registry import sha256_of

    with np.load(path) as stored:
        arrays = {key: stored[key].copy() for key in stored.files}
    change(arrays[name])
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    if stamp:
        path.with_name(path.name + ".sha256").write_text(sha256_of(path) + "\n")


def test_cached_descriptors_are_describes_computed_once_and_verified(model, images, tmp_path, monkeypatch):
    import functools

    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    mixed = [images[0], images[1][:40, :50], images[2]]
    wanted = {"mac": ("head", lambda m: m.amax((-2, -1))), "b6": ("block6", functools.partial(torch.mean, dim=(-2, -1)))}
    first = descriptors.cached_describe(model, mixed, wanted, batch_size=2)
    plain = descriptors.describe(model, mixed, wanted, batch_size=2)
    for name in wanted:
        torch.testing.assert_close(first[name], plain[name], rtol=0, atol=0)
    stored = sorted((tmp_path / "features").glob("describe-*.npz"))
    assert len(stored) == 1
    rewrite(stored[0], "mac", lambda a: a.__setitem__((0, 0), 1234), stamp=True)  # marked: a read, not a recomputation
    assert float(descriptors.cached_describe(model, mixed, wanted)["mac"][0, 0]) == 1234
    rewrite(stored[0], "mac", lambda a: a.__setitem__((0, 0), 99))  # altered without its stamp: recomputed
    torch.testing.assert_close(descriptors.cached_describe(model, mixed, wanted)["mac"], plain["mac"], rtol=0, atol=0)
    # another pooling's code, another argument of a partial, other images, another name: each another file
    descriptors.cached_describe(model, mixed, {**wanted, "mac": ("head", lambda m: m.amin((-2, -1)))})
    descriptors.cached_describe(model, mixed, {**wanted, "b6": ("block6", functools.partial(torch.mean, dim=-1))})
    descriptors.cached_describe(model, mixed[:2], wanted)
    descriptors.cached_describe(model, mixed, {"max": wanted["mac"], "b6": wanted["b6"]})
    assert len(list((tmp_path / "features").glob("describe-*.npz"))) == 5
    scale = 2.0
    with pytest.raises(TypeError, match="closure"):  # what a closure holds is not in its code
        descriptors.cached_describe(model, mixed, {"x": ("head", lambda m: scale * m.amax((-2, -1)))})


def test_cached_maps_are_the_networks_computed_once_and_verified(model, images, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    first = descriptors.cached_feature_maps(model, images[:3], "head", batch_size=2)
    assert first.dtype == torch.float16 and first.shape == (3, 1280, 2, 3)
    torch.testing.assert_close(first.float(), one_by_one(model, images[:3], "head", lambda m: m).half().float())
    stored = sorted((tmp_path / "features").glob("*.npz"))
    assert len(stored) == 1 and not list((tmp_path / "features").glob("*.part*"))
    # the second call reads the file: a file altered on disk with its stamp left is refused and recomputed
    rewrite(stored[0], "maps", lambda a: a.__setitem__((0, 0, 0, 0), a[0, 0, 0, 0] + 1))
    again = descriptors.cached_feature_maps(model, images[:3], "head", batch_size=2)
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    # a consistent file is read as it is (here a marked one, to tell a read from a recomputation)
    rewrite(stored[0], "maps", lambda a: a.__setitem__((0, 0, 0, 0), 1234), stamp=True)
    assert float(descriptors.cached_feature_maps(model, images[:3], "head")[0, 0, 0, 0]) == 1234
    # other images, another layer: another file
    descriptors.cached_feature_maps(model, images[1:4], "head")
    descriptors.cached_feature_maps(model, images[:3], "block7")
    assert len(list((tmp_path / "features").glob("*.npz"))) == 3
    with pytest.raises(ValueError, match="dtype"):
        descriptors.cached_feature_maps(model, images[:3], dtype=torch.bfloat16)


def test_describe_names_what_is_wrong(model, images):
    with pytest.raises(ValueError, match="layer must be one of"):
        descriptors.describe(model, images, {"x": ("conv9", lambda m: m)})
    with pytest.raises(ValueError, match="uint8"):
        descriptors.describe(model, images.astype(np.float32), {"x": ("head", lambda m: m)})
    with pytest.raises(ValueError, match=r"images\[1\]"):
        descriptors.describe(model, [images[0], images[1][..., :2]], {"x": ("head", lambda m: m)})
    with pytest.raises(ValueError, match="batch_size"):
        descriptors.describe(model, images, {"x": ("head", lambda m: m)}, batch_size=0)


def test_matching_pairs_pair_each_eligible_item_with_others_of_its_cluster():
    clusters = torch.tensor([3, 3, -1, 5, 3, 7, 5, -1, 3, 3])
    pairs = finetune.matching_pairs(clusters, per_item=50, seed=1)
    assert bool((clusters[pairs[:, 0]] == clusters[pairs[:, 1]]).all())
    assert bool((pairs[:, 0] != pairs[:, 1]).all())
    counts = np.bincount(pairs[:, 0].numpy(), minlength=10)
    eligible = [0, 1, 3, 4, 6, 8, 9]  # -1 and the lone 7 have no partner
    assert counts[eligible].tolist() == [50] * 7 and counts[[2, 5, 7]].sum() == 0
    partners_of_0 = set(pairs[pairs[:, 0] == 0, 1].tolist())
    assert partners_of_0 == {1, 4, 8, 9}  # every other member is drawn, over 50 draws


def test_the_head_starts_as_the_networks_last_layer_with_mac(model, images):
    head = finetune.RetrievalHead(model, "mac")
    x = preprocess(torch.from_numpy(images))
    with torch.no_grad():
        block7 = model.feature_maps(x, ["block7"])["block7"]
        expected = model.features(x).amax((-2, -1))
        expected = expected / (expected.norm(dim=1, keepdim=True) + 1e-6)
        torch.testing.assert_close(head.eval()(block7), expected, rtol=1e-4, atol=1e-5)


def toy_trainer(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    maps = torch.rand(24, 320, 2, 3, generator=gen)
    clusters = torch.arange(24) % 6
    maps += 2.0 * torch.rand(6, 320, 1, 1, generator=gen)[clusters]  # each cluster its own channels
    pairs = finetune.matching_pairs(clusters, 1)
    return finetune.TupleTrainer(finetune.RetrievalHead(model, "gem"), maps, clusters, pairs, negatives=3, lr=1e-3, batch=4)


def test_mined_negatives_are_the_nearest_of_other_clusters_one_each(model):
    trainer = toy_trainer(model)
    d = trainer.describe()
    for row, query in zip(trainer.mine().tolist(), trainer.pairs[:, 0].tolist()):
        best = {}
        for j in torch.argsort(d @ d[query], descending=True).tolist():  # brute force: walk the ranking
            c = int(trainer.clusters[j])
            if c != int(trainer.clusters[query]) and c not in best:
                best[c] = j
        assert row == list(best.values())[:3]


def test_an_epoch_lowers_the_loss_and_keeps_the_batch_norm_statistics(model):
    trainer = toy_trainer(model)
    stats = {k: v.clone() for k, v in trainer.head.head.state_dict().items() if "running" in k}
    first = trainer.epoch()
    for _ in range(4):
        last = trainer.epoch()
    assert last < first
    for k, v in trainer.head.head.state_dict().items():
        if "running" in k:
            torch.testing.assert_close(v, stats[k])
    assert trainer.head.p.grad is not None  # GeM's p is trained too


def test_the_trainer_refuses_pairs_that_do_not_match(model):
    maps, clusters = torch.rand(6, 320, 2, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="same cluster"):
        finetune.TupleTrainer(finetune.RetrievalHead(model), maps, clusters, torch.tensor([[0, 2]]))
    with pytest.raises(ValueError, match="negatives"):
        finetune.TupleTrainer(finetune.RetrievalHead(model), maps, clusters, torch.tensor([[0, 1]]), negatives=3)
    with pytest.raises(ValueError, match="pooling"):
        finetune.RetrievalHead(model, "sum")


def test_the_models_digest_follows_its_weights(model, images, tmp_path, monkeypatch):
    import copy

    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    changed = copy.deepcopy(model)
    descriptors.cached_feature_maps(changed, images[:2], "head")
    with torch.no_grad():
        next(changed.parameters()).add_(0.5)  # an in-place step: the cached maps must not be reused
    fresh = descriptors.cached_feature_maps(changed, images[:2], "head")
    torch.testing.assert_close(fresh.float(), one_by_one(changed, images[:2], "head", lambda m: m).half().float())
    assert len(list((tmp_path / "features").glob("*.npz"))) == 2
