# ---
# jupyter:
#   coursekit:
#     full_budget_on_cpu: false
# ---

# %% [markdown]
# # Stage 05 — AlexNet: ImageNet, the network on two GPUs, and what it learns
#
# *Deep learning for vision*, lecture slides "ImageNet", "AlexNet", "learned layer 1 kernels" and "visualizing
# intermediate layers" (Krizhevsky, Sutskever & Hinton, *ImageNet classification with deep convolutional neural
# networks*, NIPS 2012; Zeiler & Fergus, *Visualizing and understanding convolutional networks*, ECCV 2014).
#
# In 2012 a convolutional network much like LeNet-5, but with 60 million parameters, trained on two GPUs on 1.2
# million images, "outperformed all previous models on ILSVRC by 10%". Its ingredients: ReLU, data augmentation,
# local response normalisation, overlapping pooling, dropout, and a careful update rule and initialisation. ImageNet cannot be downloaded
# here (nor in most classrooms), so this stage builds the real network exactly and checks it against the paper's
# numbers, trains a smaller network of the same design on real photographs that ship with scikit-image, and looks
# inside a real ImageNet network (EfficientNet-Lite0, whose trained weights come with the course's data).
#
# **You will**
# 1. compute every layer's output size and parameter count, and check them against the paper and the torch model;
# 2. reproduce the paper's ReLU-versus-tanh experiment;
# 3. write local response normalisation and the paper's dropout;
# 4. write the test-time ten crops and the PCA colour augmentation, batched on the device;
# 5. write the paper's initialisation and update rule, and see where the update differs from torch's SGD;
# 6. train an AlexNet-style network on surrogate classes of photo patches and look at its first-layer kernels;
# 7. compute receptive fields, and look at the image patches that excite the feature maps of a trained network.
#
# A test cell that passes prints nothing. *Run All* stops at the first failing test: until your answers are done,
# run the cells one by one. While your code is graded, coursekit's pieces of this stage are switched off (those of
# earlier stages are yours to use). The training cells read the run budget: the **full** budget (the default) trains
# for a few minutes on a laptop CPU and seconds on a GPU; the **fast** budget (autograding, CI, or
# `COURSEKIT_BUDGET=fast`) trains for seconds, too little to learn much: the notebook says what each budget shows.
# Tolerances: float32 answers are compared to float32's precision, float64 ones to about 1e-10.
#
# **Only the answer cells are graded: put all your code in them** (cells you add are dropped when your notebook
# is graded).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from torch import nn

import coursekit
from coursekit.data import samples
from coursekit.explore import plots
from coursekit.grading import check, check_close, check_shape, demo, own_work, yours_or
from coursekit.nets import alexnet, augment, inspect, pretrained, training

BUDGET = coursekit.budget()
DEVICE = coursekit.device()
coursekit.seed_everything(0)
# Running layers to read off their output sizes is not computing them: switched off for 2.1.
LAYERS = [
    "coursekit.convolution.layer",
    "torch.nn.functional.conv2d",
    "torch.nn.functional.max_pool2d",
    "torch.conv2d",
    "torch.max_pool2d",
]
LRN = ["torch.nn.functional.local_response_norm"]

# the photos: 224x224 crops of scikit-image's colour photographs, each rescaled to a short side of 256
PER_PHOTO = BUDGET.pick(full=8, fast=3)
crops_np, crop_sources = samples.photo_crops(224, per_photo=PER_PHOTO, seed=0)
crops = torch.from_numpy(crops_np).to(DEVICE)  # uint8 (N, 3, 224, 224)
net = pretrained.load_efficientnet_lite0(DEVICE)  # a real ImageNet network, in eval mode
print(f"{BUDGET}; device {DEVICE}; {len(crops)} photo crops from {len(samples.COLOUR_PHOTOS)} photos")

# %% [markdown]
# ## 1. ImageNet
#
# ImageNet (Deng et al. 2009): about 22k classes (WordNet synsets) and 15M labelled images. The ImageNet Large-Scale
# Visual Recognition Challenge (ILSVRC, Russakovsky et al.) uses 1000 of its classes: 1.2M training images, 50k
# validation images and 150k test images; a method is scored by its top-1 and top-5 error (the true class is not the
# first, or not among the first five, predictions). The paper's network reached 37.5% top-1 and 17.0% top-5 error on
# ILSVRC-2010's test set, against 47.1% and 28.2% for the best entry of the ILSVRC-2010 competition (and 45.7% and 25.7%
# for the best result published since).
#
# What an ImageNet network does: the five classes it finds most likely for each photo, by a network trained on
# ILSVRC's 1.2M images (EfficientNet-Lite0, 2019: 4.7M parameters, better than AlexNet with a thirteenth of its size).
# Photos of things that are not among the 1000 classes (a galaxy field, a retina, stained tissue) get unrelated
# guesses: the network can only choose among the classes it was trained on. (Some class names occur twice in the
# list, as "missile" for classes 657 and 744: the class index tells them apart.)

# %% nbgrader={"grade": false, "grade_id": "imagenet-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
first_crops = torch.stack([crops[i * PER_PHOTO] for i in range(len(samples.COLOUR_PHOTOS))])
with torch.no_grad():
    logits = net(pretrained.preprocess(first_crops))
for name, best in zip(samples.COLOUR_PHOTOS, pretrained.top_classes(logits, k=3)):
    print(f"{name:>22}: " + ", ".join(f"{p.name} ({p.index}) {100 * p.probability:.0f}%" for p in best))
plots.show(plots.colour_grid(first_crops, list(samples.COLOUR_PHOTOS), ncols=9, size=1.4))

# %% [markdown]
# ## 2. The architecture
#
# The paper's Figure 2: five convolutional layers and three fully connected ones, split between two GPUs.
#
# | layer | what it does | connections |
# |---|---|---|
# | conv1 | 96 kernels $11\times11\times3$, stride 4; ReLU; LRN; max-pool $3\times3$ stride 2 | 48 kernels on each GPU, all 3 channels |
# | conv2 | 256 kernels $5\times5\times48$ (padding 2); ReLU; LRN; max-pool | each GPU's 128 kernels read its own 48 maps |
# | conv3 | 384 kernels $3\times3\times256$ (padding 1); ReLU | reads both GPUs' maps |
# | conv4 | 384 kernels $3\times3\times192$; ReLU | each GPU's own maps |
# | conv5 | 256 kernels $3\times3\times192$; ReLU; max-pool | each GPU's own maps |
# | fc6, fc7 | 4096 units each; ReLU; dropout 0.5 | both GPUs' units |
# | fc8 | 1000 units, softmax | |
#
# In `coursekit.nets.alexnet`, `AlexNet()` is this network as one tower: the split layers are convolutions with
# `groups=2` (each half of the filters reads one half of the maps), and LRN works within each half.
# The pooling windows overlap ($3\times3$ with stride 2): the paper reports 0.4% lower top-1 error than with
# $2\times2$ windows and stride 2, and that such networks overfit slightly less.
# `TwoTowerAlexNet` is the paper's picture: two towers that exchange their maps only at conv3 and the fully connected
# layers, each on its own GPU when there are two. A window of $k$ pixels with stride $s$ and padding $p$ (zeros on
# each side) over $n$ inputs gives $\lfloor (n + 2p - k)/s \rfloor + 1$ outputs. The paper's input is
# $224\times224\times3$; conv1 is padded by 2 so that its maps are the paper's $55\times55$ (many re-implementations
# feed 227 pixels with no padding instead).
#
# ### Exercise 2.1 — every layer's output shape
# Write `alexnet_shapes(size=224, conv1=(11, 4, 2))`: a dict mapping `"conv1"`, `"pool1"`, `"conv2"`, `"pool2"`,
# `"conv3"`, `"conv4"`, `"conv5"`, `"pool5"` to the `(channels, height, width)` of that layer's output (conv1, conv2 and
# conv5 before their pooling) for a `size x size` input, with conv1's `(kernel, stride, padding)` given (the other
# layers as in the table: conv2 padding 2, conv3-5 padding 1, pooling $3\times3$ with stride 2 and no padding).
# Compute them with the formula (running torch layers is switched off while this is graded).

# %% nbgrader={"grade": false, "grade_id": "alexnet-shapes-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def alexnet_shapes(size=224, conv1=(11, 4, 2)):
    """{"conv1": (96, h, w), "pool1": ..., "pool5": (256, h, w)} for a size x size input."""
    ### BEGIN SOLUTION
    def out(n, k, s=1, p=0):
        return (n + 2 * p - k) // s + 1

    k, s, p = conv1
    n = out(size, k, s, p)
    shapes = {"conv1": (96, n, n)}
    n = out(n, 3, 2)
    shapes["pool1"] = (96, n, n)
    n = out(n, 5, 1, 2)
    shapes["conv2"] = (256, n, n)
    n = out(n, 3, 2)
    shapes["pool2"] = (256, n, n)
    shapes["conv3"] = (384, n, n)
    shapes["conv4"] = (384, n, n)
    shapes["conv5"] = (256, n, n)
    n = out(n, 3, 2)
    shapes["pool5"] = (256, n, n)
    return shapes
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "alexnet-shapes-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The paper's maps for its 224x224 input: 55, 27, 13 and 6 pixels a side.
with own_work(*LAYERS, stage=5, what="alexnet_shapes"):
    paper_shapes = alexnet_shapes(224)
check(isinstance(paper_shapes, dict) and set(paper_shapes) == set(alexnet.map_sizes(alexnet.Design())),
      "alexnet_shapes must return a dict with the keys conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5")
check({name: tuple(shape) for name, shape in paper_shapes.items()} == {
    "conv1": (96, 55, 55), "pool1": (96, 27, 27), "conv2": (256, 27, 27), "pool2": (256, 13, 13),
    "conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6)},
    "alexnet_shapes(224) does not give the paper's maps")
### BEGIN HIDDEN TESTS
# Other inputs and conv1 settings, against the outputs of torch layers.
for size_h, conv1_h in ((227, (11, 4, 0)), (256, (11, 4, 2)), (99, (7, 2, 3)), (64, (5, 1, 0))):
    with torch.device("meta"):  # meta tensors: torch works out the shapes without computing anything
        x_h, expected_h = torch.zeros(1, 3, size_h, size_h), {}
        for name, layer in (("conv1", nn.Conv2d(3, 96, conv1_h[0], conv1_h[1], conv1_h[2])), ("pool1", nn.MaxPool2d(3, 2)),
                            ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2)), ("pool2", nn.MaxPool2d(3, 2)),
                            ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("conv4", nn.Conv2d(384, 384, 3, padding=1)),
                            ("conv5", nn.Conv2d(384, 256, 3, padding=1)), ("pool5", nn.MaxPool2d(3, 2))):
            x_h = layer(x_h)
            expected_h[name] = tuple(x_h.shape[1:])
    with own_work(*LAYERS, stage=5, what="alexnet_shapes"):
        found_h = alexnet_shapes(size_h, conv1_h)
    check(isinstance(found_h, dict) and {n: tuple(s) for n, s in found_h.items()} == expected_h,
          f"alexnet_shapes({size_h}, conv1={conv1_h})")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.2 — parameters, layer by layer
# Write `alexnet_parameters(widths=(96, 256, 384, 384, 256), hidden=4096, num_classes=1000, pool5=6, groups=2)`: a dict
# mapping `"conv1"` ... `"conv5"`, `"fc6"`, `"fc7"`, `"fc8"` to the number of weights and biases of each layer, for an
# AlexNet whose five convolutions have `widths` filters (kernels 11, 5, 3, 3, 3; conv1 reads the 3 colour channels),
# whose split layers (conv2, conv4, conv5) read `1/groups` of their input maps, whose last maps are
# `pool5 x pool5`, and whose fc6 and fc7 have `hidden` units. A convolution has one bias per filter, a fully
# connected layer $m \to n$ has $mn + n$ parameters.

# %% nbgrader={"grade": false, "grade_id": "alexnet-parameters-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def alexnet_parameters(widths=(96, 256, 384, 384, 256), hidden=4096, num_classes=1000, pool5=6, groups=2):
    """Weights and biases of conv1..conv5, fc6, fc7, fc8, as a dict."""
    ### BEGIN SOLUTION
    c1, c2, c3, c4, c5 = widths
    return {
        "conv1": c1 * 3 * 11 * 11 + c1,
        "conv2": c2 * (c1 // groups) * 5 * 5 + c2,
        "conv3": c3 * c2 * 3 * 3 + c3,
        "conv4": c4 * (c3 // groups) * 3 * 3 + c4,
        "conv5": c5 * (c4 // groups) * 3 * 3 + c5,
        "fc6": c5 * pool5 * pool5 * hidden + hidden,
        "fc7": hidden * hidden + hidden,
        "fc8": hidden * num_classes + num_classes,
    }
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "alexnet-parameters-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The paper's "60 million parameters", and each layer against the tensors torch allocates for AlexNet.
def torch_counts(model):
    return {name: sum(p.numel() for p in layer.parameters()) for name, layer in model.layers().items()}


with own_work(stage=5, what="alexnet_parameters"):
    paper_counts = alexnet_parameters()
check(isinstance(paper_counts, dict) and set(paper_counts) == set(alexnet.CONV_NAMES + alexnet.FC_NAMES),
      "alexnet_parameters must return a dict with the keys conv1 ... conv5, fc6, fc7, fc8")
check(60e6 <= sum(paper_counts.values()) < 61e6, "the total is not the paper's 60 million")
reference_counts = torch_counts(alexnet.AlexNet())
for layer in paper_counts:
    check(paper_counts[layer] == reference_counts[layer], f"alexnet_parameters()[{layer!r}] is not the torch model's count")
### BEGIN HIDDEN TESTS
for widths_h, hidden_h, classes_h, size_h, groups_h in (((48, 128, 192, 192, 128), 1024, 37, 56, 2),
                                                          ((12, 20, 30, 24, 16), 50, 7, 96, 1),
                                                          ((8, 16, 24, 24, 20), 12, 3, 120, 4)):
    design_h = alexnet.Design(num_classes=classes_h, size=size_h, conv1=(11, 2, 5), widths=widths_h,
                              hidden=hidden_h, groups=groups_h)
    pool5_h = alexnet.map_sizes(design_h)["pool5"]
    with own_work(stage=5, what="alexnet_parameters"):
        found_h = alexnet_parameters(widths_h, hidden_h, classes_h, pool5_h, groups_h)
    check(isinstance(found_h, dict) and found_h == torch_counts(alexnet.AlexNet(design_h)),
          f"alexnet_parameters for widths {widths_h}, hidden {hidden_h}, {classes_h} classes, groups {groups_h}")
### END HIDDEN TESTS

# %% [markdown]
# **The caption's numbers.** "The network's input is 150,528-dimensional, and the number of neurons in the network's
# remaining layers is given by 253,440–186,624–64,896–64,896–43,264–4096–4096–1000." Counting the neurons of each
# layer's maps from your shapes:

# %% nbgrader={"grade": false, "grade_id": "caption-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
shapes_now = yours_or(alexnet_shapes, lambda size=224, conv1=(11, 4, 2): {
    name: (w, s, s) for name, w, s in zip(
        alexnet.map_sizes(alexnet.Design()), (96, 96, 256, 256, 384, 384, 256, 256),
        alexnet.map_sizes(alexnet.Design(size=size, conv1=conv1)).values())}, "the caption's table")(224)
caption = dict(zip(alexnet.CONV_NAMES + alexnet.FC_NAMES, (253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000)))
counted = {name: int(np.prod(shapes_now[name])) for name in alexnet.CONV_NAMES}
counted.update(fc6=4096, fc7=4096, fc8=1000)
print(f"input: 224 x 224 x 3 = {224 * 224 * 3:,} (the caption: 150,528)")
print(f"{'layer':>6} {'maps':>14} {'neurons':>9} {'caption':>9}")
for name in caption:
    maps = "x".join(map(str, shapes_now[name])) if name in shapes_now else ""
    flag = "" if counted[name] == caption[name] else f"  <- {counted[name] - caption[name]:+,} ({100 * (counted[name] / caption[name] - 1):+.1f}%)"
    print(f"{name:>6} {maps:>14} {counted[name]:>9,} {caption[name]:>9,}{flag}")

# %% [markdown]
# Every figure follows from the layer sizes but the first. conv1 has 96 maps of $55\times55$: 290,400 neurons, 36,960
# (14.6%) more than the caption's 253,440. No square map gives the caption's figure ($253{,}440 = 96 \times 2{,}640$,
# and 2,640 is not a square; with 48 maps per GPU, $253{,}440/48 = 5{,}280$ is not one either). The usual reading is
# that the caption's first number is a slip; the sizes that the rest of the network needs (conv2's $27\times27$ maps
# after pooling) are those of $55\times55$ maps. The input has the same kind of wrinkle: $224$ pixels with an
# $11\times11$ kernel and stride 4 give $(224-11)/4+1 = 54.25$ positions, so the paper's 55 needs 227 pixels, or
# padding. And the parameters: about 61.0M (60,965,224), of which fc6 alone holds 37.8M and the five convolutions 2.3M
# (4% of the parameters; but most of the computation: 666 of the 724 million multiply-adds of a forward pass,
# `alexnet.flops()`).
#
# **Two towers.** The same weights in the paper's two-tower form compute the same function: the split layers see only
# their own tower's maps, exactly like `groups=2`. With two GPUs each tower sits on its own device and the towers
# exchange activations only at conv3, fc6, fc7 and fc8.

# %% nbgrader={"grade": false, "grade_id": "towers-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
one_tower = alexnet.AlexNet().eval()
two_towers = alexnet.TwoTowerAlexNet.from_one_tower(one_tower).eval()
image = pretrained.preprocess(crops[:1]).to(next(one_tower.parameters()).device)
with torch.no_grad():
    gap = (one_tower(image) - two_towers(image).to(image.device)).abs().max().item()
print(f"towers on {[str(d) for d in two_towers.devices]}; largest difference of the 1000 outputs: {gap:.1e}")
print(f"parameters: one tower {sum(p.numel() for p in one_tower.parameters()):,}, "
      f"two towers {sum(p.numel() for p in two_towers.parameters()):,}")
del one_tower, two_towers

# %% [markdown]
# ## 3. ReLU
#
# "Deep convolutional neural networks with ReLUs train several times faster than their equivalents with tanh units."
# The paper's Figure 1: a four-layer convolutional network reaches 25% training error on CIFAR-10 six times faster
# with ReLUs (solid line) than with tanh (dashed). The same experiment on our data: a four-layer network (two
# convolutions, two fully connected layers) learns to tell apart surrogate classes, each made of the augmented views
# of one patch of a photo (section 6 says more), with each activation, from the same initial weights and with the same
# optimiser; the training error is measured on a fixed set of training views as training goes.

# %% nbgrader={"grade": false, "grade_id": "relu-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
def four_layer_cnn(activation, num_classes):
    """Two 5x5 convolutions with max-pooling and two fully connected layers, on 32x32 colour images."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2), activation(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), activation(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 128), activation(), nn.Linear(128, num_classes),
    )


RELU_CLASSES = BUDGET.pick(full=100, fast=16)
relu_patches, _ = samples.exemplar_patches(RELU_CLASSES, size=32, short_side=128, seed=3)
relu_x = torch.from_numpy(relu_patches).to(DEVICE).repeat(16, 1, 1, 1)
relu_y = torch.arange(RELU_CLASSES, device=DEVICE).repeat(16)
relu_mean = relu_x.float().mean((0, 2, 3)) / 255


def to_unit(x):
    return x.float() / 255 - relu_mean.reshape(1, 3, 1, 1)


def jitter(x, generator):  # a flip and a small shift: the views of one patch differ
    return training.random_flip(training.random_crop(32, padding=2)(x, generator), generator)


def training_error(model, x, y):
    return 1.0 - training.accuracy(model, x, y, transform=to_unit)


TARGET = 0.25
RATES = BUDGET.pick(full=(0.01, 0.02, 0.05), fast=(0.02,))  # the paper chose each network's rate for speed


def iterations_to_target(history):
    return next((s for s, _, e in history.evaluations if e <= TARGET), None)


relu_runs, tried = {}, {}
for name, activation in (("ReLU", nn.ReLU), ("tanh", nn.Tanh)):
    for rate in RATES:
        torch.manual_seed(5)  # the same initial weights for both
        model = four_layer_cnn(activation, RELU_CLASSES)
        run = training.fit(
            model, relu_x, relu_y, epochs=BUDGET.pick(full=12, fast=2), batch_size=32,
            optimizer=lambda ps: torch.optim.SGD(ps, lr=rate, momentum=0.9), transform=to_unit, augment=jitter,
            metric=training_error, test=(relu_x[:1000], relu_y[:1000]), evaluate_every=BUDGET.pick(full=10, fast=4),
            schedule="constant", seed=5, description=f"four-layer CNN, {name}, rate {rate}",
        )
        tried[name, rate] = iterations_to_target(run)
        best = relu_runs.get(name)
        key = (tried[name, rate] or 10**9, run.evaluations[-1][2])
        if best is None or key < (iterations_to_target(best) or 10**9, best.evaluations[-1][2]):
            relu_runs[name] = run
fig, (ax,) = plots.new_figure(1, width=6, height=3.6)
for name, style in (("ReLU", "-"), ("tanh", "--")):
    ax.plot([s for s, _, _ in relu_runs[name].evaluations], [e for _, _, e in relu_runs[name].evaluations], style,
            label=f"{name} (its fastest rate)")
ax.axhline(TARGET, color="gray", lw=0.8)
ax.set(xlabel="iterations (batches of 32)", ylabel="training error", title="the paper's Figure 1 on our data", ylim=(0, 1))
ax.legend()
plots.show(fig)
last = relu_runs["ReLU"].evaluations[-1][0]
for (name, rate), step in tried.items():
    print(f"{name:>4}, learning rate {rate}: " + (f"{TARGET:.0%} training error after {step} iterations" if step is not None
                                                 else f"not {TARGET:.0%} within {last} iterations"))

# %% [markdown]
# **What this shows, and what it does not.** On our data the paper's result does not reproduce: with each network
# at its fastest learning rate, the tanh network reached 25% training error first (the full budget on a 2-core CPU:
# after 80 iterations at rate 0.05 against ReLU's 130, also at 0.05; at rate 0.1, tried separately, tanh took 60
# and the ReLU network did not get there within 300 iterations). The fast budget's runs are a few dozen steps, too short for
# either. The paper's argument is about saturation: tanh's derivative $1 - \tanh^2$ is nearly 0 for large inputs, so
# the gradients that reach the early layers shrink, layer after layer, while $\max(0, a)$ passes the gradient
# unchanged wherever a unit is active. Our network is shallow and its inputs are small (pixels in about $[-0.5, 0.5]$, a
# default initialisation scaled to each layer's fan-in), so its tanh units work near their linear range, where they
# do not saturate; the paper's network saw CIFAR-10 through the same four layers but with the initialisation and
# input scale of its time. One experiment on one dataset is a weak basis for a rule either way: the lasting reason
# for ReLU is the one the paper gives, and it matters most in deep networks (all of AlexNet's eight layers), which the
# exemplar training below uses.
#
# ## 4. Local response normalisation and dropout
#
# "Denoting by $a^i_{x,y}$ the activity of a neuron computed by applying kernel $i$ at position $(x, y)$ and then
# applying the ReLU nonlinearity, the response-normalized activity $b^i_{x,y}$ is given by the expression
#
# $$b^i_{x,y} = a^i_{x,y} \Big/ \Big(k + \alpha \sum_{j=\max(0,\, i-n/2)}^{\min(N-1,\, i+n/2)} (a^j_{x,y})^2\Big)^\beta$$
#
# where the sum runs over $n$ 'adjacent' kernel maps at the same spatial position, and $N$ is the total number of
# kernels in the layer", with $k = 2$, $n = 5$, $\alpha = 10^{-4}$ and $\beta = 0.75$: a form of lateral inhibition,
# a competition for big activities among the maps. ($n/2$ is rounded down: with $n = 5$ the window is
# $i-2, \dots, i+2$.)
#
# ### Exercise 4.1 — local response normalisation
# Write `local_response_norm(a, k=2.0, n=5, alpha=1e-4, beta=0.75)` for `a` of shape `(N, C, H, W)` (channels
# are the kernel maps): the formula above, with the window cut at the first and last channel. Return a tensor of
# `a`'s shape and dtype; `n` is odd (the window is centred on channel $i$). `torch.nn.functional.local_response_norm`
# is switched off while this is graded. The test compares your function with `torch.nn.LocalResponseNorm`, whose
# $\alpha$ means something else (it divides the sum by the window's size): your function takes the paper's $\alpha$.

# %% nbgrader={"grade": false, "grade_id": "lrn-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def local_response_norm(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """The paper's normalisation across the channels of a (N, C, H, W), the window of n channels cut at the ends."""
    ### BEGIN SOLUTION
    C = a.shape[1]
    squares = a * a
    sums = torch.zeros_like(a)
    for i in range(C):
        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2)
        sums[:, i] = squares[:, lo:hi + 1].sum(dim=1)
    return a / (k + alpha * sums) ** beta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "lrn-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# A hand-computed case, then torch's LocalResponseNorm, which divides the sum by size: alpha_torch = n * alpha.
hand_a = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64).reshape(1, 3, 1, 1)
with own_work(*LRN, stage=5, what="local_response_norm"):
    hand_b = local_response_norm(hand_a, k=1.0, n=3, alpha=0.1, beta=1.0)
check_shape(hand_b, (1, 3, 1, 1), "local_response_norm of a (1, 3, 1, 1) input")
check_close(hand_b.flatten().numpy(), [3 / (1 + 0.1 * 25), 4 / (1 + 0.1 * 25), 0.0],
            "channels (3, 4, 0) with k=1, n=3, alpha=0.1, beta=1", tol=1e-10)
a_lrn = 40 * torch.randn(2, 16, 3, 3, generator=torch.Generator().manual_seed(50))
with own_work(*LRN, stage=5, what="local_response_norm"):
    b_lrn = local_response_norm(a_lrn)
check(b_lrn.dtype == a_lrn.dtype, "local_response_norm should keep the input's dtype")
check_close(b_lrn.numpy(), nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)(a_lrn).numpy(),
            "the paper's constants on a (2, 16, 3, 3) input", tol=1e-5, atol=1e-6)
### BEGIN HIDDEN TESTS
for seed_h, shape_h, n_h, alpha_h, k_h, beta_h in ((51, (1, 9, 4, 2), 3, 1e-3, 2.0, 0.75), (52, (3, 4, 2, 2), 7, 1e-2, 1.0, 0.5),
                                                    (53, (2, 20, 1, 5), 5, 1e-4, 2.0, 0.75), (54, (1, 2, 3, 3), 5, 5e-3, 0.5, 1.0)):
    a_h = 30 * torch.randn(*shape_h, generator=torch.Generator().manual_seed(seed_h)).double()
    with own_work(*LRN, stage=5, what="local_response_norm"):
        b_h = local_response_norm(a_h, k=k_h, n=n_h, alpha=alpha_h, beta=beta_h)
    check_close(b_h.numpy(), nn.LocalResponseNorm(n_h, alpha=n_h * alpha_h, beta=beta_h, k=k_h)(a_h).numpy(),
                f"local_response_norm of a {shape_h} input with n={n_h}, alpha={alpha_h}, k={k_h}, beta={beta_h}",
                tol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# **Dropout.** "Setting to zero the output of each hidden neuron with probability 0.5 ... At test time, we use all
# the neurons but multiply their outputs by 0.5." Each training example thus trains one of exponentially many thinned
# networks that share their weights; the test pass is "a reasonable approximation to taking the geometric mean of the
# predictive distributions produced by the exponentially-many dropout networks". torch's `nn.Dropout` is *inverted*
# dropout: it divides the kept outputs by $1-p$ while training and does nothing at test time.
#
# ### Exercise 4.2 — the paper's dropout
# Write `paper_dropout(x, p=0.5, training=True, generator=None)`: while `training`, each entry of `x` independently
# becomes 0 with probability `p` and is kept unchanged otherwise (draw the random numbers with
# `torch.rand(..., generator=generator)` so that a seeded generator gives the same mask again); at test time
# (`training=False`) every entry is multiplied by `1 - p`. Return a tensor of `x`'s shape.

# %% nbgrader={"grade": false, "grade_id": "dropout-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def paper_dropout(x, p=0.5, training=True, generator=None):
    """Zero each entry with probability p in training (keep the rest as they are); scale by 1 - p at test time."""
    ### BEGIN SOLUTION
    if not training:
        return x * (1 - p)
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "dropout-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# At test time: x (1 - p). In training: every entry either 0 or unchanged, about p of them 0, the same mask again
# for the same seed; and on average over many masks, the training output is the test output.
def check_dropout(x, p, seed, what):
    with own_work(stage=5, what="paper_dropout"):
        test_out = paper_dropout(x, p, training=False)
        train_out = paper_dropout(x, p, True, torch.Generator().manual_seed(seed))
        again = paper_dropout(x, p, True, torch.Generator().manual_seed(seed))
        other = paper_dropout(x, p, True, torch.Generator().manual_seed(seed + 1))
    check_close(test_out.numpy(), (x * (1 - p)).numpy(), f"the test-time output {what}", tol=1e-6)
    check_shape(train_out, tuple(x.shape), f"the training output {what}")
    zero = train_out == 0
    check(bool(torch.all(zero | (train_out == x))), f"in training, each entry should be 0 or unchanged {what}")
    n = x.numel()
    check(abs(zero.float().mean().item() - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-9,
          f"the fraction of zeros is not about p={p} {what}")
    check(torch.equal(train_out, again) and not torch.equal(train_out, other),
          f"the mask should come from the generator given (the same seed, the same mask) {what}")
    for axis in range(x.ndim):  # one draw per entry: no row or column dropped or kept as a whole
        if x.shape[axis] > 1:
            share = zero.double().mean(axis)
            check(not bool(((share == 0) | (share == 1)).all()),
                  f"the entries along axis {axis} are all dropped or all kept together: draw one number per entry {what}")


x_drop = torch.rand(40, 250, generator=torch.Generator().manual_seed(60)) + 0.5
check_dropout(x_drop, 0.5, 61, "for p=0.5")
### BEGIN HIDDEN TESTS
check_dropout(torch.rand(30, 7, 11, generator=torch.Generator().manual_seed(62)) + 0.1, 0.2, 63, "for p=0.2")
check_dropout(torch.rand(5000, generator=torch.Generator().manual_seed(64)) + 1.0, 0.8, 65, "for p=0.8")
x_mean = torch.tensor([1.0, 2.0, 5.0, 0.5])
g_mean = torch.Generator().manual_seed(66)
with own_work(stage=5, what="paper_dropout"):
    draws = torch.stack([paper_dropout(x_mean, 0.3, True, g_mean) for _ in range(3000)]).mean(0)
check_close(draws.numpy(), (0.7 * x_mean).numpy(), "the mean of 3,000 training outputs (p=0.3)", tol=0.05)
### END HIDDEN TESTS

# %% [markdown]
# Both forms, measured on one vector of activations: the mean of many training outputs, and the test output.

# %% nbgrader={"grade": false, "grade_id": "dropout-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
with demo("the dropout comparison"):
    activations = torch.tensor([0.5, 1.0, 2.0, 4.0])
    g_demo = torch.Generator().manual_seed(0)
    mean_paper = torch.stack([paper_dropout(activations, 0.5, True, g_demo) for _ in range(10_000)]).mean(0)
    mean_torch = torch.stack([nn.functional.dropout(activations, 0.5, True) for _ in range(10_000)]).mean(0)
    print("activations                    ", activations.tolist())
    print("paper, mean of training outputs", [round(v, 3) for v in mean_paper.tolist()])
    print("paper, test output             ", paper_dropout(activations, 0.5, False).tolist())
    print("torch, mean of training outputs", [round(v, 3) for v in mean_torch.tolist()])
    print("torch, test output             ", nn.functional.dropout(activations, 0.5, False).tolist())

# %% [markdown] nbgrader={"grade": true, "grade_id": "dropout-question", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# **Question (1 point).** Show that the paper's dropout and torch's inverted dropout give each unit the same expected
# activation relative to its test-time output, and say why the inverted form is the one used in practice.
#
# ### BEGIN SOLUTION
# Let $m \sim \text{Bernoulli}(1-p)$ be a unit's keep mask. The paper trains with $m a$, whose expectation is
# $(1-p)a$, and tests with $(1-p)a$: the expected training activation equals the test activation. Inverted dropout
# trains with $m a / (1-p)$, whose expectation is $a$, and tests with $a$: again equal. The two differ only by the
# constant factor $1-p$ on the layer's output at both times, which the next layer's weights absorb (they are $1-p$
# times larger in one form than in the other), so they train the same family of networks. The inverted form puts the
# scaling in training, so the trained network is used as it is at test time (no layer needs to know that it was
# trained with dropout, and the same weights work with dropout switched off).
# ### END SOLUTION

# %% [markdown]
# ## 5. Data augmentation
#
# "We do this by extracting random $224\times224$ patches (and their horizontal reflections) from the $256\times256$
# images ... At test time, the network makes a prediction by extracting five $224 \times 224$ patches (the four corner
# patches and the center patch) as well as their horizontal reflections (hence ten patches in all), and averaging the
# predictions made by the network's softmax layer on the ten patches." Random crops and flips are
# `coursekit.nets.training.random_crop` and `random_flip` (stage 04): one batched operation on the device each.
#
# ### Exercise 5.1 — the ten test crops
# Write `ten_crops(images, size)`: for `images (N, C, H, W)`, the tensor `(N, 10, C, size, size)` of the top-left,
# top-right, bottom-left, bottom-right and centre crops, in that order, followed by the same five mirrored
# left-right. The centre crop starts at row `(H - size) // 2` and column `(W - size) // 2`. Work on the whole batch
# at once (slices of the batch tensor, no loop over the images), so that it runs on the images' device.

# %% nbgrader={"grade": false, "grade_id": "ten-crops-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ten_crops(images, size):
    """(N, C, H, W) -> (N, 10, C, size, size): four corners and the centre, then their mirror images."""
    ### BEGIN SOLUTION
    H, W = images.shape[-2:]
    starts = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]
    five = torch.stack([images[:, :, t:t + size, l:l + size] for t, l in starts], dim=1)
    return torch.cat([five, five.flip(-1)], dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ten-crops-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# A 1x1x4x5 image of the numbers 0..19, cut into ten 3x3 crops; then random batches against slices.
def crops_by_slicing(x, size):
    H, W = x.shape[-2:]
    windows = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]
    five = [x[:, :, t:t + size, l:l + size] for t, l in windows]
    return torch.stack(five + [c.flip(-1) for c in five], dim=1)


counting = torch.arange(20.0).reshape(1, 1, 4, 5)
with own_work(stage=5, what="ten_crops"):
    counted_crops = ten_crops(counting, 3)
check_shape(counted_crops, (1, 10, 1, 3, 3), "ten_crops of a (1, 1, 4, 5) image with size 3")
check(torch.equal(counted_crops[0, 0, 0, 0], torch.tensor([0.0, 1, 2])), "the top-left crop's first row")
check(torch.equal(counted_crops[0, 3, 0, 2], torch.tensor([17.0, 18, 19])), "the bottom-right crop's last row")
check(torch.equal(counted_crops, crops_by_slicing(counting, 3)), "the ten crops of the 4x5 image, in the order asked")
### BEGIN HIDDEN TESTS
for seed_h, shape_h, size_h in ((70, (3, 3, 9, 11), 6), (71, (2, 1, 8, 8), 5), (72, (1, 3, 7, 12), 7), (73, (4, 2, 5, 5), 5)):
    x_h = torch.randn(*shape_h, generator=torch.Generator().manual_seed(seed_h))
    with own_work(stage=5, what="ten_crops"):
        found_h = ten_crops(x_h, size_h)
    check(tuple(found_h.shape) == (shape_h[0], 10, shape_h[1], size_h, size_h) and torch.equal(found_h, crops_by_slicing(x_h, size_h)),
          f"ten_crops of a {shape_h} batch with size {size_h}")
### END HIDDEN TESTS

# %% [markdown]
# **PCA colour augmentation.** "We perform PCA on the set of RGB pixel values throughout the ImageNet training set. To
# each training image, we add multiples of the found principal components, with magnitudes proportional to the
# corresponding eigenvalues times a random variable drawn from a Gaussian with mean zero and standard deviation 0.1.
# Therefore to each RGB image pixel $I_{xy} = [I^R_{xy}, I^G_{xy}, I^B_{xy}]^T$ we add the following quantity:
# $[\mathbf{p}_1, \mathbf{p}_2, \mathbf{p}_3][\alpha_1\lambda_1, \alpha_2\lambda_2, \alpha_3\lambda_3]^T$, where
# $\mathbf{p}_i$ and $\lambda_i$ are the $i$th eigenvector and eigenvalue of the $3\times3$ covariance matrix of RGB pixel
# values ... Each $\alpha_i$ is drawn only once for all the pixels of a particular training image." It changes the
# intensity and colour of the illumination, to which object identity is invariant; the paper reports that it lowers
# the top-1 error by over 1%.
#
# ### Exercise 5.2 — PCA colour augmentation
# Write two functions:
# - `pca_colour(images)`: for `images (N, 3, H, W)` (uint8 pixels are scaled to $[0, 1]$ first; float ones are used as
#   they are), the eigenvalues `(3,)`, largest first, and the eigenvectors `(3, 3)`, one per **column** in the same
#   order, of the covariance matrix of the RGB values of all $N H W$ pixels (divide by the number of pixels). Work in
#   float64. (An eigenvector's sign is arbitrary: either is right.)
# - `colour_shift(x, eigenvalues, eigenvectors, alphas)`: for a float batch `x (N, 3, H, W)` and `alphas (N, 3)`, add
#   $\sum_i \alpha_{n,i} \lambda_i \mathbf{p}_i$ to every pixel of image $n$; return the shifted batch (batched: no loop over
#   images or pixels).

# %% nbgrader={"grade": false, "grade_id": "pca-colour-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pca_colour(images):
    """Eigenvalues (3,), largest first, and eigenvectors (3, 3) as columns, of the RGB covariance of all pixels."""
    ### BEGIN SOLUTION
    x = images.double() / 255.0 if images.dtype == torch.uint8 else images.double()
    pixels = x.permute(1, 0, 2, 3).reshape(3, -1)
    centred = pixels - pixels.mean(dim=1, keepdim=True)
    covariance = centred @ centred.T / pixels.shape[1]
    values, vectors = torch.linalg.eigh(covariance)  # ascending
    return values.flip(0), vectors.flip(1)
    ### END SOLUTION


def colour_shift(x, eigenvalues, eigenvectors, alphas):
    """x (N, 3, H, W) plus, for image n, eigenvectors @ (alphas[n] * eigenvalues) at every pixel."""
    ### BEGIN SOLUTION
    shift = (alphas * eigenvalues) @ eigenvectors.T  # (N, 3): row n is sum_i alpha_ni lambda_i p_i
    return x + shift[:, :, None, None]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pca-colour-basis", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The eigenvalues and eigenvectors must rebuild the covariance that numpy computes, be orthonormal and sorted.
def check_basis(images, what):
    with own_work(stage=5, what="pca_colour"):
        values, vectors = pca_colour(images)
    check_shape(values, (3,), f"the eigenvalues {what}")
    check_shape(vectors, (3, 3), f"the eigenvectors {what}")
    values, vectors = np.asarray(values, dtype=float), np.asarray(vectors, dtype=float)
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    covariance = np.cov(images.double().numpy().transpose(1, 0, 2, 3).reshape(3, -1) / scale, bias=True)
    check(bool(np.all(np.diff(values) <= 1e-15)), f"the eigenvalues are not sorted largest first {what}")
    check_close(vectors.T @ vectors, np.eye(3), f"the eigenvectors (columns) are not orthonormal {what}", tol=1e-8, atol=1e-10)
    check_close(vectors @ np.diag(values) @ vectors.T, covariance,
                f"eigenvectors @ diag(eigenvalues) @ eigenvectors.T is not the RGB covariance {what}", tol=1e-8, atol=1e-12)


check_basis(torch.from_numpy(samples.colour_photo("coffee")[::4, ::4].transpose(2, 0, 1).copy())[None],
            "of the coffee photo")
### BEGIN HIDDEN TESTS
g_basis = torch.Generator().manual_seed(80)
mixed = torch.randint(0, 256, (3, 3, 5, 4), generator=g_basis, dtype=torch.uint8)
mixed[:, 2] = (mixed[:, 0].int() // 2 + mixed[:, 2].int() // 3).to(torch.uint8)
check_basis(mixed, "of small uint8 images with correlated channels")
check_basis(torch.rand(2, 3, 2, 3, generator=g_basis).double() * 0.5, "of float images of 12 pixels")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "colour-shift", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The shift, against the formula written out one image and one component at a time.
def check_shift(seed, shape, what):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g).double()
    values = torch.rand(3, generator=g).double().sort(descending=True).values
    vectors = torch.linalg.qr(torch.randn(3, 3, generator=g).double())[0]
    alphas = 0.1 * torch.randn(shape[0], 3, generator=g).double()
    expected = x.clone()  # before the call: an answer that shifts x in place and returns it is right too
    with own_work(stage=5, what="colour_shift"):
        out = colour_shift(x, values, vectors, alphas)
    for n in range(shape[0]):
        for i in range(3):
            expected[n] += (alphas[n, i] * values[i] * vectors[:, i])[:, None, None]
    check_shape(out, tuple(shape), f"colour_shift {what}")
    check_close(out.numpy(), expected.numpy(), f"colour_shift {what}", tol=1e-10, atol=1e-12)


check_shift(90, (2, 3, 4, 4), "of a (2, 3, 4, 4) batch")
### BEGIN HIDDEN TESTS
check_shift(91, (5, 3, 3, 7), "of a (5, 3, 3, 7) batch")
check_shift(92, (1, 3, 2, 2), "of one image")
### END HIDDEN TESTS

# %% [markdown]
# The formula adds $\alpha_i \lambda_i$, which has the units of a *variance*: the size of the shift depends on the
# scale of the pixels. With pixels in $[0, 1]$, as here and in most re-implementations, the photos' largest eigenvalue
# is a few hundredths and the shifts are a percent or so of the range; with the 0-255 grey levels the formula would
# add hundreds of levels, so some implementations use $\sqrt{\lambda_i}$ instead. The augmentation explorer below
# shows the random crop, the flip and the colour shift on a photo; the sliders set the crop's position and the three
# $\alpha_i$ in units of the paper's standard deviation 0.1 (the paper's draws lie within about $\pm 3$; the sliders
# go to $\pm 10$ to make the directions visible).

# %% nbgrader={"grade": false, "grade_id": "augment-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
photo_basis = yours_or(pca_colour, augment.pca_colour_basis, "the colour basis of the photos")(crops)
shifter = yours_or(colour_shift, augment.pca_colour_shift, "the colour shifts")
print("eigenvalues of the photos' RGB covariance:", [f"{v:.4f}" for v in photo_basis[0].tolist()])
print("first eigenvector (the direction of brightness):", [f"{v:+.2f}" for v in photo_basis[1][:, 0].tolist()])
if not coursekit.under_grading():
    from coursekit.explore.nets import AugmentationExplorer

    display(AugmentationExplorer(crops[0], *photo_basis, shift=shifter, size=192))

# %% [markdown]
# ## 6. Details of learning
#
# "We trained our models using stochastic gradient descent with a batch size of 128 examples, momentum of 0.9, and
# weight decay of 0.0005 ... The update rule for weight $w$ was
#
# $$v_{i+1} := 0.9 \cdot v_i - 0.0005 \cdot \epsilon \cdot w_i - \epsilon \cdot \Big\langle \frac{\partial L}{\partial w}\Big|_{w_i}\Big\rangle_{D_i},
# \qquad w_{i+1} := w_i + v_{i+1}$$
#
# where $i$ is the iteration index, $v$ is the momentum variable, $\epsilon$ is the learning rate ... We initialized the
# weights in each layer from a zero-mean Gaussian distribution with standard deviation 0.01. We initialized the neuron
# biases in the second, fourth, and fifth convolutional layers, as well as in the fully-connected hidden layers, with
# the constant 1 ... the remaining layers with the constant 0." The learning rate started at 0.01 and was divided by 10
# three times, when the validation error stopped improving.
#
# ### Exercise 6.1 — the paper's initialisation
# Write `paper_init(model)`: in place (under `torch.no_grad()`), draw every weight of the model's `nn.Conv2d` and
# `nn.Linear` layers from $\mathcal N(0, 0.01^2)$ and set their biases as the paper says. The layers are the
# model's five `nn.Conv2d` modules, in the order `model.modules()` gives them (conv1 ... conv5), then its three
# `nn.Linear` modules (fc6, fc7, fc8). Return the model.

# %% nbgrader={"grade": false, "grade_id": "paper-init-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def paper_init(model):
    """Weights from N(0, 0.01^2); biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 elsewhere; in place."""
    ### BEGIN SOLUTION
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for index, layer in enumerate(convs + linears):
            layer.weight.normal_(0.0, 0.01)
            layer.bias.fill_(1.0 if index in (1, 3, 4, 5, 6) else 0.0)
    return model
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "paper-init-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The full AlexNet: each layer's weights have mean 0 and standard deviation 0.01, and its biases are 1 or 0.
ONES = ("conv2", "conv4", "conv5", "fc6", "fc7")


def check_init(model, what):
    with torch.no_grad():
        for layer in model.layers().values():  # start from something else, so that leaving a tensor alone fails
            layer.weight.fill_(0.5)
            layer.bias.fill_(0.5)
    with own_work(stage=5, what="paper_init"):
        paper_init(model)
    for name, layer in model.layers().items():
        w = layer.weight.detach().double()
        spread = 4 * 0.01 / w.numel() ** 0.5  # four standard errors of the sample mean
        check(abs(w.mean().item()) < spread + 1e-12, f"the mean of {name}'s weights is not about 0 {what}")
        check(abs(w.std().item() / 0.01 - 1) < 4 * (2 / w.numel()) ** 0.5 + 0.01,
              f"the standard deviation of {name}'s weights is not 0.01 {what}")
        if w.numel() >= 1000:  # Gaussian: 68.3% of the weights within one standard deviation of 0
            within = (w.abs() < 0.01).double().mean().item()
            check(abs(within - 0.6827) < 4 * (0.6827 * 0.3173 / w.numel()) ** 0.5 + 0.005,
                  f"{name}'s weights are not Gaussian: {100 * within:.1f}% lie within one standard deviation {what}")
        check(bool(torch.all(layer.bias == (1.0 if name in ONES else 0.0))), f"the biases of {name} {what}")


check_init(alexnet.AlexNet(), "in the paper's AlexNet")
### BEGIN HIDDEN TESTS
check_init(alexnet.alexnet_style(10), "in a smaller AlexNet")
check_init(alexnet.AlexNet(alexnet.Design(num_classes=3, size=64, conv1=(5, 1, 0), widths=(8, 8, 16, 16, 8), hidden=20)),
           "in a tiny AlexNet")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 6.2 — the paper's update rule
# Write `paper_sgd_step(weights, grads, velocities, lr, momentum=0.9, decay=0.0005)`: one step of the rule above for
# lists of tensors (the weights, their gradients, their momentum variables), updating `weights` and `velocities` **in
# place** (`v.mul_(...)`, `w.add_(...)`, or slice assignment: the caller keeps the same tensors from step to step).
# Return nothing.

# %% nbgrader={"grade": false, "grade_id": "paper-sgd-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def paper_sgd_step(weights, grads, velocities, lr, momentum=0.9, decay=0.0005):
    """v <- momentum v - decay lr w - lr g, then w <- w + v, for each (w, g, v), in place."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        for w, g, v in zip(weights, grads, velocities):
            v.mul_(momentum).add_(w, alpha=-decay * lr).add_(g, alpha=-lr)
            w.add_(v)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "paper-sgd-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# One step by hand; then, with a constant learning rate, the same steps as torch.optim.SGD (momentum, weight decay).
def quadratic_gradient(w):  # the gradient of a fixed quadratic loss
    return 3.0 * w - 1.0


w_hand, v_hand = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64)
with own_work(stage=5, what="paper_sgd_step"):
    paper_sgd_step([w_hand], [torch.tensor([0.2, 0.4], dtype=torch.float64)], [v_hand], lr=0.1)
check_close(v_hand.numpy(), [0.9 * 0.5 - 0.0005 * 0.1 * 1.0 - 0.1 * 0.2, 0.0 + 0.0005 * 0.1 * 2.0 - 0.1 * 0.4],
            "the velocity after one step (in place)", tol=1e-12)
check_close(w_hand.numpy(), [1.0 + 0.42995, -2.0 - 0.0399], "the weights after one step (in place)", tol=1e-12)


def check_against_torch(seed, shapes, lr, steps, what):
    g = torch.Generator().manual_seed(seed)
    start = [torch.randn(*s, generator=g).double() for s in shapes]
    mine, velocities = [w.clone() for w in start], [torch.zeros_like(w) for w in start]
    theirs = [w.clone().requires_grad_(True) for w in start]
    optimiser = torch.optim.SGD(theirs, lr=lr, momentum=0.9, weight_decay=0.0005)
    for _ in range(steps):
        with own_work(stage=5, what="paper_sgd_step"):
            paper_sgd_step(mine, [quadratic_gradient(w) for w in mine], velocities, lr)
        for w in theirs:
            w.grad = quadratic_gradient(w.detach())
        optimiser.step()
    for a, b in zip(mine, theirs):
        check_close(a.numpy(), b.detach().numpy(), f"the weights after {steps} steps {what}", tol=1e-10, atol=1e-12)


check_against_torch(100, [(3,), (2, 2)], 0.05, 10, "at a constant rate 0.05, against torch's SGD")
### BEGIN HIDDEN TESTS
check_against_torch(101, [(4, 3)], 0.2, 25, "at a constant rate 0.2, against torch's SGD")
# a rate that changes (the paper divides it by 10), other momentum and decay: the paper's equations written out
g_h = torch.Generator().manual_seed(102)
w_h = torch.randn(6, generator=g_h).double()
mine_h, vel_h = [w_h.clone()], [torch.zeros(6).double()]
w_ref, v_ref = w_h.numpy().copy(), np.zeros(6)
for eps in [0.1] * 6 + [0.01] * 6 + [0.001] * 3:
    grad_ref = 3.0 * w_ref - 1.0
    v_ref = 0.8 * v_ref - 0.01 * eps * w_ref - eps * grad_ref
    w_ref = w_ref + v_ref
    with own_work(stage=5, what="paper_sgd_step"):
        paper_sgd_step(mine_h, [quadratic_gradient(mine_h[0])], vel_h, eps, momentum=0.8, decay=0.01)
check_close(mine_h[0].numpy(), w_ref, "the weights after 15 steps with a learning rate divided by 10 twice", tol=1e-10)
check_close(vel_h[0].numpy(), v_ref, "the velocity after 15 steps with a learning rate divided by 10 twice", tol=1e-10, atol=1e-14)
### END HIDDEN TESTS

# %% [markdown]
# **Where the two rules differ.** torch's SGD keeps $u \leftarrow 0.9u + g + 0.0005w$ and steps $w \leftarrow w - \epsilon u$:
# with a constant $\epsilon$, $v = -\epsilon u$ and the two take exactly the same steps. When the learning rate is divided
# by 10, the paper's velocity still holds the earlier steps at the old rate and keeps moving for a while, while torch
# multiplies its whole accumulated momentum by the new rate at once. On a quadratic loss, from the same start:

# %% nbgrader={"grade": false, "grade_id": "update-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
with demo("the update-rule comparison"):
    rates = [0.05] * 30 + [0.005] * 30
    w_paper, v_paper = [torch.tensor([4.0], dtype=torch.float64)], [torch.zeros(1).double()]
    w_torch = torch.tensor([4.0], dtype=torch.float64).requires_grad_(True)
    sgd = torch.optim.SGD([w_torch], lr=rates[0], momentum=0.9, weight_decay=0.0005)
    path_paper, path_torch = [], []
    for eps in rates:
        paper_sgd_step(w_paper, [quadratic_gradient(w_paper[0])], v_paper, eps)
        sgd.param_groups[0]["lr"] = eps
        w_torch.grad = quadratic_gradient(w_torch.detach())
        sgd.step()
        path_paper.append(w_paper[0].item())
        path_torch.append(w_torch.item())
    fig, (ax,) = plots.new_figure(1, width=6.5, height=3.2)
    ax.plot(path_paper, label="the paper's rule")
    ax.plot(path_torch, "--", label="torch.optim.SGD")
    ax.axvline(29.5, color="gray", lw=0.8)
    ax.axhline(1 / 3, color="gray", lw=0.5)
    ax.set(xlabel="step (the rate is divided by 10 after step 30)", ylabel="w", title="the same start, the same rates")
    ax.legend()
    plots.show(fig)
    print(f"largest gap before the change {max(abs(a - b) for a, b in zip(path_paper[:30], path_torch[:30])):.1e}, "
          f"after it {max(abs(a - b) for a, b in zip(path_paper[30:], path_torch[30:])):.1e}")

# %% [markdown]
# ## 7. Training an AlexNet on real images, offline
#
# Without ImageNet, we train on a task that needs no labels (exemplar training, Dosovitskiy et al. 2014): pick
# patches of the photos that ship with scikit-image, each from a photo rescaled to a short side of 256 pixels
# ($64\times64$ windows with the most gradient energy, since flat sky teaches nothing); each patch is one surrogate
# class, whose examples are its augmented views. The network must recognise which patch a view comes from,
# which it can only do with features that survive crops, reflections and colour changes. The network is
# `alexnet.alexnet_style`: the paper's design at a smaller size ($56\times56$ crops of the $64\times64$ patches, as 224
# of 256; conv1 48 kernels $11\times11\times3$ with stride 2; the other widths halved; 1024 hidden units; LRN and
# dropout), trained with the paper's update rule (`alexnet.PaperSGD`) at $\epsilon = 0.01$, momentum 0.9 and weight
# decay 0.0005, on the paper's pixels (grey levels 0-255 minus the mean pixel), with random crops, flips and the PCA
# colour shift, batched on the device (`augment.PaperAugment`). The test views are new: each patch cut again from its
# photo, moved by up to 8 pixels, so that new pixels come in at the borders; they are classified from the centre crop
# and from the average of the ten crops.
#
# One change from the paper: its initialisation $\mathcal N(0, 0.01^2)$ does not start learning at this size within
# our budget (the signal shrinks through the layers: the cell below shows it on the first steps), so the network
# starts from torch's default initialisation: uniform with bound $1/\sqrt{\text{fan-in}}$, a standard deviation of
# 0.01-0.03 in our layers (conv1: 0.030; conv3: 0.017; fc6: 0.026), larger than the paper's 0.01 in most of them,
# which compounds over eight layers. And the learning rate follows a half cosine
# down to 0 instead of being divided by 10 by hand.

# %% nbgrader={"grade": false, "grade_id": "exemplar-train", "locked": true, "schema_version": 3, "solution": false, "task": false}
CLASSES = BUDGET.pick(full=128, fast=32)
VIEWS = BUDGET.pick(full=32, fast=8)  # copies of each patch per epoch, each augmented differently
EPOCHS = BUDGET.pick(full=15, fast=2)
patches_np, patch_sources = samples.exemplar_patches(CLASSES, size=64, seed=0)
patches = torch.from_numpy(patches_np).to(DEVICE)
held_out = torch.from_numpy(samples.exemplar_views(patch_sources, size=64, shift=8, seed=1)).to(DEVICE)
labels = torch.arange(CLASSES, device=DEVICE)
eigenvalues, eigenvectors = augment.pca_colour_basis(patches)
mean_pixel = (patches.double() / 255).mean((0, 2, 3)).float()
AUGMENT = augment.PaperAugment(56, eigenvalues.float(), eigenvectors.float(), mean_pixel, scale=255.0)


def paper_pixels(x):
    """uint8 -> the network's input: grey levels minus the mean pixel."""
    return (x.float() / 255 - mean_pixel.reshape(1, 3, 1, 1)) * 255


def centre_accuracy(model, x, y):
    return training.accuracy(model, augment.centre_crop(x, 56), y, transform=paper_pixels)


def exemplar_fit(model, epochs, views=VIEWS, seed=0, quiet=False, schedule="cosine"):
    return training.fit(
        model, patches.repeat(views, 1, 1, 1), labels.repeat(views), epochs=epochs, batch_size=128,
        optimizer=lambda ps: alexnet.PaperSGD(ps, lr=0.01), transform=lambda x: x.float() / 255, augment=AUGMENT,
        metric=centre_accuracy, test=(held_out, labels), seed=seed, description="AlexNet-style", quiet=quiet,
        schedule=schedule,
    )


torch.manual_seed(0)
exemplar_net = alexnet.alexnet_style(CLASSES).to(DEVICE)
conv1_start = exemplar_net.layers()["conv1"].weight.detach().clone()  # to see what training changed
exemplar_history = exemplar_fit(exemplar_net, EPOCHS)
ten_crop_probs = augment.ten_crop_probabilities(exemplar_net, paper_pixels(held_out), 56)
ten_crop_accuracy = (ten_crop_probs.argmax(1) == labels).float().mean().item()
print(f"{CLASSES} surrogate classes, {EPOCHS} epochs of {CLASSES * VIEWS} views "
      f"({sum(exemplar_history.seconds):.0f} s on {DEVICE}); held-out views recognised: "
      f"{100 * exemplar_history.test_accuracy[-1]:.1f}% from the centre crop, {100 * ten_crop_accuracy:.1f}% from ten crops "
      f"(chance: {100 / CLASSES:.1f}%)")

# %% [markdown]
# The paper's initialisation on the first steps, against the default one (the same data, seed and update rule, at a
# constant rate 0.01; three epochs in the full budget, one in the fast one, whose 2 steps are too few to show it):

# %% nbgrader={"grade": false, "grade_id": "init-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
init_runs = {}
for name, init in (("N(0, 0.01^2), the paper's", yours_or(paper_init, alexnet.paper_init_, "the paper's initialisation")),
                   ("torch's default", lambda m: m)):
    torch.manual_seed(1)
    model = init(alexnet.alexnet_style(CLASSES)).to(DEVICE)
    init_runs[name] = exemplar_fit(model, BUDGET.pick(full=3, fast=1), quiet=True, schedule="constant")
for name, run in init_runs.items():
    print(f"{name:>28}: training loss per epoch {[round(v, 3) for v in run.train_loss]} "
          f"(chance: ln {CLASSES} = {np.log(CLASSES):.3f}); held-out views recognised {100 * run.test_accuracy[-1]:.1f}%")

# %% [markdown]
# **Learned layer-1 kernels.** The paper's Figure 3 shows the 96 kernels $11\times11\times3$ of conv1, the 48 of GPU 1
# above those of GPU 2: "the kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2 are largely
# color-specific", a specialisation that comes from the restricted connectivity (conv2 sees only its own tower's
# maps). Ours are drawn the same way (each kernel stretched to the full range on its own), tower 1 above tower 2.
# The paper trained for 90 epochs of 1.2M images, with a weight decay that wore away the random start; we train for
# minutes, and our kernels are still mostly their random start (torch's default initialisation, which is larger
# than the paper's). What training *added* to them, $W - W_0$, shows what was learned: in the full budget
# (15 epochs of 128 classes: 70% of the held-out views recognised from the centre crop, 75% from ten crops; 5 minutes
# on one core of a 2-core CPU) smooth colour blobs and light-dark patterns of low frequency, but hardly any of the
# paper's sharp oriented edges and gratings, which need far more data and training (and the towers do not split
# into colour-agnostic and colour-specific ones); in the fast budget, two short epochs, a faint start of that. Next to them, the first layer of the trained ImageNet network:
# 32 kernels of only $3\times3\times3$, since modern networks start with small kernels and build large receptive
# fields by depth.

# %% nbgrader={"grade": false, "grade_id": "kernels-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
kernels = exemplar_net.layers()["conv1"].weight.detach().cpu()
learned = kernels - conv1_start.cpu()
half = len(kernels) // 2
for title, k in (("our conv1 after training", kernels), ("what training added to it, W - W0", learned)):
    plots.show(plots.colour_grid(k, ncols=half, size=0.55, normalise=True,
                                 suptitle=f"{title}: {len(k)} kernels 11x11x3, tower 1 (top) and tower 2 (bottom)"))


def colourfulness(k):
    """How much a kernel differs between colour channels, relative to its size."""
    return ((k - k.mean(0, keepdim=True)).norm() / k.norm()).item()


print(f"size of the change relative to the start: {(learned.norm() / conv1_start.norm()).item():.2f}")
for tower, part in (("tower 1", learned[:half]), ("tower 2", learned[half:])):
    print(f"{tower}: mean colourfulness of the change {np.mean([colourfulness(k) for k in part]):.2f} "
          "(0: the same pattern in R, G and B)")
stem = net.stem.conv.weight.detach().cpu()
plots.show(plots.colour_grid(stem, ncols=16, size=0.55, normalise=True,
                             suptitle="EfficientNet-Lite0's first layer: 32 kernels 3x3x3, trained on ImageNet"))

# %% [markdown]
# ## 8. Visualising intermediate layers
#
# Zeiler & Fergus (2014), Fig. 2: for a feature map of a trained network, the nine image patches that activate it most
# over a set of images. Each unit of a feature map sees a square of input pixels, its **receptive field**; neighbouring
# units are a **stride** apart. For a stack of layers with kernels $k_l$ and strides $s_l$, starting from one pixel
# ($r_0 = j_0 = 1$):
#
# $$r_l = r_{l-1} + (k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l$$
#
# (a unit of layer $l$ sees $k_l$ units of layer $l-1$, which are $j_{l-1}$ input pixels apart).
#
# ### Exercise 8.1 — receptive fields
# Write `receptive_fields(layers)`: for a list of `(kernel, stride)` pairs (convolutions or poolings, in order), the
# list of `(receptive_field, stride)` in input pixels after each layer. Padding does not change them.

# %% nbgrader={"grade": false, "grade_id": "receptive-fields-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def receptive_fields(layers):
    """[(r_1, j_1), (r_2, j_2), ...] for layers [(k_1, s_1), (k_2, s_2), ...]."""
    ### BEGIN SOLUTION
    r, j, out = 1, 1, []
    for k, s in layers:
        r = r + (k - 1) * j
        j = j * s
        out.append((r, j))
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "receptive-fields-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# AlexNet's layers conv1 ... pool5; then random stacks, against the input pixels autograd says one unit depends on.
ALEXNET_STACK = [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)]
with own_work(stage=5, what="receptive_fields"):
    alexnet_fields = receptive_fields(ALEXNET_STACK)
check(len(alexnet_fields) == 8, "receptive_fields should give one (size, stride) per layer")
check([tuple(f) for f in alexnet_fields] == [(11, 4), (19, 8), (51, 8), (67, 16), (99, 16), (131, 16), (163, 16), (195, 32)],
      "AlexNet's receptive fields and strides")
### BEGIN HIDDEN TESTS
def fields_by_autograd(stack):
    found, size = [], 1
    for k, s in stack:
        size = size * s + (k - s)
    size += 4 * max(s for _, s in stack) * 4
    for depth in range(1, len(stack) + 1):
        rows = []
        for unit in (0, 1):
            x = torch.zeros(1, 1, size, 1, requires_grad=True)
            y = x
            for k, s in stack[:depth]:
                y = nn.functional.conv2d(y, torch.ones(1, 1, k, 1), stride=(s, 1))
            y[0, 0, unit, 0].backward()
            rows.append(torch.nonzero(x.grad[0, 0, :, 0]).flatten())
        found.append((int(rows[0].max() - rows[0].min() + 1), int(rows[1].min() - rows[0].min())))
    return found


for stack_h in ([(3, 1), (3, 1), (2, 2), (3, 1), (2, 2), (3, 1)], [(7, 2), (3, 2), (1, 1), (5, 3)], [(4, 4), (2, 1), (3, 2)]):
    with own_work(stage=5, what="receptive_fields"):
        found_h = receptive_fields(stack_h)
    check([tuple(f) for f in found_h] == fields_by_autograd(stack_h), f"receptive_fields({stack_h})")
### END HIDDEN TESTS

# %% [markdown]
# AlexNet's conv5 units see $163\times163$ pixels of the $224\times224$ input, 16 pixels apart. The ImageNet network we
# look into is deeper: its receptive fields, computed the same way from its layers (`pretrained.FEATURE_LAYERS`), grow
# past the image itself (a unit there still sees mostly its centre: the effective field is much smaller).

# %% nbgrader={"grade": false, "grade_id": "fields-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
fields_now = yours_or(receptive_fields, alexnet.receptive_fields, "AlexNet's receptive fields")(ALEXNET_STACK)
names = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"]
print("AlexNet:         " + ", ".join(f"{n} {r}/{j}" for n, (r, j) in zip(names, fields_now)))
print("EfficientNet-Lite0 (receptive field / stride, channels, map at 224):")
for layer in pretrained.FEATURE_LAYERS.values():
    print(f"  {layer.name:>7}: {layer.receptive_field:>4} / {layer.stride:<3} {layer.channels:>5} channels, "
          f"{layer.spatial_size()}x{layer.spatial_size()}")

# %% [markdown]
# The top nine patches of a few feature maps of three layers of the trained ImageNet network, over our photo crops
# (each patch is the unit's receptive field, clipped to the crop; the full budget uses more crops). The early layer
# responds to colours and edges, the middle one to textures and parts, the late one to larger structures. The layer
# explorer lets you pick the layer and the channel, and shows the channel's feature map on one crop.

# %% nbgrader={"grade": false, "grade_id": "top-patches-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
SHOWN = ("block2", "block4", "block6")
with torch.no_grad():
    maps = {}
    for i in range(0, len(crops), 16):
        for name, m in net.feature_maps(pretrained.preprocess(crops[i:i + 16]), SHOWN).items():
            maps.setdefault(name, []).append(m)
    maps = {name: torch.cat(m) for name, m in maps.items()}
for name in SHOWN:
    layer = pretrained.FEATURE_LAYERS[name]
    strongest = maps[name].amax((0, 2, 3)).argsort(descending=True)[:3].tolist()  # the most active channels
    row = [p for c in strongest for p in inspect.top_patches(crops, maps[name], c, layer.receptive_field, layer.stride)]
    plots.show(plots.colour_grid(row, ncols=9, size=0.8,
                                 suptitle=f"{name} (receptive field {layer.receptive_field}): channels {strongest}, top 9 each"))
if not coursekit.under_grading():
    from coursekit.explore.nets import LayerExplorer

    display(LayerExplorer(net, crops, layers=("stem", "block2", "block3", "block4", "block6"), maps=maps))

# %% [markdown]
# ## 9. Ranking by CNN features
#
# The lecture's last AlexNet slide: "use the last fully-connected layer features". Images whose activations in the
# last hidden layer are close look alike to the network, whatever their pixels: the idea of stage 07's neural codes
# for image retrieval. Here, each crop's 1280 pooled features of the ImageNet network (its last hidden layer) and
# the five crops most similar to it by the cosine of their features:

# %% nbgrader={"grade": false, "grade_id": "neighbours-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
with torch.no_grad():
    codes = torch.cat([net.pool(net.features(pretrained.preprocess(crops[i:i + 16]))) for i in range(0, len(crops), 16)])
queries = [0, 2 * PER_PHOTO, 6 * PER_PHOTO + 1]
neighbours = inspect.nearest_neighbours(codes, queries, k=5)
for q, row in zip(queries, neighbours.tolist()):
    plots.show(plots.colour_grid([crops[q]] + [crops[i] for i in row],
                                 ["query: " + crop_sources[q][0]] + [crop_sources[i][0] for i in row], ncols=6, size=1.3))

# %% [markdown] nbgrader={"grade": true, "grade_id": "two-gpus-question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Question (2 points).** Why did the paper split the network over two GPUs, and what does the split cost? Consider
# memory, the parameters and computation of each part, what the towers exchange and when, and what the restricted
# connectivity does to what conv2, conv4 and conv5 can compute (and to the kernels of Figure 3).
#
# ### BEGIN SOLUTION
# A GTX 580 had 3 GB of memory, too little for the 60M parameters (240 MB in float32, plus their gradients and
# momentum) *and* the activations of a batch of 128 images through all layers, which dominate: the conv1 and conv2
# maps alone are about 0.5M values per image. Splitting every layer's kernels and units in two halves the memory and
# the computation per GPU, and the two GPUs could read each other's memory directly, without the host.
#
# The cost: the towers must synchronise and exchange activations at every layer where they communicate (conv3, fc6,
# fc7, fc8), and the gradients back, on every step: conv3 reads the other tower's pooled conv2 maps
# ($13\times13\times128$ values per image, cheaper than the $27\times27\times128$ before pooling), and each FC layer
# reads the other tower's activations. To keep that traffic
# small, conv2, conv4 and conv5 read only their own tower's maps: a grouped convolution, which has half the
# parameters and computation of a full one, but cannot combine features from the other half. The network is then
# not the one that would be trained with full connectivity: the two towers specialise (in Figure 3 one tower's
# kernels are colour-agnostic, the other's colour-specific), and the split is an architectural choice that the
# paper tuned ("choosing the pattern of connectivity is a problem for cross-validation"); it reports that the two-GPU net has 1.7%
# lower top-1 error than a one-GPU net with half the kernels in each convolutional layer. Today one GPU holds the
# whole network, and the split survives as `groups=2` (and, at larger scale, as model parallelism).
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# - AlexNet is LeNet-5's design at ImageNet scale: five convolutions and three fully connected layers, 61M parameters
#   (most of them in fc6), 224x224x3 inputs; every map size follows from $\lfloor (n+2p-k)/s \rfloor + 1$, and the caption's
#   first neuron count does not.
# - Its ingredients: ReLU (several times faster than tanh in the paper; not on our small network), local response
#   normalisation, overlapping pooling, dropout (the paper's form and torch's inverted form have the same expectations), random crops and reflections, ten-crop
#   testing, the PCA colour shift, SGD with momentum and weight decay (the paper's rule equals torch's only at a
#   constant rate), and an initialisation that at our size is too small to start learning.
# - In `coursekit`: `coursekit.nets.alexnet` (`AlexNet` with `groups=2`, `TwoTowerAlexNet` on one or two devices,
#   `alexnet_style`, `local_response_norm`, `paper_dropout`, `paper_init_`, `PaperSGD`, `receptive_fields`),
#   `coursekit.nets.augment` (`ten_crops`, `ten_crop_probabilities`, `pca_colour_basis`, `pca_colour_shift`,
#   `PaperAugment`: all batched on the device), `coursekit.nets.pretrained` (EfficientNet-Lite0 with its ImageNet
#   weights, offline), `coursekit.nets.inspect` (top patches, nearest neighbours), `coursekit.data.samples`
#   (`exemplar_patches`, `photo_crops`) and the `AugmentationExplorer` and `LayerExplorer` widgets.
# - Next, stage 06: siamese networks, which learn the feature space itself from pairs of similar and dissimilar images.
