"""Images in, descriptors out (stage 07): a pretrained network's feature maps, pooled batch by batch.

Neural codes (Babenko et al. 2014) and every pooled descriptor of the retrieval stage (MAC, SPoC,
GeM, R-MAC, CroW) come from the same few steps: the images go to the device a batch at a time, the
network computes the feature maps of the layers asked for in one forward pass, each descriptor pools
its layer's maps, and only the pooled ``(N, D)`` descriptors are kept, on the device. The maps of a
whole database never exist at once (2,000 images at 1280x8x10 floats would be 800 MB).

    model = load_efficientnet_lite0()
    out = describe(model, images, {"MAC": ("head", mac), "GeM": ("head", gem), "R-MAC": ("head", rmac)})
    out["MAC"]                                   # (N, 1280) on the model's device, not normalised

Images are uint8 ``(N, H, W, 3)`` (numpy or torch) of one size, or a list of such arrays ``(H, W, 3)``
of any sizes (query crops): images of equal size are batched together, and the rows come back in the
order given. This module has no ``STAGE``: it is a tool of the stage, never switched off.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from coursekit.nets.pretrained import FEATURE_LAYERS, preprocess

Pooling = Callable[[torch.Tensor], torch.Tensor]  # (B, K, h, w) feature maps -> (B, D) descriptors


def _as_image(image, where: str) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{where} must be a uint8 array (H, W, 3); got {type(image).__name__}")
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{where} must be a uint8 array (H, W, 3); got {image.dtype} {tuple(image.shape)}")
    return image


def _groups(images) -> tuple[int, list[tuple[list[int], torch.Tensor | list[torch.Tensor]]]]:
    """``(count, [(rows, images of one size), ...])``: one stack for a 4-D array, groups by size for a list."""
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        stack = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
        if stack.dtype != torch.uint8 or stack.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3); got {stack.dtype} {tuple(stack.shape)}")
        return len(stack), [(list(range(len(stack))), stack)]
    if isinstance(images, (np.ndarray, torch.Tensor)) or not isinstance(images, Sequence):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be uint8 (N, H, W, 3) or a list of (H, W, 3) arrays; got {shape}")
    by_size: dict[tuple[int, int], tuple[list[int], list[torch.Tensor]]] = {}
    for i, image in enumerate(images):
        image = _as_image(image, f"images[{i}]")
        rows, members = by_size.setdefault(tuple(image.shape[:2]), ([], []))
        rows.append(i)
        members.append(image)
    return len(images), list(by_size.values())


def describe(model, images, poolings: Mapping[str, tuple[str, Pooling]], *, batch_size: int = 32,
             device=None) -> dict[str, torch.Tensor]:
    """Pooled descriptors of ``images``, by name: ``poolings`` maps a name to ``(layer, pooling)``,
    ``layer`` one of :data:`~coursekit.nets.pretrained.FEATURE_LAYERS` (``"head"``, ``"block6"``...) and
    ``pooling`` a function from that layer's maps ``(B, K, h, w)`` to ``(B, D)``.

    Runs in inference mode, ``batch_size`` images at a time, on ``device`` (default: the model's); the
    result rows follow the order of ``images``. Nothing is normalised here: the poolings decide.
    """
    if not poolings:
        raise ValueError("poolings must name at least one descriptor: {name: (layer, pooling)}")
    for name, spec in poolings.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[1])):
            raise TypeError(f"poolings[{name!r}] must be a pair (layer, pooling function); got {spec!r}")
        if spec[0] not in FEATURE_LAYERS:
            raise ValueError(f"poolings[{name!r}]: layer must be one of {list(FEATURE_LAYERS)}; got {spec[0]!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    device = next(model.parameters()).device if device is None else torch.device(device)
    layers = sorted({layer for layer, _ in poolings.values()})
    count, groups = _groups(images)
    parts: dict[str, list[tuple[list[int], torch.Tensor]]] = {name: [] for name in poolings}
    with torch.inference_mode():
        for rows, members in groups:
            for start in range(0, len(rows), batch_size):
                chunk = members[start:start + batch_size]
                batch = chunk if isinstance(chunk, torch.Tensor) else torch.stack(chunk)
                maps = model.feature_maps(preprocess(batch.to(device, non_blocking=True)), layers)
                for name, (layer, pooling) in poolings.items():
                    parts[name].append((rows[start:start + batch_size], pooling(maps[layer])))
    out = {}
    for name, pieces in parts.items():
        order = torch.tensor([r for rows, _ in pieces for r in rows], device=device)
        stacked = torch.cat([d for _, d in pieces])
        result = torch.empty_like(stacked)
        result[order] = stacked
        if len(result) != count:
            raise AssertionError(f"{name}: {len(result)} descriptors for {count} images")
        out[name] = result
    return out


def feature_maps(model, images, layer: str = "head", *, batch_size: int = 32, device=None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """The maps ``(N, K, h, w)`` of one layer for images of one size, uint8 ``(N, H, W, 3)``, each batch
    cast to ``dtype`` if given (float16 halves the memory): for a figure or an explorer, or a database's maps
    kept once (:func:`cached_feature_maps`); for descriptors only, :func:`describe` keeps no maps."""
    if not (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be uint8 (N, H, W, 3), all of one size; got {shape}")
    batches = []

    def keep(maps):  # one stack of one size: the batches arrive in order
        batches.append(maps if dtype is None else maps.to(dtype))
        return maps[:, :1, 0, 0]

    describe(model, images, {"maps": (layer, keep)}, batch_size=batch_size, device=device)
    return torch.cat(batches)


def _fingerprint(model, images: np.ndarray, layer: str, dtype: torch.dtype, device: torch.device) -> str:
    """sha256 of what the maps depend on: the images' bytes, the model's parameters and buffers, the layer,
    the stored dtype, the device type and torch's version."""
    digest = hashlib.sha256()
    digest.update(f"{images.shape}|{layer}|{dtype}|{device.type}|{torch.__version__}".encode())
    digest.update(np.ascontiguousarray(images).data)
    digest.update(_model_digest(model).encode())
    return digest.hexdigest()


_MODEL_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (its tensors' versions, digest)


def _model_digest(model) -> str:
    """sha256 of the model's parameters and buffers, computed once per model and state: a tensor changed
    in place (a training step) bumps its version counter, which makes the digest be computed again."""
    state = model.state_dict()
    versions = tuple((name, id(t), t._version) for name, t in state.items())
    known = _MODEL_DIGESTS.get(model)
    if known is not None and known[0] == versions:
        return known[1]
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    _MODEL_DIGESTS[model] = (versions, digest.hexdigest())
    return _MODEL_DIGESTS[model][1]


def _verified_file(path, compute: Callable[[], dict[str, torch.Tensor]], device) -> dict[str, torch.Tensor]:
    """Tensors by name from the verified ``.npz`` file ``path`` of the data cache, or computed, stored and
    returned: the file is read only if its sha256 equals the one stored beside it (a file that fails is
    computed again), and a new one is written under a temporary name and renamed, so that concurrent runs
    never read half of one."""
    import os
    import uuid

    from coursekit.data.registry import sha256_of

    stamp = path.with_name(path.name + ".sha256")
    if path.is_file() and stamp.is_file() and sha256_of(path) == stamp.read_text().strip():
        with np.load(path) as stored:
            return {name: torch.from_numpy(stored[name]).to(device) for name in stored.files}
    found = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part.npz")
    np.savez(partial, **{name: value.cpu().numpy() for name, value in found.items()})
    digest = sha256_of(partial)
    partial.replace(path)  # atomic: a reader finds the whole file or none
    stamp.write_text(digest + "\n")
    return found


def cached_feature_maps(model, images, layer: str = "head", *, batch_size: int = 32, dtype: torch.dtype = torch.float16,
                        cache: bool = True, device=None) -> torch.Tensor:
    """The maps ``(N, K, h, w)`` of one layer for uint8 ``images (N, H, W, 3)`` of one size, stored as
    ``dtype`` (float16 by default: half the memory) on ``device`` (default: the model's), computed once and
    then read from the course's data cache (``features/`` in :func:`coursekit.data.registry.cache_dir`).

    The file is named by the sha256 of everything the maps depend on (the images, the model's weights, the
    layer, the dtype, the device type, torch's version) and verified on every read by the sha256 stored
    beside it; a file that fails is computed again. ``cache=False`` computes without the cache."""
    from coursekit.data.registry import cache_dir

    if not (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be uint8 (N, H, W, 3), all of one size; got {shape}")
    if dtype not in (torch.float16, torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float16, float32 or float64; got {dtype}")
    device = next(model.parameters()).device if device is None else torch.device(device)
    pixels = images.cpu().numpy() if isinstance(images, torch.Tensor) else images

    def compute() -> dict[str, torch.Tensor]:
        return {"maps": feature_maps(model, images, layer, batch_size=batch_size, device=device, dtype=dtype)}

    if not cache:
        return compute()["maps"]
    path = cache_dir() / "features" / f"{layer}-{_fingerprint(model, pixels, layer, dtype, device)[:32]}.npz"
    return _verified_file(path, compute, device)["maps"]


_LIBRARY_DIGEST: list[str] = []


def _library_digest() -> str:
    """sha256 of coursekit's own source files: a cached result made by the library's code is stale once
    that code changes."""
    if not _LIBRARY_DIGEST:
        from pathlib import Path

        digest = hashlib.sha256()
        package = Path(__file__).resolve().parents[1]
        for file in sorted(package.rglob("*.py")):
            digest.update(str(file.relative_to(package)).encode())
            digest.update(file.read_bytes())
        _LIBRARY_DIGEST.append(digest.hexdigest())
    return _LIBRARY_DIGEST[0]


def _code_digest(code, digest) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for constant in code.co_consts:
        if hasattr(constant, "co_code"):
            _code_digest(constant, digest)
        else:
            digest.update(repr(constant).encode())


def _pooling_digest(name: str, pooling, digest) -> None:
    """What a pooling's result depends on besides the maps: a function's module, name, code (nested code
    included) and defaults; a ``functools.partial``'s function and arguments. Anything else cannot be told
    apart from another, and is refused."""
    import functools
    import types

    if isinstance(pooling, functools.partial):
        digest.update(f"partial|{pooling.args!r}|{sorted(pooling.keywords.items())!r}".encode())
        return _pooling_digest(name, pooling.func, digest)
    if isinstance(pooling, types.BuiltinFunctionType):  # torch.mean...: fixed by torch's version, in the digest
        digest.update(f"builtin|{pooling.__module__}|{pooling.__qualname__}".encode())
        return None
    code = getattr(pooling, "__code__", None)
    if code is None or getattr(pooling, "__closure__", None):
        raise TypeError(f"poolings[{name!r}]: cached_describe needs a plain function (no closure: what a closure holds "
                        f"is not in its code), a builtin or a functools.partial of one; got {pooling!r}: use describe")
    digest.update(f"{pooling.__module__}|{pooling.__qualname__}|{pooling.__defaults__!r}|{pooling.__kwdefaults__!r}".encode())
    _code_digest(code, digest)


def cached_describe(model, images, poolings: Mapping[str, tuple[str, Pooling]], *, batch_size: int = 32,
                    device=None, cache: bool = True) -> dict[str, torch.Tensor]:
    """:func:`describe`, computed once and then read from the course's data cache (``features/``), verified
    by its sha256 like :func:`cached_feature_maps`.

    The file is named by the sha256 of what the descriptors depend on: the images (any sizes), the model's
    weights, the device type, torch's version, each name with its layer and its pooling (a function's
    code, defaults and module; no closures), and coursekit's own source files (a library pooling that
    calls another library function changes when either does). A pooling defined elsewhere is known by its
    own code only: a function it calls by name is not part of the fingerprint. ``cache=False`` is
    :func:`describe`."""
    from coursekit.data.registry import cache_dir

    if not cache:
        return describe(model, images, poolings, batch_size=batch_size, device=device)
    device = next(model.parameters()).device if device is None else torch.device(device)
    digest = hashlib.sha256()
    count, groups = _groups(images)
    digest.update(f"{count}|{device.type}|{torch.__version__}|{_library_digest()}|{_model_digest(model)}".encode())
    for rows, members in groups:
        stack = members if isinstance(members, torch.Tensor) else torch.stack(members)
        digest.update(f"{rows}|{tuple(stack.shape)}".encode())
        digest.update(stack.cpu().contiguous().numpy().data)
    for name in sorted(poolings):
        spec = poolings[name]
        if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[1])):
            raise TypeError(f"poolings[{name!r}] must be a pair (layer, pooling function); got {spec!r}")
        digest.update(f"|{name}|{spec[0]}|".encode())
        _pooling_digest(name, spec[1], digest)
    path = cache_dir() / "features" / f"describe-{digest.hexdigest()[:32]}.npz"
    return _verified_file(path, lambda: describe(model, images, poolings, batch_size=batch_size, device=device), device)
