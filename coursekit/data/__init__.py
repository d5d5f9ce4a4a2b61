"""Data: the registry of downloaded datasets with its checksummed cache (:mod:`.registry`), data made
on the spot or shipped with the dependencies (:mod:`.samples`), and transforms (:mod:`.transforms`).

The loaders are also importable from here: ``from coursekit.data import load_mnist``.
"""

from coursekit.data.registry import REGISTRY, DataError, ImageSet, cache_dir, fetch, load_images, load_mnist

__all__ = ["REGISTRY", "DataError", "ImageSet", "cache_dir", "fetch", "load_images", "load_mnist"]
