# ---
# jupyter:
#   coursekit:
#     full_budget_on_cpu: false
# ---

# %% [markdown]
# # Stage 07 — Image retrieval: neural codes, MAC to R-MAC, whitening, CAM and CroW, measured by mAP
#
# *Deep learning for vision*, lecture slides "neural codes" (Babenko, Slesarev, Chigorin & Lempitsky, *Neural codes
# for image retrieval*, ECCV 2014), "fine-tuning" (Gordo, Almazán, Revaud & Larlus, *Deep image retrieval*, ECCV 2016,
# with R-MAC and a triplet loss; Radenović, Tolias & Chum, *CNN image retrieval learns from BoW*, ECCV 2016, with MAC
# and a siamese loss on hard examples), "class activation mapping" (Zhou, Khosla, Lapedriza, Oliva & Torralba,
# *Learning deep features for discriminative localization*, CVPR 2016) and "cross-dimensional weighting" (Kalantidis,
# Mellina & Osindero, *Cross-dimensional weighting for aggregated deep convolutional features*, ECCV workshops 2016).
#
# Instance retrieval: given a query image of one particular object (this building, this cup, this coin), rank a
# database so that the images showing that same object come first, whatever else they show and however small the
# object is in them. A network trained to name ImageNet classes already gives descriptors that do this well once its
# convolutional maps are pooled the right way; how to pool, normalise and whiten them, and how to measure the result,
# is this stage.
#
# **You will**
# 1. measure retrieval as the field does: average precision with junk images removed and the trapezoid rule, on the
#    Easy, Medium and Hard protocols of Revisited Oxford;
# 2. use a pretrained network's maps at several layers as neural codes, and compress them by PCA;
# 3. write GeM pooling and the R-MAC region grid and descriptor, and compare MAC, SPoC, GeM and R-MAC;
# 4. learn PCA-whitening on a separate set and see what it does to every descriptor;
# 5. fine-tune the network's last layer with the siamese loss on hard negatives (N2) and measure mAP before and after;
# 6. write class activation maps, check that pooling a map gives its class score, and look at the top classes' maps
#    over a photo;
# 7. write CroW's spatial and channel weights and compare CroW with SPoC;
# 8. put every descriptor in one table of mAP, with and without whitening.
#
# A test cell that passes prints nothing. *Run All* stops at the first failing test: until your answers are done, run
# the cells one by one. While your code is graded, coursekit's pieces of this stage are switched off (those of earlier
# stages are yours to use). The feature extraction reads the run budget: the **full** budget (the default) uses the
# benchmark's full size (a few minutes on a laptop CPU); the **fast** budget (autograding, CI, or
# `COURSEKIT_BUDGET=fast`) a small version of it, in seconds. Tolerances: float32 answers are compared to float32's
# precision, float64 ones to about 1e-10 unless the exercise says otherwise.
#
# **Only the answer cells are graded: put all your code in them** (cells you add are dropped when your notebook is
# graded).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from matplotlib.patches import Rectangle

import coursekit
from coursekit.data.instances import instance_set
from coursekit.data.samples import colour_photo
from coursekit.explore import plots
from coursekit.grading import check, check_close, check_shape, demo, own_work, yours_or
from coursekit.nets.pretrained import imagenet_classes, load_efficientnet_lite0, preprocess, top_classes
from coursekit.retrieval import cam, descriptors, evaluation, finetune, pooling, whitening

BUDGET = coursekit.budget()
DEVICE = coursekit.device()
coursekit.seed_everything(0)
SIZE = BUDGET.pick(full="full", fast="fast")
benchmark = instance_set("test", SIZE)  # generated once, then read from the course's data cache
training = instance_set("train", SIZE)  # other objects: to learn whitening and to fine-tune on
network = load_efficientnet_lite0(DEVICE)  # ImageNet-trained EfficientNet-Lite0, from the data cache
print(f"{BUDGET}; device {DEVICE}; benchmark: {len(benchmark.queries)} queries, {len(benchmark.images)} database "
      f"images of {benchmark.images.shape[1]}x{benchmark.images.shape[2]}; training set: {len(training.images)} images")

# %% [markdown]
# ## 1. A retrieval benchmark that runs everywhere
#
# The benchmarks of the lecture's papers, Oxford 5k and Paris 6k (photos of 11 landmarks each, with 55 queries) and
# their revisited versions (Radenović, Iscen, Tolias, Avrithis & Chum, CVPR 2018: 70 queries, new labels, the Easy,
# Medium and Hard protocols), are a download of several gigabytes that a classroom or an autograder cannot count on.
# This stage uses a stand-in built on the spot from **real photographs** that ship with scikit-image: objects cut
# from those photos (a cat's head, a cup, a rocket, single coins, ...) pasted small, rotated, rescaled and partly
# hidden into cluttered real backgrounds. Each query is a clean view of one object with its box, like Oxford's query
# crops; each database image showing the object is labelled from how much of it is visible and how large it is:
# *easy* (most of it visible, not small), *hard* (partly hidden or small), *junk* (barely visible: it counts neither
# as a hit nor as a miss). It is not Oxford: its objects are flat patches, not buildings seen from another street
# corner, and its absolute mAP says nothing about Oxford's. Its lessons about pooling, whitening and measuring carry
# over; its numbers do not. `coursekit.data.revisited` loads the real Revisited Oxford and Paris in their own format
# for those who can download them (`coursekit data fetch roxford5k`), and every function of this stage runs on them
# unchanged.

# %% nbgrader={"grade": false, "grade_id": "benchmark-figure", "locked": true, "schema_version": 3, "solution": false, "task": false}
print(benchmark.description)
LABEL_COLOURS = {"easy": "tab:green", "hard": "tab:orange", "junk": "tab:gray"}
shown_query = 0
truth = benchmark.gnd[shown_query]
examples = [(f"query {shown_query}", benchmark.query_crops()[shown_query], "tab:blue")]
for label in ("easy", "hard", "junk"):
    examples += [(label, benchmark.images[i], LABEL_COLOURS[label]) for i in list(truth[label])[:2]]
negatives_shown = [i for i in range(len(benchmark.images))
                   if i not in set(truth["easy"]) | set(truth["hard"]) | set(truth["junk"])][:2]
examples += [("negative", benchmark.images[i], "tab:red") for i in negatives_shown]
fig, axes = plots.new_figure(len(examples), width=2.1, height=2.4)
for ax, (title, image, colour) in zip(axes, examples):
    ax.imshow(image)
    ax.set_title(title, color=colour, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set(color=colour, linewidth=3)
plots.show(fig)

# %% [markdown]
# ## 2. Measuring retrieval: mAP with junk
#
# A ranking of the database for one query is scored by its **average precision**, the area under its
# precision-recall curve, and a method by the mean over the queries (mAP). The code that produced every number in
# the lecture's papers (Oxford's `compute_ap`, and its ports in the revisited benchmark's and the papers' code) fixes
# two details that change the numbers:
#
# - **junk removal**: junk images are deleted from the ranking before anything is counted, so each positive moves up
#   by the number of junk images ranked before it;
# - **the trapezoid rule**: for the $j$-th positive ($j = 0, 1, \dots$) at position $r_j$ of the junk-free ranking
#   (0-based), the precision before it is $p_0 = j / r_j$ ($p_0 = 1$ when $r_j = 0$) and after it
#   $p_1 = (j + 1)/(r_j + 1)$, and
#   $$\mathrm{AP} = \frac{1}{n_{\text{pos}}}\sum_j \frac{p_0 + p_1}{2},$$
#   with $n_{\text{pos}}$ the number of positives, so positives that are never retrieved count as 0.
#
# It is not the "non-interpolated" AP (the mean of the precisions at the hits) that scikit-learn's
# `average_precision_score` computes: one positive in second place scores 0.25 here and 0.5 there.
#
# ### Exercise 2.1 — AP of one query
# Write `average_precision(ranked, ok, junk)`: `ranked` is a 1-D array of database ids, best first (all of the
# database, or its top part); `ok` the ids of the positives (at least one), `junk` those of the junk images (maybe
# none). Return the AP as a Python float, with junk removal and the trapezoid rule. Positives may be missing from
# `ranked`. (`np.isin` tests membership; `np.in1d`, which the public scripts use, is gone from numpy 2.4.)

# %% nbgrader={"grade": false, "grade_id": "average-precision-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def average_precision(ranked, ok, junk=()):
    """AP of one ranking (ids, best first) for positives `ok` and junk `junk`: junk removed, trapezoid rule."""
    ### BEGIN SOLUTION
    ranked = np.asarray(ranked)
    ok = np.asarray(list(ok), dtype=np.int64)
    junk = np.asarray(list(junk), dtype=np.int64)
    kept = ranked[~np.isin(ranked, junk)]
    positions = np.flatnonzero(np.isin(kept, ok))
    j = np.arange(len(positions))
    before = np.where(positions == 0, 1.0, j / np.maximum(positions, 1))
    after = (j + 1) / (positions + 1)
    return float(((before + after) / 2).sum() / len(ok))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "average-precision-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand: one positive in second place: (0 + 1/2)/2 = 0.25; first place: 1; a junk image before it is deleted, so
# it is first again; positives at 0 and 2: (1 + (1/2 + 2/3)/2)/2 = 19/24; a third positive never retrieved: 19/36.
def ap_of(ranked_r, ok_r, junk_r=()):
    with own_work(stage=7, what="average_precision"):
        value_r = average_precision(np.asarray(ranked_r), np.asarray(ok_r), np.asarray(junk_r, dtype=np.int64))
    check(isinstance(value_r, (float, np.floating)) or (np.ndim(value_r) == 0 and np.isfinite(float(value_r))),
          "average_precision must return one number")
    return float(value_r)


check_close(ap_of([5, 3, 1, 2], [3]), 0.25, "AP of one positive in second place", tol=1e-12)
check_close(ap_of([3, 5, 1, 2], [3]), 1.0, "AP of one positive in first place", tol=1e-12)
check_close(ap_of([7, 3, 1, 2], [3], [7]), 1.0, "AP with a junk image before the positive", tol=1e-12)
check_close(ap_of([3, 5, 1, 2], [3, 1]), 19 / 24, "AP of positives in places 1 and 3", tol=1e-12)
check_close(ap_of([3, 5, 1, 2], [3, 1, 9]), 19 / 36, "AP with a positive never retrieved", tol=1e-12)
check_close(ap_of([3, 1, 2, 0, 4], [0, 1], [2]), 0.25 / 2 + (1 / 2 + 2 / 3) / 4, "AP of the revisited example (Medium)",
            tol=1e-12)
### BEGIN HIDDEN TESTS
# Against the precision-recall curve, integrated by trapezoids between consecutive recall levels, on random rankings
# with junk (positives, junk and negatives drawn at random; some positives left out of the ranking).
def pr_trapezoid(ranked_r, ok_r, junk_r):
    kept_r = [i for i in ranked_r if i not in set(junk_r)]
    hits_r, area_r, precision_r = 0, 0.0, 1.0
    for place_r, item_r in enumerate(kept_r, start=1):
        if item_r in set(ok_r):
            hits_r += 1
            new_precision_r = hits_r / place_r
            area_r += (precision_r + new_precision_r) / 2 / len(ok_r)
        precision_r = hits_r / place_r
    return area_r


gen_h = np.random.default_rng(71)
for case_h in range(60):
    n_h = int(gen_h.integers(5, 60))
    ids_h = gen_h.permutation(n_h + 5)
    labels_h = gen_h.choice(3, size=n_h + 5, p=[0.2, 0.15, 0.65])  # ok, junk, negative
    ok_h = ids_h[labels_h == 0]
    if len(ok_h) == 0:
        ok_h = ids_h[:1]
        labels_h[0] = 0
    junk_h = ids_h[labels_h == 1]
    ranked_h = ids_h[:n_h]  # the last 5 ids are never retrieved
    check_close(ap_of(ranked_h, ok_h, junk_h), pr_trapezoid(list(ranked_h), list(ok_h), list(junk_h)),
                f"AP of random ranking {case_h}", tol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# The revisited benchmark labels each database image *easy*, *hard* or *unclear* (junk) for each query, and scores a
# method three times, with the positives and the junk chosen by a **protocol**:
#
# | protocol | positives | junk |
# |---|---|---|
# | Easy | easy | junk ∪ hard |
# | Medium | easy ∪ hard | junk |
# | Hard | hard | junk ∪ easy |
#
# mAP is the mean AP over the queries that have positives; the benchmark also reports mP@k, the precision in the top
# $k$ (capped at the last positive when all of them are above rank $k$). `coursekit.retrieval.evaluation` computes
# all of it for all queries at once (one matrix of labels, no loop over queries); here it is checked against your
# function on a real ranking, and against the non-interpolated AP that would be reported by mistake.

# %% nbgrader={"grade": false, "grade_id": "ap-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
def non_interpolated_ap(ranked, ok, junk):
    """The mean precision at the hits (scikit-learn's average_precision_score), junk removed: not the benchmark's."""
    kept = np.asarray([i for i in ranked if i not in set(junk)])
    hits = np.flatnonzero(np.isin(kept, ok))
    return float(np.mean((np.arange(len(hits)) + 1) / (hits + 1)) * len(hits) / len(ok))


toy_gnd = [{"easy": np.array([0]), "hard": np.array([1]), "junk": np.array([2])}]
toy_ranks = torch.tensor([[3, 1, 2, 0, 4]])
print("the revisited example, ranked [3, 1, 2, 0, 4]:", evaluation.format_revisited(evaluation.revisited_map(toy_ranks, toy_gnd)))
with demo("AP against the benchmark's code"):
    medium = evaluation.protocol(toy_gnd, "medium")[0]
    print(f"your AP (Medium) {average_precision(toy_ranks[0].numpy(), medium['ok'], medium['junk']):.6f}; "
          f"non-interpolated {non_interpolated_ap(toy_ranks[0].numpy(), medium['ok'], medium['junk']):.6f}")

# %% [markdown]
# ## 3. Neural codes
#
# Babenko et al. took the activations of a network trained on ImageNet as image descriptors, "neural codes", and
# found that they retrieve well though the network never saw the task, that an intermediate layer can beat the last,
# and that PCA compresses them gracefully. Their network was AlexNet-like and the codes its fully connected layers;
# ours is EfficientNet-Lite0, whose last layers are convolutional: a layer's maps $X \in \mathbb{R}^{K\times H\times W}$
# become a descriptor by pooling each channel over the positions. Global max-pooling is **MAC** (maximum activations
# of convolutions, $f_k = \max_{h,w} X_k(h, w)$), averaging is **SPoC**'s sum-pooling (the same after
# l2-normalisation). Every descriptor is l2-normalised and images are ranked by dot product (the cosine similarity).
#
# `descriptors.describe` sends the images through the network a batch at a time, on the device, computes every
# layer's maps in one pass and keeps only the pooled descriptors (the maps of a whole database would not fit in
# memory); `descriptors.cached_describe` does it once and then reads them from the course's data cache, checked by
# their sha256 (named by the images, the weights and the poolings' code: a change to any computes them again).
# So every descriptor of this stage is computed here, once, with coursekit's pooling (MAC, SPoC, GeM,
# R-MAC, CroW: the next sections take them apart, and check that yours give the same); the maps of `block7`, the
# layer below the last, are kept for the fine-tuning of section 6. The queries are their boxes' crops, at their own
# size: the network takes any size.

# %% nbgrader={"grade": false, "grade_id": "extract", "locked": true, "schema_version": 3, "solution": false, "task": false}
CODE_LAYERS = ("block5", "block6", "block7", "head")
HEAD_POOLINGS = {"MAC": pooling.mac, "SPoC": pooling.spoc, "GeM": pooling.gem, "R-MAC": pooling.rmac,
                 "CroW": cam.crow, "uCroW": cam.ucrow}
WANTED = {
    **{f"{layer} {name}": (layer, pool) for layer in CODE_LAYERS[:-1] for name, pool in (("MAC", pooling.mac), ("SPoC", pooling.spoc))},
    **{name: ("head", pool) for name, pool in HEAD_POOLINGS.items()},
}
KEEP_MAPS = {"block7 maps": ("block7", lambda maps: maps.flatten(1).half())}  # float16: half the memory


def describe_set(images, wanted):
    """{name: descriptors (N, D) on the device}, l2-normalised, and any kept maps as they are."""
    found = descriptors.cached_describe(network, images, wanted, batch_size=16)
    return {name: value if name.endswith("maps") else pooling.l2n(value.float()) for name, value in found.items()}


DATABASE = describe_set(benchmark.images, {**WANTED, **KEEP_MAPS})
QUERIES = describe_set(benchmark.query_crops(), WANTED)
TRAINING = describe_set(training.images, {**WANTED, **KEEP_MAPS})
BLOCK7_SHAPE = (320, *(-(-s // 32) for s in benchmark.images.shape[1:3]))  # block7 has stride 32 too


def map_of(name, whiten=None, queries=None, database=None):
    """mAP (Easy, Medium, Hard) of a descriptor of the benchmark, whitened first if asked."""
    q = QUERIES[name] if queries is None else queries
    d = DATABASE[name] if database is None else database
    if whiten is not None:
        q, d = whiten(q), whiten(d)
    return evaluation.revisited_map(evaluation.ranking(q, d), benchmark.gnd)


print(f"{'neural code':>12} {'dim':>5}   mAP")
for layer in CODE_LAYERS:
    for name in ("MAC", "SPoC"):
        key = name if layer == "head" else f"{layer} {name}"
        print(f"{layer + ' ' + name:>12} {QUERIES[key].shape[1]:5d}   {evaluation.format_revisited(map_of(key))}")

# %% [markdown]
# **Compression.** PCA learned on the training set (other objects, other images) projects the head's MAC codes onto
# their first $d$ principal directions; the mAP (Medium) as $d$ falls:

# %% nbgrader={"grade": false, "grade_id": "pca-compression", "locked": true, "schema_version": 3, "solution": false, "task": false}
mean_mac = TRAINING["MAC"].mean(0)
_, _, directions = torch.linalg.svd(TRAINING["MAC"] - mean_mac, full_matrices=False)
DIMS = [d for d in (8, 16, 32, 64, 128, 256, 512) if d <= len(directions)]
compressed = [map_of("MAC", lambda x, d=d: pooling.l2n((x - mean_mac) @ directions[:d].T))["medium"].map for d in DIMS]
fig, axes = plots.new_figure(1, width=5, height=3.2)
axes[0].semilogx(DIMS, 100 * np.array(compressed), "o-", label="PCA to d dimensions")
axes[0].axhline(100 * map_of("MAC")["medium"].map, color="gray", ls="--", label="all 1280")
axes[0].set(xlabel="dimension d", ylabel="mAP (Medium), %", title="head MAC codes under PCA")
axes[0].legend(fontsize=8)
plots.show(fig)

# %% [markdown]
# ## 4. Pooling: GeM and R-MAC
#
# **GeM**, the generalised mean of Radenović, Tolias & Chum (TPAMI 2018), sits between the two:
# $$f_k = \Big(\frac{1}{|X_k|}\sum_{x \in X_k} x^p\Big)^{1/p},$$
# $p = 1$ is average pooling (SPoC), $p \to \infty$ max-pooling (MAC); $p = 3$ is their default, and they learn it.
# Their code first clamps the activations at $\epsilon = 10^{-6}$, *before* the power, so that a fractional power
# never meets a zero or a negative number.
#
# ### Exercise 4.1 — GeM pooling
# Write `gem(x, p=3.0, eps=1e-6)`: `x` is an `(N, K, H, W)` tensor of maps, `p` a positive float; return the `(N, K)`
# GeM descriptors (not normalised) of the formula, with the activations clamped at `eps` before the power.

# %% nbgrader={"grade": false, "grade_id": "gem-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gem(x, p=3.0, eps=1e-6):
    """(N, K): the mean over positions of clamp(x, eps)^p, to the power 1/p."""
    ### BEGIN SOLUTION
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gem-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand: a constant map c gives c; the map [[0, 1], [2, 3]] with p = 3 gives ((1 + 8 + 27)/4)^(1/3) = 9^(1/3);
# p = 1 is the mean; an all-zero channel gives eps (clamped before the power: (eps^p)^(1/p)).
def gem_of(x_r, p_r, eps_r=1e-6):
    with own_work(stage=7, what="gem"):
        out_r = gem(x_r, p_r, eps_r)
    return check_shape(out_r, tuple(x_r.shape[:2]), f"gem of maps {tuple(x_r.shape)}")


hand_v = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]], [[2.5, 2.5], [2.5, 2.5]], [[0.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)
check_close(gem_of(hand_v, 3.0), [[9.0 ** (1 / 3), 2.5, 1e-6]], "gem of the hand-computed maps (p = 3)", tol=1e-9)
check_close(gem_of(hand_v[:, :2], 1.0), [[(1e-6 + 6.0) / 4, 2.5]], "gem with p = 1 (the mean, the zero clamped)", tol=1e-9)
### BEGIN HIDDEN TESTS
# Against the formula in numpy, maps with zeros and negative values (clamped), several p and eps.
gen_h = np.random.default_rng(72)
for p_h, eps_h in ((3.0, 1e-6), (2.0, 1e-3), (4.5, 1e-6), (1.0, 1e-6)):
    x_h = np.maximum(gen_h.normal(0.3, 1.0, size=(4, 6, 5, 7)), 0) - 0.1 * (gen_h.random((4, 6, 5, 7)) < 0.1)
    expected_h = (np.maximum(x_h, eps_h) ** p_h).mean(axis=(2, 3)) ** (1 / p_h)
    check_close(gem_of(torch.from_numpy(x_h), p_h, eps_h), expected_h, f"gem with p = {p_h}, eps = {eps_h}", tol=1e-9)
large_h = torch.from_numpy(gen_h.random((2, 3, 4, 4)))
check_close(gem_of(large_h.float(), 3.0), ((large_h.clamp(min=1e-6) ** 3).mean((-2, -1)) ** (1 / 3)).float(),
            "gem of float32 maps", tol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# **R-MAC** (Tolias, Sicre & Jégou, ICLR 2016) pools regions: square regions on a grid at $L = 3$ scales, each
# max-pooled, l2-normalised, summed and l2-normalised again. A small object fills a region far better than it fills
# the image, so its channels weigh more in the sum than in a global max. The grid, as their code computes it for a
# map of $H\times W$ positions:
#
# - the side at scale $l = 1, \dots, L$ is $w_l = \lfloor 2\,\min(H, W)/(l + 1)\rfloor$;
# - along the shorter side there are $l$ regions; along the longer side $l + d$ where the extra $d$ makes neighbouring
#   regions overlap by about 40%: with $w = \min(H, W)$ and $b_s = (\max(H, W) - w)/(s - 1)$ for
#   $s = 2, \dots, 7$, $d$ is the first $s - 1$ that minimises $|\,1 - b_s/w - 0.4\,|$ ($d = 0$ for a square map);
# - the $n$ regions along a side of length $S$ start at $\lfloor w_2 + i\,b\rfloor - w_2$, $i = 0, \dots, n - 1$,
#   with $w_2 = \lfloor w_l/2 - 1\rfloor$ and $b = (S - w_l)/(n - 1)$ ($b = 0$ when $n = 1$).
#
# At scale 1 the square region covers the short side; for a square map it is the whole map.
#
# ### Exercise 4.2 — the R-MAC grid
# Write `rmac_regions(height, width, levels=3)`: return a list of `(top, left, side)` triples of Python ints, one per
# region, all the scales' regions together (in any order). A $7\times7$ map has 1 + 4 + 9 regions.

# %% nbgrader={"grade": false, "grade_id": "rmac-regions-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rmac_regions(height, width, levels=3):
    """[(top, left, side), ...]: Tolias et al.'s square regions at scales 1..levels."""
    ### BEGIN SOLUTION
    w = min(height, width)
    steps = np.arange(2, 8)
    b = (max(height, width) - w) / (steps - 1)
    extra = int(np.argmin(np.abs(1 - b / w - 0.4))) + 1  # the first minimum
    extra_w, extra_h = (extra, 0) if height < width else ((0, extra) if height > width else (0, 0))
    regions = []
    for level in range(1, levels + 1):
        side = int(np.floor(2 * w / (level + 1)))
        half = int(np.floor(side / 2 - 1))

        def starts(length, count):
            step = 0 if count == 1 else (length - side) / (count - 1)
            return [int(np.floor(half + i * step)) - half for i in range(count)]

        for top in starts(height, level + extra_h):
            for left in starts(width, level + extra_w):
                regions.append((top, left, side))
    return regions
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rmac-regions-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand: 7x7 (square: d = 0) has the whole map, 4 regions of side 4 starting at 0 and 3, 9 of side 3 at 0, 2, 4;
# 8x10 (wider: b_2 = 2 is best, d = 1): 2 regions of side 8 at left 0, 2; 3x2 of side 5 at lefts 0, 2, 5 and tops 0,
# 3; 4x3 of side 4 at lefts 0, 2, 4, 6 and tops 0, 2, 4.
def regions_of(h_r, w_r, levels_r=3):
    with own_work(stage=7, what="rmac_regions"):
        found_r = rmac_regions(h_r, w_r, levels_r)
    check(isinstance(found_r, (list, tuple)), f"rmac_regions({h_r}, {w_r}) must return a list of (top, left, side)")
    check(all(len(r) == 3 for r in found_r), f"rmac_regions({h_r}, {w_r}): each region must be (top, left, side)")
    return sorted(tuple(int(v) for v in r) for r in found_r)


def grid(tops_r, lefts_r, side_r):
    return [(t, left, side_r) for t in tops_r for left in lefts_r]


check(regions_of(7, 7) == sorted([(0, 0, 7)] + grid([0, 3], [0, 3], 4) + grid([0, 2, 4], [0, 2, 4], 3)),
      "the regions of a 7x7 map are not the R-MAC grid")
check(regions_of(8, 10) == sorted(grid([0], [0, 2], 8) + grid([0, 3], [0, 2, 5], 5) + grid([0, 2, 4], [0, 2, 4, 6], 4)),
      "the regions of an 8x10 map are not the R-MAC grid")
check(regions_of(7, 7, 1) == [(0, 0, 7)], "a 7x7 map with levels = 1 has one region, the whole map")
### BEGIN HIDDEN TESTS
# Against the grid's arithmetic, written out here, for other sizes (taller maps, long thin ones, tiny ones, ties).
def grid_oracle(h_r, w_r, levels_r):
    short_r, long_r = min(h_r, w_r), max(h_r, w_r)
    costs_r = [abs(1 - ((long_r - short_r) / (s - 1)) / short_r - 0.4) for s in range(2, 8)]
    d_r = costs_r.index(min(costs_r)) + 1
    dh_r, dw_r = (d_r, 0) if h_r > w_r else ((0, d_r) if w_r > h_r else (0, 0))
    out_r = []
    for l_r in range(1, levels_r + 1):
        side_r = int(2 * short_r // (l_r + 1))
        half_r = int((side_r / 2 - 1) // 1)
        per_side_r = []
        for length_r, n_r in ((h_r, l_r + dh_r), (w_r, l_r + dw_r)):
            step_r = 0.0 if n_r == 1 else (length_r - side_r) / (n_r - 1)
            per_side_r.append([int((half_r + i * step_r) // 1) - half_r for i in range(n_r)])
        out_r += grid(per_side_r[0], per_side_r[1], side_r)
    return sorted(out_r)


for h_h, w_h, levels_h in ((10, 8, 3), (12, 16, 3), (5, 30, 3), (3, 5, 2), (6, 6, 4), (9, 13, 3), (15, 20, 3), (2, 2, 1),
                          (3, 11, 3), (22, 6, 3)):  # the last two: two overlaps equally close to 40%
    check(regions_of(h_h, w_h, levels_h) == grid_oracle(h_h, w_h, levels_h),
          f"the regions of a {h_h}x{w_h} map ({levels_h} levels) are not the R-MAC grid")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4.3 — the R-MAC descriptor
# Write `rmac(x, regions)`: `x` is an `(N, K, H, W)` tensor of maps, `regions` a list of `(top, left, side)` squares;
# for each image, MAC-pool each region ($K$ values), l2-normalise each region's vector, sum them over the regions and
# l2-normalise the sum; return the `(N, K)` descriptors. (No region of the tests is all zero; an `eps` of 1e-6 added
# to the norms changes nothing measurable.)

# %% nbgrader={"grade": false, "grade_id": "rmac-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rmac(x, regions):
    """(N, K): sum over the regions of the l2-normalised MAC of each region, l2-normalised."""
    ### BEGIN SOLUTION
    total = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)
    for top, left, side in regions:
        region = x[:, :, top:top + side, left:left + side].amax(dim=(-2, -1))
        total = total + region / region.norm(dim=1, keepdim=True)
    return total / total.norm(dim=1, keepdim=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rmac-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand: one image, 2 channels, two regions whose maxima are (3, 4) and (1, 0): (0.6, 0.8) + (1, 0) = (1.6, 0.8),
# normalised (2, 1)/sqrt(5). A region is rows top..top+side-1 and columns left..left+side-1.
def rmac_of(x_r, regions_r):
    with own_work(stage=7, what="rmac"):
        out_r = rmac(x_r, regions_r)
    return check_shape(out_r, tuple(x_r.shape[:2]), f"rmac of maps {tuple(x_r.shape)}")


hand_v = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
hand_v[0, 0, 0, 0], hand_v[0, 1, 1, 1] = 3.0, 4.0  # inside the region (0, 0, 2)
hand_v[0, 0, 2, 3] = 1.0  # inside the region (1, 2, 2) only
hand_v[0, 1, 0, 2] = 0.5  # in neither
check_close(rmac_of(hand_v, [(0, 0, 2), (1, 2, 2)]), [[2 / 5 ** 0.5, 1 / 5 ** 0.5]], "rmac of the hand-computed maps", tol=1e-9)
### BEGIN HIDDEN TESTS
# Against a loop over images and regions in numpy, on random maps and random square regions.
def rmac_oracle(x_r, regions_r):
    out_r = np.zeros(x_r.shape[:2])
    for n_r in range(x_r.shape[0]):
        for top_r, left_r, side_r in regions_r:
            v_r = x_r[n_r, :, top_r:top_r + side_r, left_r:left_r + side_r].reshape(x_r.shape[1], -1).max(axis=1)
            out_r[n_r] += v_r / np.linalg.norm(v_r)
        out_r[n_r] /= np.linalg.norm(out_r[n_r])
    return out_r


gen_h = np.random.default_rng(73)
for h_h, w_h in ((7, 7), (8, 10), (10, 8), (5, 9)):
    x_h = np.maximum(gen_h.normal(size=(3, 16, h_h, w_h)), 0) + 1e-3
    sides_h = gen_h.integers(1, min(h_h, w_h) + 1, size=12)  # any squares inside the map
    regions_h = [(int(gen_h.integers(0, h_h - s + 1)), int(gen_h.integers(0, w_h - s + 1)), int(s)) for s in sides_h]
    check_close(rmac_of(torch.from_numpy(x_h), regions_h), rmac_oracle(x_h, regions_h), f"rmac on {h_h}x{w_h} maps", tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Whitening
#
# Descriptors of a network's channels are correlated, and some directions are frequent in every image (what all
# photos share: texture, clutter, the background) while others are rare and telling. **PCA-whitening** learned on
# other images removes the mean, rotates to the principal directions and divides each by its standard deviation:
# $$x \mapsto \frac{\Lambda_d^{-1/2} V_d^\top (x - m)}{\big\|\Lambda_d^{-1/2} V_d^\top (x - m)\big\|},$$
# with $m$ the mean and $V_d, \Lambda_d$ the $d$ leading eigenvectors and eigenvalues of the covariance
# $\frac1N\sum_i (x_i - m)(x_i - m)^\top$ of the learning set. Frequent directions are damped, rare ones
# amplified; $d < D$ also compresses. It must be learned on a **separate** set (the papers learn it on Paris to test
# on Oxford): learned on the test images, it would use the answers.
#
# ### Exercise 5.1 — PCA-whitening
# Write `pca_whiten(learn, x, dim)`: `learn` is an `(N, D)` float64 tensor of descriptors to learn from, `x` an
# `(M, D)` tensor to whiten, `dim` $\le \min(N - 1, D)$; return the `(M, dim)` whitened, l2-normalised descriptors
# of `x` by the formula above (`torch.linalg.eigh` returns the eigenvalues of a symmetric matrix in *ascending*
# order). Eigenvectors have no sign, so the tests compare the dot products between your whitened descriptors,
# which is all retrieval uses.

# %% nbgrader={"grade": false, "grade_id": "pca-whitening-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pca_whiten(learn, x, dim):
    """(M, dim): x centred by learn's mean, projected on learn's dim leading eigenvectors / sqrt(eigenvalue), l2-normalised."""
    ### BEGIN SOLUTION
    mean = learn.mean(dim=0)
    centred = learn - mean
    values, vectors = torch.linalg.eigh(centred.T @ centred / len(learn))
    top = torch.argsort(values, descending=True)[:dim]
    projected = (x - mean) @ vectors[:, top] / values[top].sqrt()
    return projected / projected.norm(dim=1, keepdim=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pca-whitening-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# By hand: learning points spread 10 times more along the first axis than the second; whitening makes (10, 1) and
# (-10, 1) (away from the mean) orthogonal (they become (1, 1) and (-1, 1) before normalisation).
def whiten_of(learn_r, x_r, dim_r):
    with own_work(stage=7, what="pca_whiten"):
        out_r = pca_whiten(learn_r, x_r, dim_r)
    out_r = check_shape(out_r, (len(x_r), dim_r), f"pca_whiten of {tuple(x_r.shape)} to {dim_r} dimensions")
    return out_r @ out_r.T  # the dot products: the same for any sign of the eigenvectors


learn_v = torch.tensor([[10.0, 0.0], [-10.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
check_close(whiten_of(learn_v, torch.tensor([[10.0, 1.0], [-10.0, 1.0]], dtype=torch.float64), 2), [[1.0, 0.0], [0.0, 1.0]],
            "the dot products of the hand-computed whitened points", tol=1e-9, atol=1e-12)
### BEGIN HIDDEN TESTS
# Against numpy: eigh of the learning set's covariance, the leading dim directions, on correlated random descriptors;
# x is not the learning set (whitening learned on x instead fails).
def whiten_oracle(learn_r, x_r, dim_r):
    m_r = learn_r.mean(axis=0)
    values_r, vectors_r = np.linalg.eigh((learn_r - m_r).T @ (learn_r - m_r) / len(learn_r))
    top_r = np.argsort(values_r)[::-1][:dim_r]
    p_r = (x_r - m_r) @ vectors_r[:, top_r] / np.sqrt(values_r[top_r])
    p_r /= np.linalg.norm(p_r, axis=1, keepdims=True)
    return p_r @ p_r.T


gen_h = np.random.default_rng(74)
for n_h, d_h, dim_h in ((200, 12, 12), (200, 12, 5), (60, 30, 20)):
    mixing_h = gen_h.normal(size=(d_h, d_h)) * np.linspace(3, 0.2, d_h)
    learn_h = gen_h.normal(size=(n_h, d_h)) @ mixing_h + 2.0
    x_h = gen_h.normal(size=(15, d_h)) @ mixing_h.T + 1.0
    check_close(whiten_of(torch.from_numpy(learn_h), torch.from_numpy(x_h), dim_h), whiten_oracle(learn_h, x_h, dim_h),
                f"the dot products of whitened descriptors ({n_h} learning, D = {d_h}, dim = {dim_h})", tol=1e-7, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# Your pooling on the head's maps of a few database images, against the descriptors of the table below (coursekit's),
# and the grid drawn on an image: the head's maps have one position per $32\times32$ pixels.

# %% nbgrader={"grade": false, "grade_id": "pooling-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
few_maps = descriptors.feature_maps(network, benchmark.images[:8])
with demo("Your GeM and R-MAC against the table's"):
    mine_gem = pooling.l2n(gem(few_maps, 3.0, 1e-6).float())
    mine_rmac = rmac(few_maps, rmac_regions(few_maps.shape[-2], few_maps.shape[-1], 3)).float()
    print(f"largest difference: GeM {float((mine_gem - DATABASE['GeM'][:8]).abs().max()):.1e}, "
          f"R-MAC {float((mine_rmac - DATABASE['R-MAC'][:8]).abs().max()):.1e}")
grid_now = yours_or(rmac_regions, lambda h, w, levels=3: [tuple(r[:3]) for r in pooling.rmac_regions(h, w, levels).tolist()],
                    "the grid's picture")
regions_shown = grid_now(few_maps.shape[-2], few_maps.shape[-1], 3)
fig, axes = plots.new_figure(3, width=3.7, height=3)
sides = sorted({side for _, _, side in regions_shown}, reverse=True)
for ax, side in zip(axes, sides):
    ax.imshow(benchmark.images[0])
    for top, left, s in regions_shown:
        if s == side:
            ax.add_patch(Rectangle((32 * left - 0.5, 32 * top - 0.5), 32 * s, 32 * s, fill=False, color="yellow", lw=1.5))
    ax.set(title=f"scale {sides.index(side) + 1}: regions of {side}x{side} positions", xticks=[], yticks=[])
plots.show(fig)

# %% [markdown]
# Each descriptor of section 3, with whitening learned on the training set's descriptors (your `pca_whiten`, to 256
# dimensions or fewer when the training set is small), and with the **learned whitening** of Radenović et al. (Lw),
# learned from matching pairs of the training set: it first makes the differences between matching descriptors
# isotropic, then decorrelates the rest (`whitening.learned_whitening`; it needs more matching pairs than dimensions,
# so it is learned after a PCA to at most 128).

# %% nbgrader={"grade": false, "grade_id": "whitening-table", "locked": true, "schema_version": 3, "solution": false, "task": false}
whiten_now = yours_or(pca_whiten, lambda learn, x, dim: whitening.pca_whitening(learn, dim)(x), "the whitening table")
WHITEN_DIM = min(256, len(training.images) - 1)
LW_DIM = min(128, len(training.images) // 2)  # Lw needs more pairs than dimensions: PCA to LW_DIM first


def learned_whitening_of(learn):
    """Lw learned on PCA-reduced training descriptors, as a function of (M, D) descriptors."""
    reduce = whitening.pca_whitening(learn, LW_DIM)
    lw = whitening.learned_whitening(reduce(learn), TRAINING_PAIRS[:, 0], TRAINING_PAIRS[:, 1])
    return lambda x: lw(reduce(x.double())).float()
CLUSTERS = torch.as_tensor(training.clusters(), device=DEVICE)  # the object each training image shows most
TRAINING_PAIRS = finetune.matching_pairs(CLUSTERS, per_item=1)  # each image and another image of its object
TABLE = {}
for name in ("MAC", "SPoC", "GeM", "R-MAC"):
    learn = TRAINING[name].double()
    TABLE[name] = map_of(name)
    TABLE[f"{name}, whitened"] = map_of(name, lambda x, learn=learn: whiten_now(learn, x.double(), WHITEN_DIM).float())
    TABLE[f"{name}, Lw"] = map_of(name, learned_whitening_of(learn))
for name, result in TABLE.items():
    print(f"{name:>18}   {evaluation.format_revisited(result)}")


def whitened_rows(name):
    """The table's rows for a descriptor of the benchmark: as it is, PCA-whitened, Lw (all learned on training)."""
    learn = TRAINING[name].double()
    return {name: map_of(name),
            f"{name}, whitened": map_of(name, lambda x: whiten_now(learn, x.double(), WHITEN_DIM).float()),
            f"{name}, Lw": map_of(name, learned_whitening_of(learn))}


# %% [markdown]
# ## 6. Fine-tuning for retrieval
#
# An ImageNet network was trained to tell classes apart, not objects. Gordo et al. fine-tune it end to end with
# R-MAC and a triplet loss on landmark photos cleaned by matching; Radenović, Tolias & Chum do it with MAC and the
# contrastive loss of stage 06 on tuples found without any labels: a query, a matching image, and **hard negatives**
# re-mined before every epoch with the current network, the most similar images of other clusters, "at most one image
# per cluster" (their N2; N1 takes the $k$ nearest, which "often leads to multiple, and very similar, instances of the
# same object"). The training set's objects are not the benchmark's, so the test measures what carries over.
#
# Here, a small version on a CPU: only the last layer is trained (the $1\times1$ convolution from `block7`'s 320
# channels to the 1280 of the head, with its batch norm's scale and shift; its running statistics stay ImageNet's), on
# the `block7` maps kept in section 3, with MAC, margin 0.7 and 5 negatives per query (`finetune.TupleTrainer`). First,
# what N1 and N2 pick for one training image (images that show no object well enough form one cluster, "no object"):

# %% nbgrader={"grade": false, "grade_id": "negatives-figure", "locked": true, "schema_version": 3, "solution": false, "task": false}
from coursekit.retrieval import losses

shown = int(TRAINING_PAIRS[0, 0])
picked = {rule: losses.mine_negatives(TRAINING["MAC"][shown][None], TRAINING["MAC"], CLUSTERS[shown][None], CLUSTERS,
                                      k=5, one_per_cluster=rule == "N2")[0].tolist() for rule in ("N1", "N2")}
fig, axes = plots.new_figure(11, width=1.4, height=1.9)
axes[0].imshow(training.images[shown])
axes[0].set_title("query", fontsize=8, color="tab:green")
for column, (rule, found) in enumerate(picked.items()):
    for ax, index in zip(axes[1 + 5 * column:], found):
        ax.imshow(training.images[index])
        cluster = int(CLUSTERS[index])  # -1: the image shows no object well enough (its own cluster)
        ax.set_title(f"{rule}: {training.instance_names[cluster][:14] if cluster >= 0 else 'no object'}", fontsize=7)
for ax in axes:
    ax.set(xticks=[], yticks=[])
plots.show(fig)

# %% nbgrader={"grade": false, "grade_id": "finetune", "locked": true, "schema_version": 3, "solution": false, "task": false}
EPOCHS = BUDGET.pick(full=8, fast=2)
torch.manual_seed(0)
head = finetune.RetrievalHead(network, "mac")
trainer = finetune.TupleTrainer(head, TRAINING["block7 maps"].unflatten(1, BLOCK7_SHAPE), CLUSTERS, TRAINING_PAIRS,
                                negatives=5, margin=0.7, lr=1e-4, batch=8)
before = map_of("MAC")
for epoch in range(EPOCHS):
    trainer.epoch()
tuned_database = trainer.describe(DATABASE["block7 maps"].unflatten(1, BLOCK7_SHAPE))
tuned_queries = descriptors.describe(network, benchmark.query_crops(), {"tuned": ("block7", trainer.describe)})["tuned"]
TUNED = map_of("MAC", queries=tuned_queries, database=tuned_database)
print(f"{EPOCHS} epochs of {len(TRAINING_PAIRS)} tuples, {len(trainer.losses)} steps on the CPU's budget")
print(f"MAC before: {evaluation.format_revisited(before)}")
print(f"MAC after:  {evaluation.format_revisited(TUNED)}")
fig, axes = plots.new_figure(1, width=5, height=3)
plots.plot_loss(axes[0], [float(v) for v in trainer.losses], title="contrastive loss per step")
plots.show(fig)

# %% [markdown]
# What to expect: in the full budget (8 epochs over 2,089 tuples of the 2,400 training images) the fine-tuned MAC
# gained about 10 points of mAP on the Medium protocol and 6 on the Hard one (39.4 to 49.0, 20.0 to 25.8, on objects
# it never saw in training); the fast budget's 2 epochs over 130 tuples change almost nothing. A layer trained for
# classes learns, from matching tuples and its own current mistakes, what makes two views of one object alike.

# %% nbgrader={"grade": false, "grade_id": "photos", "locked": true, "schema_version": 3, "solution": false, "task": false}
from coursekit.explore.retrieval import square_input

PHOTOS = {name: colour_photo(name) for name in ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left")}
PHOTO_INPUTS = {name: square_input(photo, 224) for name, photo in PHOTOS.items()}  # the network's 224x224 view, uint8

# %% [markdown]
# ## 7. Class activation maps
#
# Zhou et al. noticed that a network whose last convolutional maps $f_k(x, y)$ are globally average-pooled and fed to
# one linear layer says *where* each class is: the class score $S_c = \sum_k w_k^c F_k$ with
# $F_k = \sum_{x,y} f_k(x,y)$ can be read position by position,
# $$S_c = \sum_{x,y} M_c(x, y), \qquad M_c(x, y) = \sum_k w_k^c f_k(x, y),$$
# and $M_c$, the **class activation map**, upsampled to the image, shows the regions that made the network say $c$.
# EfficientNet-Lite0 has exactly that structure: the head's 1280 maps, average pooling, and `network.classifier`
# (weights $w$ of shape $1000\times1280$ and a bias). With the *mean* instead of the sum, the mean of $M_c$ plus the
# class's bias is the class's logit.
#
# ### Exercise 7.1 — class activation maps
# Write `class_activation_maps(features, weights, classes)`: `features` is `(N, K, h, w)`, `weights` the `(C, K)`
# weights of the linear layer, `classes` an `(N,)` integer tensor (one class per image); return the `(N, h, w)`
# maps $M_c$, image `i`'s for class `classes[i]`.

# %% nbgrader={"grade": false, "grade_id": "cam-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def class_activation_maps(features, weights, classes):
    """(N, h, w): for image i, the sum over channels k of weights[classes[i], k] * features[i, k]."""
    ### BEGIN SOLUTION
    return torch.einsum("nk,nkhw->nhw", weights[classes], features)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "cam-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The property of the paper on the real network and a real photo: each map's mean plus the class's bias is the
# class's logit (float32: to 1e-4). Then by hand: two channels, weights (1, -1) and (2, 0).
def cams_of(features_r, weights_r, classes_r):
    with own_work(stage=7, what="class_activation_maps"):
        out_r = class_activation_maps(features_r, weights_r, classes_r)
    return check_shape(out_r, (features_r.shape[0], *features_r.shape[2:]), "class_activation_maps")


with torch.no_grad():
    cat_x = preprocess(torch.from_numpy(PHOTO_INPUTS["chelsea"][None]).to(DEVICE))
    cat_features = network.features(cat_x)
    cat_logits = network(cat_x)[0]
top_v = cat_logits.topk(3).indices
for c_v in top_v.tolist():
    found_v = cams_of(cat_features, network.classifier.weight.detach(), torch.tensor([c_v], device=DEVICE))
    check_close(found_v.mean() + network.classifier.bias[c_v], cat_logits[c_v],
                f"the mean of the cat's map for class {c_v} plus its bias against its logit", tol=1e-4, atol=1e-4)
hand_v = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.5]]]], dtype=torch.float64)  # (1, 2, 1, 2)
check_close(cams_of(hand_v, torch.tensor([[1.0, -1.0], [2.0, 0.0]], dtype=torch.float64), torch.tensor([0])), [[[-2.0, 1.5]]],
            "the hand-computed map of class 0", tol=1e-12)
### BEGIN HIDDEN TESTS
# Against einsum-free sums over channels, several images with different classes each, and class 1 of the hand case.
check_close(cams_of(hand_v, torch.tensor([[1.0, -1.0], [2.0, 0.0]], dtype=torch.float64), torch.tensor([1])), [[[2.0, 4.0]]],
            "the hand-computed map of class 1", tol=1e-12)
gen_h = torch.Generator().manual_seed(75)
f_h = torch.rand(6, 9, 4, 5, generator=gen_h, dtype=torch.float64)
w_h = torch.randn(12, 9, generator=gen_h, dtype=torch.float64)
c_h = torch.tensor([3, 0, 11, 3, 7, 1])
expected_h = torch.stack([sum(w_h[c_h[i], k] * f_h[i, k] for k in range(9)) for i in range(6)])
check_close(cams_of(f_h, w_h, c_h), expected_h, "maps of six images, each for its own class", tol=1e-10)
check_close(cams_of(f_h[:2], w_h[:2], torch.tensor([1, 1])), torch.stack([sum(w_h[1, k] * f_h[i, k] for k in range(9)) for i in range(2)]),
            "maps of two images for class 1 of two classes", tol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# The paper's Figure 4: the maps of the five most probable classes over one photo, upsampled (bilinearly) to the
# photo and drawn over it. Different classes look at different parts of the same image.

# %% nbgrader={"grade": false, "grade_id": "cam-figure", "locked": true, "schema_version": 3, "solution": false, "task": false}
cams_now = yours_or(class_activation_maps, lambda f, w, c: cam.class_activation_maps(f, w, c), "the top-5 maps")
shown_photo = PHOTO_INPUTS["astronaut"]
with torch.no_grad():
    photo_x = preprocess(torch.from_numpy(shown_photo[None]).to(DEVICE))
    photo_features = network.features(photo_x)
    photo_logits = network(photo_x)
top5 = top_classes(photo_logits, 5)[0]
fig, axes = plots.new_figure(5, width=3, height=3.4)
for ax, prediction in zip(axes, top5):
    with torch.no_grad():
        heat = cams_now(photo_features, network.classifier.weight, torch.tensor([prediction.index], device=DEVICE))
        heat = cam.upsample_maps(heat[:, None], (224, 224))[0, 0]
    ax.imshow(shown_photo)
    ax.imshow(heat.cpu(), cmap="jet", alpha=0.45)
    ax.set(title=f"{prediction.name[:22]} ({100 * prediction.probability:.0f}%)", xticks=[], yticks=[])
plots.show(fig)

# %% [markdown]
# **The CAM explorer**: a photo and one of its top classes; the map over the photo, and the top classes' maps beside.

# %% nbgrader={"grade": false, "grade_id": "cam-explorer", "locked": true, "schema_version": 3, "solution": false, "task": false}
if not coursekit.under_grading():  # the autograder skips the widget
    from coursekit.explore.retrieval import CAMExplorer

    display(CAMExplorer(PHOTOS, network))

# %% [markdown]
# ## 8. CroW: cross-dimensional weighting
#
# Kalantidis et al. weight the maps before sum-pooling them, in both dimensions. **Spatially**, by the aggregate
# response: $S'(x, y) = \sum_k X_k(x, y)$, normalised and compressed,
# $$S = \left(\frac{S'}{\|S'\|_a}\right)^{1/b}, \qquad a = b = 2,$$
# so positions where many channels fire count more. **Per channel**, by an IDF-like weight from the sparsity of each
# channel: with $Q_k$ the fraction of positions where $X_k > 0$,
# $$\Omega_k = \log\frac{\sum_h Q_h}{Q_k}\quad(\Omega_k = 0 \text{ for a channel that is zero everywhere}),$$
# so rare channels weigh more. The descriptor is $f_k = \Omega_k \sum_{x,y} S(x,y)\,X_k(x,y)$, l2-normalised
# (then PCA-whitened, in the paper); uCroW drops both weights and is plain sum-pooling.
#
# ### Exercise 8.1 — CroW's weights
# Write `crow_weights(x, a=2.0, b=2.0)`: `x` is `(N, K, H, W)`, non-negative; return `(spatial, channel)`, the
# `(N, H, W)` spatial weights $S$ and the `(N, K)` channel weights $\Omega$ of each image. No image of the tests is
# zero everywhere.

# %% nbgrader={"grade": false, "grade_id": "crow-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def crow_weights(x, a=2.0, b=2.0):
    """(spatial (N, H, W), channel (N, K)): CroW's aggregate-response and sparsity (IDF-like) weights."""
    ### BEGIN SOLUTION
    aggregate = x.sum(dim=1)
    norm = aggregate.pow(a).sum(dim=(-2, -1), keepdim=True).pow(1.0 / a)
    spatial = (aggregate / norm).pow(1.0 / b)
    q = (x > 0).flatten(2).to(x.dtype).mean(dim=2)
    ratio = q.sum(dim=1, keepdim=True) / q
    channel = torch.where(q > 0, torch.log(ratio), torch.zeros_like(q))
    return spatial, channel
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "crow-spatial-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# By hand: channel 0 fires at one position (value 1), channel 1 everywhere (value 1), channel 2 nowhere:
# S' = [[2, 1], [1, 1]], ||S'||_2 = sqrt(7), S = sqrt(S' / sqrt(7)).
def crow_of(x_r, a_r=2.0, b_r=2.0):
    with own_work(stage=7, what="crow_weights"):
        out_r = crow_weights(x_r, a_r, b_r)
    check(isinstance(out_r, (tuple, list)) and len(out_r) == 2, "crow_weights must return (spatial, channel)")
    n_r, k_r, h_r, w_r = x_r.shape
    return (check_shape(out_r[0], (n_r, h_r, w_r), "the spatial weights"), check_shape(out_r[1], (n_r, k_r), "the channel weights"))


hand_v = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
hand_v[0, 0, 0, 0] = 1.0
hand_v[0, 1] = 1.0
check_close(crow_of(hand_v)[0], np.sqrt(np.array([[[2.0, 1.0], [1.0, 1.0]]]) / np.sqrt(7)), "the hand-computed spatial weights", tol=1e-10)
### BEGIN HIDDEN TESTS
# Against the formula in numpy on random sparse maps, for several a and b (a and b swapped fails).
def crow_oracle(x_r, a_r, b_r):
    s_r = x_r.sum(axis=1)
    s_r = (s_r / (s_r ** a_r).sum(axis=(1, 2), keepdims=True) ** (1 / a_r)) ** (1 / b_r)
    q_r = (x_r > 0).reshape(*x_r.shape[:2], -1).mean(axis=2)
    with np.errstate(divide="ignore"):
        omega_r = np.where(q_r > 0, np.log(q_r.sum(axis=1, keepdims=True) / np.where(q_r > 0, q_r, 1)), 0.0)
    return s_r, omega_r


gen_h = np.random.default_rng(76)
x_h = np.maximum(gen_h.normal(-0.5, 1.0, size=(4, 10, 5, 6)), 0)
x_h[1, 3] = 0  # a channel that never fires
for a_h, b_h in ((2.0, 2.0), (3.0, 1.5), (1.0, 1.0)):
    check_close(crow_of(torch.from_numpy(x_h), a_h, b_h)[0], crow_oracle(x_h, a_h, b_h)[0], f"the spatial weights (a = {a_h}, b = {b_h})", tol=1e-10)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "crow-channel-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# By hand (the same maps): Q = (1/4, 1, 0), so Omega = (log 5, log 1.25, 0).
check_close(crow_of(hand_v)[1], [[np.log(5.0), np.log(1.25), 0.0]], "the hand-computed channel weights", tol=1e-10, atol=1e-12)
### BEGIN HIDDEN TESTS
for a_h, b_h in ((2.0, 2.0), (3.0, 1.5)):
    check_close(crow_of(torch.from_numpy(x_h), a_h, b_h)[1], crow_oracle(x_h, a_h, b_h)[1], f"the channel weights (a = {a_h}, b = {b_h})",
                tol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# What CroW and SPoC do differently, the paper's Table 1 in words:
#
# | step | SPoC (Babenko & Lempitsky 2015) | CroW (Kalantidis et al. 2016) |
# |---|---|---|
# | local pooling | none: the last convolutional layer | max-pooling: the last pooling layer (pool5) |
# | spatial weighting | a fixed Gaussian centred on the image | the aggregate response $S$ of the image itself |
# | channel weighting | none | the sparsity weight $\Omega$ |
# | aggregation | sum | sum |
#
# EfficientNet-Lite0 ends without a pooling layer, so CroW here weights the head's maps (the last layer, as SPoC).
# Your weights on a few database images, against the CroW descriptors of the table:

# %% nbgrader={"grade": false, "grade_id": "crow-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
with demo("Your CroW weights against the table's CroW"):
    spatial_mine, channel_mine = crow_weights(few_maps, 2.0, 2.0)
    crow_mine = pooling.l2n((channel_mine * (few_maps * spatial_mine[:, None]).sum((-2, -1))).float())
    print(f"largest difference: {float((crow_mine - DATABASE['CroW'][:8]).abs().max()):.1e}")
    fig, axes = plots.new_figure(4, width=3, height=2.6)
    for ax, index in zip(axes, range(4)):
        ax.imshow(benchmark.images[index])
        weight = cam.upsample_maps(spatial_mine[index][None, None].float(), benchmark.images.shape[1:3])[0, 0]
        ax.imshow(weight.cpu(), cmap="magma", alpha=0.5)
        ax.set(title="spatial weight S", xticks=[], yticks=[])
    plots.show(fig)

# %% [markdown]
# ## 9. The table
#
# Every descriptor on the benchmark, as it is, PCA-whitened and with learned whitening (all learned on the training
# set), and the fine-tuned MAC of section 6: mAP in % for the Easy, Medium and Hard protocols.

# %% nbgrader={"grade": false, "grade_id": "table", "locked": true, "schema_version": 3, "solution": false, "task": false}
TABLE = {}
for name in HEAD_POOLINGS:
    TABLE.update(whitened_rows(name))
TABLE["MAC, fine-tuned"] = TUNED
print(f"{'descriptor':>20}   {'E':>6} {'M':>6} {'H':>6}")
for name, result in TABLE.items():
    print(f"{name:>20}   {100 * result['easy'].map:6.2f} {100 * result['medium'].map:6.2f} {100 * result['hard'].map:6.2f}")

# %% [markdown]
# **What the table says, and what it does not.** On this benchmark, in both budgets: the head's codes retrieve far
# better than those of `block5` (deeper is better, up to the last layer); GeM beats SPoC; and max-pooling (MAC, GeM)
# keeps the small and hidden objects of the Hard protocol better than averaging does (SPoC, uCroW), which mixes them
# with the clutter. Those are checked below.
#
# Two lessons of the papers do **not** hold here, and the notebook does not pretend they do. R-MAC does not beat MAC
# on the Hard protocol: its smallest regions are $4\times4$ positions of the head's $8\times10$ map, $128\times128$
# pixels, larger than most of the pasted objects (25–120 pixels), and its 20 equally weighted regions are mostly
# clutter; on Oxford's 1024-pixel photos of buildings the regions fit the objects. Whitening learned on the training
# set helps the Easy and Medium protocols a little in the full budget (2,400 training images: about +5 and +2 points
# for MAC at 256 dimensions) and hurts in the fast one, where 150 training images of other objects cannot estimate
# 1280-dimensional statistics.

# %% nbgrader={"grade": false, "grade_id": "lessons", "locked": true, "schema_version": 3, "solution": false, "task": false}
check(map_of("MAC")["medium"].map > map_of("block5 MAC")["medium"].map + 0.1, "the head's codes should beat block5's")
check(TABLE["GeM"]["medium"].map > TABLE["SPoC"]["medium"].map + 0.02, "GeM should beat SPoC")
check(TABLE["MAC"]["hard"].map > TABLE["SPoC"]["hard"].map + 0.02, "max-pooling should keep the small objects better than averaging")
print("the lessons hold in this run")

# %% [markdown]
# **The retrieval browser**: a query, a descriptor, and its top $k$, framed by their labels for this query.

# %% nbgrader={"grade": false, "grade_id": "retrieval-browser", "locked": true, "schema_version": 3, "solution": false, "task": false}
if not coursekit.under_grading():  # the autograder skips the widget
    from coursekit.explore.retrieval import RetrievalBrowser

    display(RetrievalBrowser(benchmark.images, benchmark.query_crops(),
                             {name: (QUERIES[name], DATABASE[name]) for name in HEAD_POOLINGS}, benchmark.gnd,
                             query_names=[benchmark.instance_names[i] for i in benchmark.query_instances]))

# %% [markdown] nbgrader={"grade": true, "grade_id": "pooling-question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Question (2 points).** Why does max-pooling (MAC) keep the Hard positives of this benchmark better than average
# pooling (SPoC)? R-MAC was designed for small objects: why does it not help here, and what would you change so that
# it does? Why must whitening be learned on a set other than the one it is tested on?
#
# ### BEGIN SOLUTION
# The Hard positives are images where the object is small or partly hidden: it covers a few positions of the map. The
# mean over all positions divides its response by the size of the map and mixes it with the clutter's, so SPoC
# describes mostly the background; the maximum keeps, in every channel that the object excites more than anything
# else in the image, the object's own response, whatever its size. (Its weakness is the reverse: a channel whose
# maximum comes from the clutter says nothing about the object.)
#
# R-MAC helps when its regions fit the objects: a region the object fills gives a unit vector dominated by it, as
# much as any region of background. Here the smallest regions are 4x4 positions of an 8x10 map (128 pixels), larger
# than most objects, so every region still holds mostly clutter, and summing 20 such regions with equal weights
# brings back the averaging that hurt SPoC. Finer regions would fit: the images at a higher resolution (a larger map),
# more scales (L = 4 or 5), or regions chosen where the object is (a region proposal network as in Gordo et al., or
# the detected regions of stage 08), and whitening per region before the sum, as Tolias et al. do, which damps the
# directions that background regions share.
#
# Learned on the test images, the whitening would be fitted to the very images it ranks, queries' objects included:
# the mAP would be optimistic and not what a new collection gets. A separate set (Paris for Oxford in the papers,
# the training objects here) measures what the statistics of images in general bring; it also has to be large
# enough to estimate them, which the fast budget's 150 images are not.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# - Retrieval is measured by mAP with junk removed and the trapezoid rule, on the Easy, Medium and Hard protocols
#   (`coursekit.retrieval.evaluation`: `average_precision`, `mean_average_precision`, `revisited_map`, `ranking`).
# - A pretrained network's maps, pooled, are neural codes; MAC, SPoC, GeM and R-MAC pool them globally or by regions
#   (`coursekit.retrieval.pooling`: `mac`, `spoc`, `gem`, `rmac_regions`, `rmac`, `l2n`).
# - PCA-whitening and learned whitening, learned on a separate set, decorrelate and rebalance the descriptors
#   (`coursekit.retrieval.whitening`: `pca_whitening`, `learned_whitening`).
# - Fine-tuning with the siamese loss on N2 hard negatives (`coursekit.retrieval.finetune`).
# - Class activation maps read a classifier's score position by position; CroW weights positions and channels
#   before sum-pooling (`coursekit.retrieval.cam`: `class_activation_maps`, `upsample_maps`, `crow_spatial_weight`,
#   `crow_channel_weight`, `crow`, `ucrow`), and the `CAMExplorer` and `RetrievalBrowser` widgets.
# - The benchmark: `coursekit.data.instances` (the offline set) and `coursekit.data.revisited` (Revisited Oxford and
#   Paris). Next, stage 08: regions detected by EGM on these maps, and a graph of regions.
