# ---
# jupyter:
#   coursekit:
#     stages: [08-egm, 09-diffusion]
# ---

# %% [markdown]
# # Graph-based methods: the explorers
#
# *Deep learning for vision*, lecture part "graph-based methods" (the course's stages 08 and 09): EGM one iteration
# at a time, saliency maps and the regions EGM finds on them, diffusion against Euclidean ranking on the moons, and
# fast spectral ranking against the exact diffusion. Every picture is redrawn when a control changes.

# %%
import numpy as np
from IPython.display import display

import coursekit
from coursekit.data import samples
from coursekit.data.instances import instance_set
from coursekit.explore.graphs import DiffusionExplorer, EGMExplorer, SaliencyExplorer, SpectralExplorer
from coursekit.explore.stand_ins import gaussian_modes
from coursekit.graphs import diffusion, discovery, knn
from coursekit.nets.pretrained import load_efficientnet_lite0
from coursekit.retrieval import descriptors

DEVICE = coursekit.device()
coursekit.seed_everything(0)
ALPHA, GAMMA = 0.99, 3.0

# %% [markdown]
# ## EGM, iteration by iteration (stage 08)
#
# The EGM paper's Figure 1 (Avrithis & Kalantidis, ECCV 2012): eight Gaussian modes on a circle, 800 points, and
# EGM started from 50 of them with $\sigma_0 = 0.02$. Each iteration expands the components (the M-step measures
# the variance around the previous mean) and purges those whose self-responsibility falls below $\tau$; the circles
# are drawn at $2\sigma$, thicker for heavier components. Changing $\tau$ or $\sigma_0$ runs EGM again.

# %%
points, starts, _ = gaussian_modes()
display(EGMExplorer(points, starts, sigma0=0.02, tau=0.75, iterations=10))

# %% [markdown]
# ## Saliency and regions (stage 08)
#
# Stage 07's benchmark in its fast size (a stand-in built offline from scikit-image's photos, not Revisited
# Oxford), described by EfficientNet-Lite0's last feature maps (kept in the course's data cache once computed).
# Feature saliency (FS) is each cell's total activation; object saliency (OS) paints back onto each image the Katz
# centrality of its regions in the reciprocal $k$-NN graph of all the database's regions: how typical of the
# database a region is (Siméoni et al., WACV 2018). The boxes are the regions EGM finds on the map shown, the dashed
# ones the pasted objects.

# %%
benchmark, training = instance_set("test", "fast"), instance_set("train", "fast")
network = load_efficientnet_lite0(DEVICE, download=False)
database_maps = descriptors.cached_feature_maps(network, benchmark.images, "head", batch_size=16)
training_maps = descriptors.cached_feature_maps(network, training.images, "head", batch_size=16)
query_maps = [descriptors.cached_feature_maps(network, crop[None], "head").float() for crop in benchmark.query_crops()]
table = discovery.table_descriptors(database_maps, training_maps, query_maps, extent=1.0, whiten_dim=128, k=20)
height, width = database_maps.shape[-2:]
object_saliency = discovery.object_saliency(discovery.cell_boxes(table.regions.boxes, height, width),
                                            table.regions.image, table.centrality.double(), len(benchmark.images),
                                            height, width).float()
display(SaliencyExplorer(benchmark.images, {"FS": discovery.feature_saliency(database_maps), "OS": object_saliency},
                         benchmark.object_boxes(0.4), extent=1.0))

# %% [markdown]
# ## Diffusion on the moons (stage 09)
#
# Three moons of 100 points. Euclidean ranking spreads from the query as a disc and spills onto the next moon;
# diffusion, $\mathcal{L}_\alpha x = y$ on the reciprocal $k$-NN graph ($\mathcal{L}_\alpha = (I - \alpha W) /
# (1 - \alpha)$, $W$ normalised symmetrically), follows the query's own moon. $\alpha$ sets how far the walks go,
# $k$ how many shortcuts between moons the graph has, $\gamma$ how much the weak edges count.

# %%
moons, moon_of = samples.moons(100, 3, noise=0.05, seed=0)
tips = [int(np.argmax(moons[:, 0] * (moon_of == 0))), int(np.argmin(moons[:, 0])),
        int(np.argmax(moons[:, 1] * (moon_of == 1) - 10 * (moon_of != 1)))]
display(DiffusionExplorer(moons, moon_of, tips, k=10, gamma=GAMMA, alpha=ALPHA, bandwidth=0.1, top=100))

# %% [markdown]
# ## Fast spectral ranking (stage 09)
#
# Diffusion of the benchmark's whitened MAC descriptors on their reciprocal 10-NN graph, approximated from the
# graph's largest eigenpairs: $U_r\, h_\alpha(\Lambda_r)\, U_r^\top y$ with the low-pass filter
# $h_\alpha(\lambda) = (1 - \alpha) / (1 - \alpha\lambda)$. The slider sets the rank $r$; the scatter plot puts the
# exact scores against the approximated ones for the chosen query.

# %%
mac_queries, mac_database = (x.double() for x in table.methods["MAC"])
mac_graph = knn.symmetric_normalise(knn.knn_affinity(mac_database, 10, GAMMA))
mac_y = diffusion.query_vectors(mac_queries, mac_database, 10, GAMMA)
display(SpectralExplorer(mac_graph, mac_y, alpha=ALPHA, max_rank=100,
                         exact=diffusion.diffusion(mac_graph, mac_y, ALPHA, 1e-10, 2000)))
