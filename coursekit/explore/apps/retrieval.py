# ---
# jupyter:
#   coursekit:
#     stages: [06-siamese, 07-cam-crow]
# ---

# %% [markdown]
# # Image retrieval: the explorers
#
# *Deep learning for vision*, lecture part "image retrieval" (the course's stages 06 and 07): DrLIM's 2-D map of
# the 4s and 9s trained step by step with its springs, class activation maps of a real ImageNet network over a
# photo, and what a query retrieves under each pooled descriptor. Every picture is redrawn when a control changes.

# %%
import torch
from IPython.display import display

import coursekit
from coursekit.data import load_mnist, samples
from coursekit.data.instances import instance_set
from coursekit.explore.retrieval import CAMExplorer, EmbeddingExplorer, RetrievalBrowser
from coursekit.nets.pretrained import load_efficientnet_lite0
from coursekit.retrieval import cam, descriptors, pairs, pooling, siamese

DEVICE = coursekit.device()
coursekit.seed_everything(0)
network = load_efficientnet_lite0(DEVICE, download=False)  # ImageNet weights, from the course's data cache

# %% [markdown]
# ## DrLIM, step by step (stage 06)
#
# 200 MNIST 4s and 200 9s, each paired with its 5 nearest neighbours in pixel space (similar) and with as many
# random digits (dissimilar); the labels only colour the map. The steps slider (or the button) trains the
# network with the contrastive loss at the margin $m$ of the margin slider, and moving it back rewinds. For the
# chosen digit, each arrow is the force of one of its springs: green attract-only springs towards its similar
# partners, red m-repulse-only springs away from the dissimilar ones inside the dashed margin circle.

# %%
mnist = load_mnist(DEVICE, download=False)
digits, digit_labels = siamese.fours_and_nines(mnist.train_images, mnist.train_labels, 200)
similar = pairs.knn_pairs(digits, 5)
dissimilar = pairs.dissimilar_pairs(len(digits), similar, len(similar), torch.Generator(DEVICE).manual_seed(0))
display(EmbeddingExplorer(digits, digit_labels, *siamese.pair_labels(similar, dissimilar)))

# %% [markdown]
# ## Class activation maps (stage 07)
#
# EfficientNet-Lite0 ends with global average pooling and one linear layer, so each class has a map
# $M_c(x, y) = \sum_k w_k^c f_k(x, y)$ over the last feature maps (Zhou et al., CVPR 2016): where the evidence
# for that class lies. The menus pick the photo and one of its top five classes; the cross marks the map's peak.

# %%
photos = {name: samples.colour_photo(name) for name in ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left")}
display(CAMExplorer(photos, network))

# %% [markdown]
# ## What a query retrieves (stage 07)
#
# Stage 07's benchmark in its fast size (150 database images, 12 queries): objects cut from scikit-image's photos,
# pasted small, rotated and partly hidden into real backgrounds. It is a stand-in built offline, not Revisited
# Oxford: its mAP is not comparable with published numbers. Every descriptor pools the network's last feature
# maps (kept in the course's data cache once computed) and is l2-normalised; the top $k$ are framed by their label
# for the query (easy green, hard orange, junk grey, negative red), and the status line gives the query's AP
# under the Medium protocol.

# %%
benchmark = instance_set("test", "fast")
POOLINGS = {"MAC": pooling.mac, "SPoC": pooling.spoc, "GeM": pooling.gem, "R-MAC": pooling.rmac, "CroW": cam.crow,
            "uCroW": cam.ucrow}
database_maps = descriptors.cached_feature_maps(network, benchmark.images, "head", batch_size=16).float()
query_maps = [descriptors.cached_feature_maps(network, crop[None], "head").float() for crop in benchmark.query_crops()]
described = {name: (pooling.l2n(torch.cat([pool(maps) for maps in query_maps])), pooling.l2n(pool(database_maps)))
             for name, pool in POOLINGS.items()}
display(RetrievalBrowser(benchmark.images, benchmark.query_crops(), described, benchmark.gnd,
                         query_names=[benchmark.instance_names[i] for i in benchmark.query_instances]))
