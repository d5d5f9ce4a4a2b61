# ---
# jupyter:
#   coursekit:
#     stages: [01-backprop, 02-autodiff, 05-alexnet]
# ---

# %% [markdown]
# # Neural networks: the explorers
#
# *Deep learning for vision*, lecture part "neural networks" (the course's stages 01, 02 and 05): a two-layer net
# trained as the sliders move, the backward pass through a computation graph one node at a time, AlexNet's
# augmentation by hand, and what the layers of a trained ImageNet network respond to. Every picture is redrawn
# when a control changes.

# %%
import numpy as np
import torch
from IPython.display import display

import coursekit
from coursekit.data import samples
from coursekit.explore.nets import AugmentationExplorer, BackpropExplorer, GraphViewer, LayerExplorer
from coursekit.nets import augment, ops, pretrained
from coursekit.nets.autodiff import Param

DEVICE = coursekit.device()
coursekit.seed_everything(0)
X_spiral, labels_spiral = samples.spiral(n_per_class=100, num_classes=3, noise=0.2, seed=0)  # stage 01's spiral

# %% [markdown]
# ## The two-layer net (stage 01)
#
# Three spiral arms, 100 points each. Every change retrains the net from the same start with 1000 steps of
# full-batch gradient descent and draws its decision regions and loss curve: the menu picks the hidden layer's
# activation $h$ (or none: the linear classifier, whose regions are cut by straight lines), the sliders its width,
# the weight decay $\lambda$ and the learning rate $\varepsilon$.

# %%
display(BackpropExplorer(X_spiral, labels_spiral, steps=1000))

# %% [markdown]
# ## The backward pass, node by node (stage 02)
#
# The graph of one evaluation of the two-layer net's loss on 8 of the spiral's points, its blocks opened up. Each
# box shows its value ("v") and its gradient ("∂", "—" until it arrives); the slider runs the `back` rules one node
# at a time (orange: the node that just ran). `W1` and `W2` receive a contribution from the weight decay first and
# from their `affine` later: the two add up.

# %%
g_view = np.random.default_rng(0)
X_view, T_view = X_spiral[::38][:8], np.eye(3)[labels_spiral[::38][:8]]
V1, c1 = Param(g_view.normal(size=(2, 4)), "W1"), Param(np.zeros(4), "b1")
V2, c2 = Param(g_view.normal(size=(4, 3)), "W2"), Param(np.zeros(3), "b2")
display(GraphViewer(ops.loss(ops.model(X_view, ((V1, c1), (V2, c2))), T_view, (V1, V2), 0.1)))

# %% [markdown]
# ## AlexNet's augmentation (stage 05)
#
# A random $192\times192$ crop of a photo, its reflection, and the PCA colour shift
# $\sum_i \alpha_i \lambda_i \mathbf{p}_i$ added to every pixel, with the eigenvalues $\lambda_i$ and eigenvectors
# $\mathbf{p}_i$ of the RGB covariance of the photos' crops. The sliders set the crop's corner and the
# $\alpha_i$ in units of the paper's standard deviation 0.1 (its draws lie within about $\pm 3$; the sliders go to
# $\pm 10$ to make the directions visible).

# %%
crops_np, _ = samples.photo_crops(224, per_photo=3, seed=0)  # stage 05's crops, in its fast budget's number
crops = torch.from_numpy(crops_np).to(DEVICE)  # uint8 (27, 3, 224, 224), for the network below
basis = [t.cpu() for t in augment.pca_colour_basis(crops)]  # the explorer shifts one photo, on the host
display(AugmentationExplorer(crops[0].cpu(), *basis, shift=augment.pca_colour_shift, size=192))

# %% [markdown]
# ## What the layers of a trained network see (stage 05)
#
# EfficientNet-Lite0 with its ImageNet weights (from the course's data cache) over the 27 photo crops: for a layer
# and a channel, the nine crops' patches (the unit's receptive field) where the channel responds most, and the
# channel's feature map on one crop. Early layers respond to colours and edges, middle ones to textures and parts,
# late ones to larger structures (Zeiler & Fergus 2014, Figure 2).

# %%
network = pretrained.load_efficientnet_lite0(DEVICE, download=False)
display(LayerExplorer(network, crops, layers=("stem", "block2", "block3", "block4", "block6")))
