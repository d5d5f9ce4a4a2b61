"""AlexNet's data augmentation (Krizhevsky et al. 2012, section 4.1), batched on the device (stage 05).

- random ``size x size`` crops of the stored images and their horizontal reflections
  (:func:`coursekit.nets.training.random_crop`, :func:`coursekit.nets.training.random_flip`);
- at test time, the ten crops: the four corners and the centre, and their reflections
  (:func:`ten_crops`), whose softmax outputs are averaged (:func:`ten_crop_probabilities`);
- the PCA colour augmentation: with ``p_i, lambda_i`` the eigenvectors and eigenvalues of the 3x3
  covariance of the RGB pixel values of the training set (:func:`pca_colour_basis`), add
  ``[p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T`` to every pixel of an image, ``a_i ~ N(0, 0.1^2)`` drawn once per
  image (:func:`pca_colour_shift`).

The paper ran these "in Python code on the CPU while the GPU is training on the previous batch";
here each is one batched tensor operation on the images' device, so a GPU never waits for them.
"""

from __future__ import annotations

import torch

from coursekit.nets.training import random_crop, random_flip

STAGE = 5  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

PCA_SIGMA = 0.1  # the standard deviation of the paper's colour coefficients


def _images(x: torch.Tensor, name: str = "images") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"{name} must be a tensor (N, C, H, W); got {getattr(x, 'shape', type(x).__name__)}")


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size x size`` window of every image of ``x (N, C, H, W)``."""
    _images(x)
    h, w = x.shape[-2:]
    if not 1 <= size <= min(h, w):
        raise ValueError(f"a {size}x{size} crop does not fit in {h}x{w} images")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def ten_crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W) -> (N, 10, C, size, size)``: the top-left, top-right, bottom-left, bottom-right
    and centre crops, then the same five mirrored left-right."""
    _images(x)
    h, w = x.shape[-2:]
    if not 1 <= size <= min(h, w):
        raise ValueError(f"a {size}x{size} crop does not fit in {h}x{w} images")
    corners = ((0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2))
    five = torch.stack([x[..., t:t + size, l:l + size] for t, l in corners], 1)
    return torch.cat([five, five.flip(-1)], 1)


@torch.no_grad()
def ten_crop_probabilities(model: torch.nn.Module, x: torch.Tensor, size: int, batch_size: int = 256) -> torch.Tensor:
    """The model's softmax averaged over the ten crops of each image: ``(N, classes)``."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        crops = ten_crops(x[i:i + batch_size], size)
        n = len(crops)
        probs = model(crops.flatten(0, 1)).float().softmax(-1)
        out.append(probs.reshape(n, 10, -1).mean(1))
    return torch.cat(out)


def pca_colour_basis(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (3,), largest first, and eigenvectors (3, 3), one per column, of the covariance of
    the RGB values of all the pixels of ``images (N, 3, H, W)`` (uint8 ones scaled to [0, 1]);
    the covariance divides by the number of pixels."""
    _images(images)
    if images.shape[1] != 3:
        raise ValueError(f"images must have 3 colour channels; got {images.shape[1]}")
    x = images.double() / 255.0 if images.dtype == torch.uint8 else images.double()
    pixels = x.transpose(0, 1).reshape(3, -1)
    centred = pixels - pixels.mean(1, keepdim=True)
    covariance = centred @ centred.T / pixels.shape[1]
    values, vectors = torch.linalg.eigh(covariance)
    return values.flip(0).to(images.device), vectors.flip(1).to(images.device)


def pca_colour_shift(x: torch.Tensor, eigenvalues: torch.Tensor, eigenvectors: torch.Tensor,
                     alphas: torch.Tensor) -> torch.Tensor:
    """Add ``eigenvectors @ (alphas[n] * eigenvalues)`` to every pixel of image ``n`` of ``x (N, 3, H, W)``;
    ``alphas (N, 3)``."""
    _images(x, "x")
    if alphas.shape != (len(x), 3):
        raise ValueError(f"alphas must have shape ({len(x)}, 3), one triple per image; got {tuple(alphas.shape)}")
    shift = (alphas.to(x.dtype) * eigenvalues.to(x.dtype)) @ eigenvectors.to(x.dtype).T  # (N, 3)
    return x + shift[:, :, None, None]


class PaperAugment:
    """The training augmentation as one ``augment(x, generator)`` step for :func:`coursekit.nets.training.fit`:
    a random ``size`` crop and a reflection with probability 1/2, the PCA colour shift with coefficients
    ``N(0, sigma^2)`` per image, then the mean pixel subtracted (the paper's only preprocessing) and the
    result multiplied by ``scale`` (255: the paper's grey levels). ``x`` is a float batch in [0, 1]."""

    def __init__(self, size: int, eigenvalues: torch.Tensor, eigenvectors: torch.Tensor,
                 mean: torch.Tensor | None = None, sigma: float = PCA_SIGMA, flip: bool = True, scale: float = 1.0):
        self.crop = random_crop(size)
        self.eigenvalues, self.eigenvectors, self.sigma, self.flip = eigenvalues, eigenvectors, sigma, flip
        self.mean, self.scale = mean, scale

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.crop(x, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.sigma:
            alphas = self.sigma * torch.randn(len(x), 3, device=x.device, generator=generator)
            x = pca_colour_shift(x, self.eigenvalues.to(x.device), self.eigenvectors.to(x.device), alphas)
        if self.mean is not None:
            x = x - self.mean.to(x.device).reshape(1, -1, 1, 1)
        return x * self.scale if self.scale != 1 else x
