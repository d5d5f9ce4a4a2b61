"""What the stage notebooks compute before they show an explorer, built cheaply for the explorer apps
(:mod:`coursekit.course.apps`, ``coursekit explore``): the apps have no notebook above them to train a
net or to make a data set, and must be ready in seconds on a laptop's CPU.

- :func:`digit_nets`: stage 04's four MNIST nets (FC and CNN, on the original pixels and on the shuffled
  ones), trained briefly with :func:`coursekit.nets.training.fit`, for the
  :class:`~coursekit.explore.convolution.DigitBrowser`;
- :func:`gaussian_modes`: the points of the EGM paper's Figure 1 (stage 08), for the
  :class:`~coursekit.explore.graphs.EGMExplorer`.
"""

from __future__ import annotations

import numpy as np


def digit_nets(images, labels, permutation, *, epochs: int = 1, width: int = 16, seed: int = 0):
    """Stage 04's nets, each trained from a seeded start for ``epochs`` epochs (Adam at 3e-3, batches of 128,
    as the stage trains them) on uint8 ``images (N, 28, 28)`` and their int64 ``labels (N,)``: the fully
    connected :func:`~coursekit.nets.models.fc_net` and the :func:`~coursekit.nets.models.small_cnn` of
    ``width``, once on the images as they are and once on their pixels shuffled by ``permutation``
    (:func:`~coursekit.data.transforms.permute_pixels`). Returns ``(original, shuffled)``, each
    ``{"FC": net, "CNN": net}``, what :class:`~coursekit.explore.convolution.DigitBrowser` takes. Silent: no
    progress bar."""
    import torch

    from coursekit.data import transforms
    from coursekit.nets import models, training

    if images.ndim != 3 or images.dtype != torch.uint8 or tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"images must be uint8 (N, 28, 28); got {images.dtype} of shape {tuple(images.shape)}")
    if tuple(labels.shape) != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},); got {tuple(labels.shape)}")
    makers = {"FC": models.fc_net, "CNN": lambda: models.small_cnn(width)}
    shuffled_images = transforms.permute_pixels(images, permutation)
    nets = {}
    for kind, pixels in (("original", images), ("shuffled", shuffled_images)):
        nets[kind] = {}
        for offset, (name, make) in enumerate(makers.items()):
            torch.manual_seed(seed + offset)  # the same start for a net on either kind of pixels
            net = make()
            training.fit(net, pixels, labels, epochs=epochs, batch_size=128, lr=3e-3, seed=seed + offset, quiet=True)
            nets[kind][name] = net.eval()
    return nets["original"], nets["shuffled"]


def gaussian_modes(*, modes: int = 8, per_mode: int = 100, radius: float = 0.35, spread: float = 0.04,
                   starts: int = 50, seed: int = 0):
    """The EGM paper's Figure 1 (Avrithis & Kalantidis, ECCV 2012): ``modes`` isotropic Gaussians of standard
    deviation ``spread`` centred on a circle of ``radius`` around (0.5, 0.5), ``per_mode`` points each, and
    ``starts`` of those points drawn at random as EGM's initial means. Returns float64 ``(points (modes
    per_mode, 2), initial_means (starts, 2), centres (modes, 2))``; the same for the same ``seed``."""
    if modes < 1 or per_mode < 1 or not 1 <= starts <= modes * per_mode:
        raise ValueError(f"need modes >= 1, per_mode >= 1 and 1 <= starts <= modes * per_mode; got {modes}, "
                         f"{per_mode} and {starts}")
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = 0.5 + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = np.concatenate([rng.normal(centre, spread, (per_mode, 2)) for centre in centres])
    return points, points[rng.choice(len(points), starts, replace=False)], centres
