# ---
# jupyter:
#   coursekit:
#     full_budget_on_cpu: false
# ---

# %% [markdown]
# # Stage 04 — MNIST: fully connected versus convolutional
#
# *Deep learning for vision*, lecture slides "MNIST digits dataset", "fully connected layers", "shuffling the
# dimensions", "convolution" and "LeNet-5" (LeCun, Bottou, Bengio, Haffner, *Gradient-based learning applied to
# document recognition*, Proc. IEEE 1998).
#
# MNIST: 10 classes, 60k training images, 10k test images, $28 \times 28$ grey levels. The lecture's claims:
#
# - a two-layer fully connected network "can easily learn to classify MNIST digits (less than 3% error), but learns
#   more than actually required";
# - convolution brings "sparser connections between units, local receptive fields, translation equivariance, shared
#   weights and less parameters to learn": a convolutional network performs better (less than 1% error), "but not on
#   shuffled digits".
#
# **You will**
# 1. measure the data (pixel statistics) and read a classifier's errors from a confusion matrix;
# 2. train a fully connected net on the real MNIST, on the device `coursekit` picks, then build a CNN in torch and
#    train it too;
# 3. shuffle the pixels with one fixed permutation and see which network cares;
# 4. compute LeNet-5's feature-map shapes and parameter counts, check them against the paper, write its
#    sub-sampling layer, train it and look
#    at what it learned and where it fails.
#
# A test cell that passes prints nothing. *Run All* stops at the first failing test: until your answers are done,
# run the cells one by one. While your code is graded, coursekit's reference pieces of this stage are switched off
# (earlier stages' pieces, which you wrote, are yours to use; stage 03's layers are off for exercise 5.1).
# The training cells read the run budget: the **full** budget (the default) trains on all 60k images, which takes
# a few minutes on a laptop CPU and seconds on a GPU; the **fast** budget (autograding, CI, or
# `COURSEKIT_BUDGET=fast`) trains on 6k images for 2 epochs: the errors are then several times the lecture's
# figures (5-10% rather than 1-3%), but the comparisons the lecture makes still hold, and a cell checks them.
#
# **Only the answer cells are graded: put all your code in them** (cells you add are dropped when your notebook
# is graded).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch

import coursekit
from coursekit.explore import plots
from coursekit.nets import models, training
from coursekit.data import load_mnist
from coursekit.grading import check, check_close, check_shape, own_work, yours_or
from coursekit.data import transforms

BUDGET = coursekit.budget()
DEVICE = coursekit.device()
coursekit.seed_everything(0)
# While your answers are graded, coursekit's pieces of this stage (and later ones) are switched off.
# Running layers (torch's, or stage 03's) to read off their output shapes is not computing them:
# switched off for 5.1.
LAYERS = [
    "coursekit.convolution.layer",
    "torch.nn.functional.conv2d",
    "torch.nn.functional.avg_pool2d",
    "torch.nn.functional.max_pool2d",
    "torch.conv2d",
]

mnist = load_mnist(DEVICE)  # uint8 images (N, 28, 28) and int64 labels, resident on DEVICE
TRAIN = BUDGET.pick(full=60_000, fast=6_000)  # training images used
EPOCHS = {
    "FC": BUDGET.pick(full=10, fast=2),
    "CNN": BUDGET.pick(full=5, fast=2),
    "LeNet-5": BUDGET.pick(full=6, fast=2),
}
train_images, train_labels = mnist.train_images[:TRAIN], mnist.train_labels[:TRAIN]
test_images, test_labels = mnist.test_images, mnist.test_labels
print(f"{BUDGET}; device {DEVICE}; {len(train_images)} training and {len(test_images)} test images")

# %% [markdown]
# ## 1. Look at the data
#
# Each image is a $28 \times 28$ array of grey levels in $0..255$ (stored as `uint8`: four times smaller than
# floats, so the whole set stays on the GPU); the digit is white on black and roughly centred.

# %% nbgrader={"grade": false, "grade_id": "data-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
first = torch.cat([torch.nonzero(train_labels == k).flatten()[:3] for k in range(10)])
plots.show(
    plots.image_grid(
        train_images[first], [f"label {int(train_labels[i])}" for i in first], ncols=10
    )
)
counts = torch.bincount(mnist.train_labels, minlength=10).tolist()
print("images per class in the 60k training set:", dict(enumerate(counts)))

# %% [markdown]
# ### Exercise 1.1 — pixel statistics
# Networks train better on inputs centred near 0 with unit spread, so the loader normalises every pixel as
# $(x/255 - \mu)/\sigma$. Write `pixel_statistics(images)`: the mean $\mu$ and the standard deviation $\sigma$ of all
# the pixels of all the images, as grey levels scaled to $[0, 1]$, returned as two Python floats. Use the population
# standard deviation (divide by the number of pixels). Mind the `uint8` type: it wraps around at 256.


# %% nbgrader={"grade": false, "grade_id": "pixel-statistics-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pixel_statistics(images):
    """Mean and standard deviation of every pixel of uint8 images (N, H, W), scaled to [0, 1]."""
    ### BEGIN SOLUTION
    x = images.float() / 255.0
    mean = x.mean()
    return float(mean), float((x - mean).square().mean().sqrt())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pixel-statistics-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A hand-computed case: half the pixels 0, half 255 -> mean 0.5, standard deviation 0.5. Then the values every
# MNIST loader uses, 0.1307 and 0.3081, measured on the 60k training images (to 5e-4).
with own_work(stage=4, what="pixel_statistics"):
    hand = pixel_statistics(
        torch.tensor([[[0, 255], [255, 0]], [[255, 0], [0, 255]]], dtype=torch.uint8)
    )
    mnist_stats = pixel_statistics(mnist.train_images)
check(
    len(hand) == 2 and all(isinstance(v, float) for v in hand),
    "pixel_statistics must return two Python floats",
)
check_close(
    np.array(hand),
    [0.5, 0.5],
    "mean and standard deviation of a half-black, half-white set",
    tol=1e-9,
)
check(
    abs(mnist_stats[0] - 0.1307) < 5e-4, "the mean of the MNIST training pixels is not about 0.1307"
)
check(
    abs(mnist_stats[1] - 0.3081) < 5e-4,
    "the standard deviation of the MNIST training pixels is not about 0.3081",
)
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(401)
for shape in ((3, 5, 7), (1, 28, 28), (50, 4, 4)):
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    with own_work(stage=4, what="pixel_statistics"):
        found = pixel_statistics(torch.from_numpy(pixels))
    check_close(
        np.array(found),
        [np.mean(pixels / 255.0), np.std(pixels / 255.0)],
        f"mean and standard deviation of random uint8 images {shape}",
        tol=1e-5,
    )
### END HIDDEN TESTS

# %% [markdown]
# ## 2. A fully connected network
#
# The two-layer net of stage 01 on the 784 pixels: `784 -> 100 (ReLU) -> 10`, trained with
# `coursekit.nets.training.fit` (Adam, mini-batches of 128, the data kept on the device, bfloat16 on a GPU).


# %% nbgrader={"grade": false, "grade_id": "fc-train", "locked": true, "schema_version": 3, "solution": false, "task": false}
def train(make, name, images, test, seed):
    """A fresh net from make() (seeded), trained for EPOCHS[name] epochs; prints its test error."""
    torch.manual_seed(seed)
    net = make()
    history = training.fit(
        net,
        images,
        train_labels,
        epochs=EPOCHS[name],
        batch_size=128,
        lr=3e-3,
        test=test,
        seed=seed,
        description=name,
    )
    error = 100 * (1 - history.test_accuracy[-1])
    print(
        f"{name}: {models.parameter_count(net):,} parameters; test error {error:.2f}% after "
        f"{len(history.test_accuracy)} epochs on {len(images):,} images ({sum(history.seconds):.1f} s)"
    )
    return net, history


fc, fc_history = train(models.fc_net, "FC", train_images, (test_images, test_labels), seed=1)
fc_predicted = training.predict(fc, test_images)

# %% [markdown]
# ### Exercise 2.1 — the confusion matrix
# Accuracy is one number; the **confusion matrix** says which digits are taken for which. Write
# `confusion_matrix(predicted, labels, num_classes=10)`: an `int64` tensor `C` of shape `(num_classes, num_classes)`
# where `C[i, j]` counts the examples of **true** class `i` **predicted** as class `j` (rows: truth). Classes that
# never occur still get their row and column. A Python loop over 10,000 examples works but is slow;
# `torch.bincount` on a single index per (true, predicted) pair does it in one pass.


# %% nbgrader={"grade": false, "grade_id": "confusion-matrix-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def confusion_matrix(predicted, labels, num_classes=10):
    """C[i, j] = number of examples with true class i predicted as j."""
    ### BEGIN SOLUTION
    pairs = labels.long() * num_classes + predicted.long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "confusion-matrix-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A hand-computed case: truths (0, 0, 1, 2, 2, 2), predictions (0, 1, 1, 2, 0, 2), three classes.
with own_work(stage=4, what="confusion_matrix"):
    C_hand = confusion_matrix(
        torch.tensor([0, 1, 1, 2, 0, 2]), torch.tensor([0, 0, 1, 2, 2, 2]), num_classes=3
    )
check_shape(C_hand, (3, 3), "confusion_matrix of three classes")
check(C_hand.dtype == torch.int64, "the confusion matrix must hold int64 counts")
check(
    torch.equal(C_hand, torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])),
    "confusion_matrix of the hand-computed case (rows are the true classes)",
)
### BEGIN HIDDEN TESTS
generator_c = torch.Generator().manual_seed(41)
truths_c = torch.randint(0, 5, (40,), generator=generator_c)
predictions_c = torch.randint(0, 5, (40,), generator=generator_c)
with own_work(stage=4, what="confusion_matrix"):
    C_random = confusion_matrix(predictions_c, truths_c, num_classes=5)
expected_c = torch.bincount(truths_c * 5 + predictions_c, minlength=25).reshape(5, 5)
check(torch.equal(torch.as_tensor(C_random).cpu().long(), expected_c), "confusion_matrix of 40 random labels in 5 classes")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "confusion-matrix-properties", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Properties on the FC net's test predictions: rows sum to the class sizes, the trace counts the correct ones;
# a class that never occurs still has a row.
with own_work(stage=4, what="confusion_matrix"):
    C_fc = confusion_matrix(fc_predicted, test_labels)
    C_absent = confusion_matrix(torch.tensor([1, 1]), torch.tensor([1, 1]), num_classes=4)
check_shape(C_fc, (10, 10), "confusion_matrix of the test predictions")
check_shape(C_absent, (4, 4), "confusion_matrix of 4 classes of which only class 1 occurs")
check(
    torch.equal(C_fc.sum(dim=1).cpu(), torch.bincount(test_labels.cpu(), minlength=10)),
    "the rows of the confusion matrix do not sum to the number of test images of each class",
)
check(
    int(C_fc.trace()) == int((fc_predicted == test_labels).sum()),
    "the diagonal of the confusion matrix does not count the correct predictions",
)
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(402)
for k, n in ((10, 1000), (7, 1), (3, 0)):
    truth, guess = torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (n,), generator=g)
    brute = torch.zeros(k, k, dtype=torch.int64)
    for t_i, p_i in zip(truth.tolist(), guess.tolist()):
        brute[t_i, p_i] += 1
    with own_work(stage=4, what="confusion_matrix"):
        C_random = confusion_matrix(guess, truth, num_classes=k)
    check(
        torch.equal(C_random.cpu(), brute),
        f"confusion_matrix of {n} random predictions in {k} classes",
    )
### END HIDDEN TESTS

# %% [markdown]
# Where does the fully connected net go wrong? The matrix colours the errors only (the diagonal would swamp the
# scale); below it, test digits the net gets wrong, titled *true → predicted*.


# %% nbgrader={"grade": false, "grade_id": "fc-errors-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
# your confusion_matrix; coursekit's until you have written it
confusion = yours_or(confusion_matrix, training.confusion_matrix, "the confusion matrices below")


def show_errors(predicted, title, count=20):
    fig, (ax,) = plots.new_figure(width=5.0, height=4.6)
    plots.plot_confusion(ax, confusion(predicted, test_labels), title=f"{title}: confusion matrix")
    plots.show(fig)
    wrong = torch.nonzero(predicted != test_labels).flatten()[:count]
    plots.show(
        plots.image_grid(
            test_images[wrong],
            [f"{int(test_labels[i])} → {int(predicted[i])}" for i in wrong],
            suptitle=f"{title}: misclassified test digits",
        )
    )


show_errors(fc_predicted, "FC")

# %% [markdown]
# ## 3. A convolutional network
#
# Two $3\times3$ convolution layers (16 and 32 filters), each followed by ReLU and $2\times2$ max pooling, and one
# linear layer: local receptive fields, shared weights, and a quarter of the FC net's parameters. You build it.
#
# ### Exercise 3.1 — build the CNN
# Write `make_cnn()`, returning a **new** torch `nn.Module` (untrained) that maps a batch of normalised images
# `(N, 1, 28, 28)` to class activations `(N, 10)`:
#
# | layer | output |
# |---|---|
# | convolution $3\times3$, 1 → 16 maps, padding 1 (so the size stays), with biases; ReLU | 16@28x28 |
# | max pooling $2\times2$, stride 2 | 16@14x14 |
# | convolution $3\times3$, 16 → 32 maps, padding 1, with biases; ReLU | 32@14x14 |
# | max pooling $2\times2$, stride 2 | 32@7x7 |
# | flatten (torch's order: map, row, column) and a linear layer $1568 \to 10$ | 10 |
#
# Use `torch.nn`'s layers (`nn.Sequential(nn.Conv2d(...), nn.ReLU(), ...)` is the shortest way; a module class of
# your own with a `forward` works too). The tests count its parameters, run it with weights of their own against
# the same computation written with `torch.nn.functional`, and train it briefly. (coursekit's `models.small_cnn`
# is switched off while this is graded.)

# %% nbgrader={"grade": false, "grade_id": "make-cnn-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_cnn():
    """A new, untrained CNN: (N, 1, 28, 28) normalised images -> (N, 10) class activations."""
    ### BEGIN SOLUTION
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),
    )
    ### END SOLUTION


# %% [markdown]
# The tests find the network's weights by their shapes and compute what the network must compute with them:

# %% nbgrader={"grade": false, "grade_id": "cnn-oracle", "locked": true, "schema_version": 3, "solution": false, "task": false}
CNN_SHAPES = {"conv1 weight": (16, 1, 3, 3), "conv1 bias": (16,), "conv2 weight": (32, 16, 3, 3), "conv2 bias": (32,),
              "linear weight": (10, 32 * 7 * 7), "linear bias": (10,)}


def cnn_weights(net):
    """The network's parameters by name, found by their shapes (each shape occurs once in the architecture)."""
    by_shape = {}
    for p in net.parameters():
        by_shape.setdefault(tuple(p.shape), []).append(p)
    found = {tuple(shape): len(by_shape.get(tuple(shape), [])) for shape in CNN_SHAPES.values()}
    check(sorted(by_shape) == sorted(CNN_SHAPES.values()) and all(n == 1 for n in found.values()),
          f"the network's parameters have the shapes {sorted(by_shape)}; the architecture has one each of "
          f"{sorted(CNN_SHAPES.values())}")
    return {name: by_shape[shape][0] for name, shape in CNN_SHAPES.items()}


def set_random_weights(net, seed):
    """Give every parameter of the network random values (seeded); return them by name."""
    g = torch.Generator().manual_seed(seed)
    weights = cnn_weights(net)
    with torch.no_grad():
        for p in weights.values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return {name: p.detach().clone() for name, p in weights.items()}


def cnn_oracle(x, w):
    """The architecture of Exercise 3.1 written with torch.nn.functional."""
    F = torch.nn.functional
    x = F.max_pool2d(F.relu(F.conv2d(x, w["conv1 weight"], w["conv1 bias"], padding=1)), 2)
    x = F.max_pool2d(F.relu(F.conv2d(x, w["conv2 weight"], w["conv2 bias"], padding=1)), 2)
    return F.linear(x.flatten(1), w["linear weight"], w["linear bias"])


# %% nbgrader={"grade": true, "grade_id": "cnn-parameters", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The output shape, and the parameters: (1*9 + 1)*16 + (16*9 + 1)*32 + (32*7*7 + 1)*10 = 20,490 of them.
with own_work(stage=4, what="make_cnn"):
    net_p = make_cnn()
    out_p = net_p(torch.zeros(5, 1, 28, 28))
check(isinstance(net_p, torch.nn.Module), f"make_cnn should return a torch nn.Module, not a {type(net_p).__name__}")
check_shape(out_p, (5, 10), "the output of the network for 5 images")
cnn_weights(net_p)
check(sum(p.numel() for p in net_p.parameters()) == (1 * 9 + 1) * 16 + (16 * 9 + 1) * 32 + (32 * 7 * 7 + 1) * 10,
      "the network does not have the 20,490 parameters of the architecture")
### BEGIN HIDDEN TESTS
with own_work(stage=4, what="make_cnn"):
    net_q = make_cnn()
    out_single, out_seven = net_q(torch.randn(1, 1, 28, 28)), net_q(torch.randn(7, 1, 28, 28))
check_shape(out_single, (1, 10), "the output of the network for 1 image")
check_shape(out_seven, (7, 10), "the output of the network for 7 images")
check(net_q is not net_p and not {id(p) for p in net_q.parameters()} & {id(p) for p in net_p.parameters()},
      "make_cnn should build a new network on every call (each training run starts from its own)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "cnn-function", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# With weights set by the test, the network computes what the architecture says (to float32 precision).
x_f = training.prepare(test_images[:4].cpu())
with own_work(stage=4, what="make_cnn"):
    net_f = make_cnn()
w_f = set_random_weights(net_f, 0)
with own_work(stage=4, what="the network of make_cnn"), torch.no_grad():
    out_f = net_f(x_f)
check_close(out_f.numpy(), cnn_oracle(x_f, w_f).numpy(), "the network's output for 4 test digits", tol=1e-4, atol=1e-4)
### BEGIN HIDDEN TESTS
for seed_f in (5, 6):
    x_h = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(100 + seed_f))
    with own_work(stage=4, what="make_cnn"):
        net_h = make_cnn()
    w_h = set_random_weights(net_h, seed_f)
    with own_work(stage=4, what="the network of make_cnn"), torch.no_grad():
        out_h = net_h(x_h)
    check_close(out_h.numpy(), cnn_oracle(x_h, w_h).numpy(), "the network's output for random images and weights",
                tol=1e-4, atol=1e-4)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "cnn-training", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A short training run: one pass of Adam over 2,000 training digits reaches at least 80% on 1,000 test digits
# (the architecture reaches about 88%).
x_train_t, y_train_t = training.prepare(train_images[:2000].cpu()), train_labels[:2000].cpu()
x_test_t, y_test_t = training.prepare(test_images[:1000].cpu()), test_labels[:1000].cpu()
torch.manual_seed(0)
with own_work(stage=4, what="training the network of make_cnn", seconds=120):
    net_t = make_cnn()
    optimiser_t = torch.optim.Adam(net_t.parameters(), lr=3e-3)
    for batch_t in torch.randperm(2000, generator=torch.Generator().manual_seed(0)).split(50):
        loss_t = torch.nn.functional.cross_entropy(net_t(x_train_t[batch_t]), y_train_t[batch_t])
        optimiser_t.zero_grad()
        loss_t.backward()
        optimiser_t.step()
    with torch.no_grad():
        accuracy_t = float((net_t(x_test_t).argmax(dim=1) == y_test_t).float().mean())
check(accuracy_t >= 0.8, f"after one pass over 2,000 digits the network gets {accuracy_t:.1%} of 1,000 test digits "
                         "right; the architecture gets about 88%")

# %% [markdown]
# Now train your CNN on the whole training set, as the FC net above (until `make_cnn` works, coursekit's
# `models.small_cnn` stands in for it):

# %% nbgrader={"grade": false, "grade_id": "cnn-train", "locked": true, "schema_version": 3, "solution": false, "task": false}
make_the_cnn = yours_or(make_cnn, models.small_cnn, "the CNN's training runs")
cnn, cnn_history = train(make_the_cnn, "CNN", train_images, (test_images, test_labels), seed=2)
fig, (ax,) = plots.new_figure(width=5.0, height=3.2)
for name, history in (("FC", fc_history), ("CNN", cnn_history)):
    ax.plot(
        range(1, len(history.test_accuracy) + 1),
        [100 * (1 - a) for a in history.test_accuracy],
        "o-",
        label=name,
    )
ax.set_xlabel("epoch")
ax.set_ylabel("test error (%)")
ax.set_xticks(range(1, max(EPOCHS["FC"], EPOCHS["CNN"]) + 1))
ax.set_title("test error after each epoch")
ax.legend()
plots.show(fig)
filters = models.first_conv(cnn).weight.detach()[:, 0]
plots.show(
    plots.image_grid(
        filters,
        ncols=16,
        size=0.7,
        symmetric=True,
        suptitle="the CNN's 16 first-layer 3x3 filters (red positive, blue negative)",
    )
)

# %% [markdown]
# ## 4. Shuffling the pixels
#
# Draw **one** random permutation $\pi$ of the 784 pixel positions and apply it to **every** image, training and test
# alike: pixel $j$ of a shuffled image is pixel $\pi(j)$ of the original. No information is lost (the permutation can
# be undone), but neighbouring pixels are no longer neighbours.
#
# ### Exercise 4.1 — permute the pixels
# Write `permute_pixels(images, permutation)`: `images` is `(N, H, W)`, `permutation` a tensor holding each of
# `0 .. H*W-1` once. Return a tensor of the same shape and dtype where, reading each image row by row, output pixel
# `j` is input pixel `permutation[j]`. One indexing operation for all images: no loop.


# %% nbgrader={"grade": false, "grade_id": "permute-pixels-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def permute_pixels(images, permutation):
    """out.reshape(N, -1)[:, j] = images.reshape(N, -1)[:, permutation[j]], same shape and dtype."""
    ### BEGIN SOLUTION
    n, h, w = images.shape
    return images.reshape(n, h * w)[:, permutation.to(images.device)].reshape(n, h, w)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "permute-pixels-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A hand-computed case on 2x2 images, then shape, dtype and a permutation of a real digit's pixels.
with own_work(stage=4, what="permute_pixels"):
    tiny = permute_pixels(
        torch.tensor([[[10, 11], [12, 13]], [[20, 21], [22, 23]]], dtype=torch.uint8),
        torch.tensor([3, 0, 2, 1]),
    )
    digits = test_images[:5]
    reversed_order = permute_pixels(digits, torch.arange(783, -1, -1))
check(tiny.dtype == torch.uint8, "permute_pixels must keep the dtype (uint8)")
check_shape(tiny, (2, 2, 2), "permute_pixels of two 2x2 images")
check(
    torch.equal(
        tiny, torch.tensor([[[13, 10], [12, 11]], [[23, 20], [22, 21]]], dtype=torch.uint8)
    ),
    "permute_pixels of two 2x2 images with the permutation (3, 0, 2, 1)",
)
check(
    torch.equal(reversed_order, torch.flip(digits, dims=(1, 2))),
    "reversing the pixel order must turn each digit by 180 degrees",
)
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(403)
for n, h, w in ((7, 28, 28), (1, 3, 5), (3, 1, 9)):
    source = torch.randint(0, 256, (n, h, w), generator=g).to(torch.uint8)
    order = torch.randperm(h * w, generator=g)
    with own_work(stage=4, what="permute_pixels"):
        permuted = permute_pixels(source, order)
    expected = torch.stack(
        [
            torch.tensor([img.flatten()[order[j]] for j in range(h * w)])
            .reshape(h, w)
            .to(torch.uint8)
            for img in source
        ]
    )
    check(torch.equal(permuted, expected), f"permute_pixels of {n} random {h}x{w} images")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4.2 — one permutation for training and test
# Write `shuffle_datasets(train, test, seed)`: draw one random permutation of the pixel positions from a
# `torch.Generator` seeded with `seed` (the same seed must give the same permutation) and apply it, with your
# `permute_pixels`, to both sets. Return `(train_shuffled, test_shuffled, permutation)`.


# %% nbgrader={"grade": false, "grade_id": "shuffle-datasets-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shuffle_datasets(train, test, seed):
    """Both image sets (N, H, W) shuffled with one permutation drawn from seed, and that permutation."""
    ### BEGIN SOLUTION
    h, w = train.shape[1:]
    permutation = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return permute_pixels(train, permutation), permute_pixels(test, permutation), permutation
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "shuffle-datasets-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Images whose pixels are all different (pixel j holds j % 256 in one image and j // 256 in another) reveal the
# permutation applied to each set: it must be one and the same, a real shuffle, reproducible from the seed.
index = torch.arange(784)
coded = torch.stack([index % 256, index // 256]).reshape(2, 28, 28).to(torch.uint8)


def applied(images):
    flat = images.reshape(len(images), -1).long()
    return flat[0] + 256 * flat[1]


with own_work(stage=4, what="shuffle_datasets"):
    train_s, test_s, perm = shuffle_datasets(coded, coded.clone(), seed=7)
    train_again, _, _ = shuffle_datasets(coded, coded.clone(), seed=7)
    train_other, _, _ = shuffle_datasets(coded, coded.clone(), seed=8)
check_shape(train_s, (2, 28, 28), "the shuffled training images")
check(
    torch.equal(torch.sort(applied(train_s)).values, index),
    "the training images were not shuffled pixel by pixel",
)
check(
    not torch.equal(applied(train_s), index),
    "the permutation is the identity: nothing was shuffled",
)
check(
    torch.equal(applied(train_s), applied(test_s)),
    "training and test images were shuffled with different permutations",
)
check(torch.equal(train_s, train_again), "the same seed must give the same permutation")
check(not torch.equal(train_s, train_other), "different seeds gave the same permutation")
check(
    torch.equal(perm.long().cpu(), applied(train_s).cpu())
    or torch.equal(torch.argsort(perm.long()).cpu(), applied(train_s).cpu()),
    "the returned permutation is not the one applied",
)
### BEGIN HIDDEN TESTS
images_h = torch.randint(0, 256, (3, 28, 28), generator=torch.Generator().manual_seed(12), dtype=torch.uint8)
with own_work(stage=4, what="shuffle_datasets"):
    train_h, test_h, perm_h = shuffle_datasets(images_h, images_h.flip(0).clone(), seed=11)


def shuffled_by(result, images, permutation):
    """Whether result holds the images' pixels permuted by the permutation (or by its inverse)."""
    flat, p = images.reshape(len(images), -1), permutation.long().cpu()
    got = result.reshape(len(images), -1).cpu()
    return torch.equal(got, flat[:, p]) or torch.equal(got, flat[:, torch.argsort(p)])


check(shuffled_by(train_h, images_h, perm_h), "the training images of a random set are not their own pixels "
      "shuffled by the returned permutation")
check(shuffled_by(test_h, images_h.flip(0), perm_h), "the test images of a random set are not their own pixels "
      "shuffled by the returned permutation")
### END HIDDEN TESTS

# %% [markdown]
# Now train both networks again, from the same initial seeds, on the shuffled pixels. To you the shuffled digits are
# noise; to the networks?

# %% nbgrader={"grade": false, "grade_id": "shuffled-train", "locked": true, "schema_version": 3, "solution": false, "task": false}
def coursekits_shuffle(train, test, seed):
    """The shuffle of exercise 4.2 with coursekit's pieces: stands in until your shuffle_datasets works."""
    permutation = transforms.pixel_permutation(train.shape[1] * train.shape[2], seed)
    return transforms.permute_pixels(train, permutation), transforms.permute_pixels(test, permutation), permutation


shuffle = yours_or(shuffle_datasets, coursekits_shuffle, "the shuffled training runs")
train_shuffled, test_shuffled, permutation = shuffle(train_images, test_images, seed=2024)
plots.show(
    plots.image_grid(
        torch.cat([test_images[:8], test_shuffled[:8]]),
        ncols=8,
        suptitle="test digits, and the same digits with shuffled pixels",
    )
)
fc_shuffled, fc_shuffled_history = train(
    models.fc_net, "FC", train_shuffled, (test_shuffled, test_labels), seed=1
)
cnn_shuffled, cnn_shuffled_history = train(
    make_the_cnn, "CNN", train_shuffled, (test_shuffled, test_labels), seed=2
)
results = {
    (name, kind): h.test_accuracy[-1]
    for (name, kind), h in {
        ("FC", "original"): fc_history,
        ("CNN", "original"): cnn_history,
        ("FC", "shuffled"): fc_shuffled_history,
        ("CNN", "shuffled"): cnn_shuffled_history,
    }.items()
}
print(f"{'test accuracy':>14}  original  shuffled")
for name in ("FC", "CNN"):
    print(
        f"{name:>14}  {100 * results[name, 'original']:7.2f}%"
        f"  {100 * results[name, 'shuffled']:7.2f}%"
    )

# %% nbgrader={"grade": false, "grade_id": "shuffled-lesson", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The lecture's lesson, checked on the numbers above (with your shuffle_datasets).
fc_loss = results["FC", "original"] - results["FC", "shuffled"]
cnn_loss = results["CNN", "original"] - results["CNN", "shuffled"]
check(
    results["CNN", "original"] > results["FC", "original"],
    "on the original pixels the CNN should beat the FC net",
)
check(
    abs(fc_loss) <= 0.01,
    "the FC net should stay within 1 point of its accuracy on shuffled pixels: "
    "are training and test images shuffled with the same permutation?",
)
check(cnn_loss > fc_loss, "shuffling should cost the CNN more than the FC net")
check(
    results["CNN", "shuffled"] <= results["FC", "shuffled"],
    "the lecture's claim: on shuffled pixels the CNN is no better than the FC net",
)

# %% [markdown]
# What did the fully connected nets learn? Each hidden unit has one weight per pixel: shown as a 28×28 image, the
# first-layer weights of the net trained on real digits are blobs and strokes over the digit area. The net trained
# on shuffled pixels learned weights for the shuffled positions; put back in their original places (the weight on
# shuffled pixel $j$ belongs to original pixel `permutation[j]`), they show the same kind of structure. It
# could learn the same function, because it never relied on which pixels are neighbours: it has to learn
# everything about the images from the data, the "more than required" of the lecture.

# %% nbgrader={"grade": false, "grade_id": "fc-weights-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
def first_layer(net):
    """The first linear layer's weights (hidden, 784) of a fully connected net."""
    return next(m for m in net.modules() if isinstance(m, torch.nn.Linear)).weight.detach().cpu()


unpermuted = torch.empty_like(first_layer(fc_shuffled))
unpermuted[:, permutation.cpu()] = first_layer(fc_shuffled)  # the weight on shuffled pixel j goes to pixel permutation[j]
plots.show(
    plots.image_grid(
        torch.cat([first_layer(fc)[:8], unpermuted[:8]]).reshape(16, 28, 28),
        ncols=8,
        size=0.9,
        symmetric=True,
        suptitle="8 hidden units' weights: real digits (top); shuffled, put back in place (bottom)",
    )
)

# %% [markdown] nbgrader={"grade": true, "grade_id": "shuffle-question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Question (2 points).** Why does shuffling the pixels leave the fully connected net's accuracy unchanged (up to the
# noise of a different random start), while the CNN loses accuracy? What does this say about what each architecture
# assumes, and about the lecture's remark that the FC net "learns more than actually required"?
#
# ### BEGIN SOLUTION
# A fully connected layer computes $W x + b$: shuffling the input by a fixed permutation $P$ gives $W P x$, and
# $W' = W P$ is just another weight matrix, as easy to learn (the columns of $W$ are permuted; with the matching
# initialisation, training would follow exactly the same path). The FC net has no notion of which pixels are
# neighbours, so the same permutation on training and test data changes nothing for it. That is also why it "learns
# more than required": it must learn from data what every image shares (that nearby pixels belong together, that a
# stroke is a stroke wherever it is), with a separate weight for every pixel and position.
#
# A convolution assumes locality and stationarity: a $3\times3$ filter combines pixels that are neighbours in the
# image, and the same filter is applied everywhere (translation equivariance), followed by pooling that tolerates
# small shifts. After shuffling, neighbours in the array are random pixels from all over the digit: the small
# filters see no strokes or edges, weight sharing ties together positions that have nothing in common, and pooling
# mixes unrelated pixels. The prior that helped on real images now works against the CNN, which is left with far
# fewer useful parameters than the FC net. Its better accuracy on real digits comes from this built-in knowledge
# about images, not from more capacity.
# ### END SOLUTION

# %% [markdown]
# Browse the test digits: each net's prediction on the original and on the shuffled pixels (green when right), and
# what the CNN's first layer makes of each (trained on original pixels above, on shuffled pixels below). The menu
# narrows the slider to the digits a net gets wrong.

# %% nbgrader={"grade": false, "grade_id": "digit-browser", "locked": true, "schema_version": 3, "solution": false, "task": false}
if not coursekit.under_grading():
    from coursekit.explore.convolution import DigitBrowser

    display(
        DigitBrowser(
            test_images,
            test_labels,
            permutation,
            original={"FC": fc, "CNN": cnn},
            shuffled={"FC": fc_shuffled, "CNN": cnn_shuffled},
        )
    )

# %% [markdown]
# ## 5. LeNet-5
#
# LeCun et al. 1998: a $32 \times 32$ input (the $28\times28$ digit padded by 2), then
#
# | layer | what it does | output |
# |---|---|---|
# | C1 | 6 convolutions $5\times5$; tanh | 6@28x28 |
# | S2 | sub-sampling: the sum of each $2\times2$ block times a trainable coefficient, plus a trainable bias, per map | 6@14x14 |
# | C3 | 16 convolutions $5\times5$, each reading only some S2 maps (the paper's Table I); tanh | 16@10x10 |
# | S4 | sub-sampling as S2 | 16@5x5 |
# | C5 | 120 convolutions $5\times5$ over all 16 maps; tanh | 120@1x1 |
# | F6 | fully connected; tanh | 84 |
# | output | one unit per class | 10 |
#
# "Sub-sampling gradually introduces translation, scale and distortion invariance." A convolution with a $k\times k$
# kernel, no padding and stride 1 turns $n \times n$ into $(n-k+1)\times(n-k+1)$; a $2\times2$ sub-sampling with stride 2
# turns $n$ into $\lfloor n/2 \rfloor$.
#
# ### Exercise 5.1 — feature-map shapes
# Write `lenet_shapes(size=32)`: a dict mapping `"C1"`, `"S2"`, `"C3"`, `"S4"`, `"C5"` to the `(channels, height,
# width)` of that layer's output for a `size x size` input (compute them with the formulas above; running torch
# layers is switched off while this is graded).


# %% nbgrader={"grade": false, "grade_id": "lenet-shapes-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lenet_shapes(size=32):
    """{"C1": (6, h, w), "S2": ..., "C5": (120, h, w)}: output shapes for a size x size input."""
    ### BEGIN SOLUTION
    shapes = {}
    n = size
    for name, channels, kind in (
        ("C1", 6, "conv"),
        ("S2", 6, "pool"),
        ("C3", 16, "conv"),
        ("S4", 16, "pool"),
        ("C5", 120, "conv"),
    ):
        n = n - 5 + 1 if kind == "conv" else n // 2
        shapes[name] = (channels, n, n)
    return shapes
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "lenet-shapes-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The paper's shapes for its 32x32 input (the table above).
with own_work(*LAYERS, stage=4, what="lenet_shapes"):
    paper_shapes = lenet_shapes(32)
check(
    isinstance(paper_shapes, dict) and set(paper_shapes) == {"C1", "S2", "C3", "S4", "C5"},
    "lenet_shapes must return a dict with the keys C1, S2, C3, S4, C5",
)
check(
    {name: tuple(shape) for name, shape in paper_shapes.items()}
    == {
        "C1": (6, 28, 28),
        "S2": (6, 14, 14),
        "C3": (16, 10, 10),
        "S4": (16, 5, 5),
        "C5": (120, 1, 1),
    },
    "lenet_shapes(32) does not give the paper's feature-map shapes",
)
### BEGIN HIDDEN TESTS
# Other input sizes (odd ones too), against torch layers of the same kind.
for size in (36, 33, 45):
    x = torch.zeros(1, 1, size, size)
    expected = {}
    for name, layer in (
        ("C1", torch.nn.Conv2d(1, 6, 5)),
        ("S2", torch.nn.AvgPool2d(2)),
        ("C3", torch.nn.Conv2d(6, 16, 5)),
        ("S4", torch.nn.AvgPool2d(2)),
        ("C5", torch.nn.Conv2d(16, 120, 5)),
    ):
        x = layer(x)
        expected[name] = tuple(x.shape[1:])
    with own_work(*LAYERS, stage=4, what="lenet_shapes"):
        found = lenet_shapes(size)
    check(isinstance(found, dict) and {name: tuple(shape) for name, shape in found.items()} == expected,
          f"lenet_shapes({size})")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5.2 — parameters of a convolution layer
# Write `conv_parameters(in_channels, out_channels, kernel_size, table=None)`: the number of trainable parameters of a
# convolution layer with square `kernel_size x kernel_size` filters and one bias per output map. With a connection
# `table` (a sequence of `out_channels` tuples, output map `j` reading only the input maps `table[j]`), output map `j`
# has a filter over `len(table[j])` maps only. (The paper: C1 has 156 trainable parameters, C3 with its table 1,516.)


# %% nbgrader={"grade": false, "grade_id": "conv-parameters-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_parameters(in_channels, out_channels, kernel_size, table=None):
    """Weights and biases of a convolution layer (with an optional partial connection table)."""
    ### BEGIN SOLUTION
    inputs_read = in_channels * out_channels if table is None else sum(len(row) for row in table)
    return inputs_read * kernel_size * kernel_size + out_channels
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "conv-parameters-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The paper's C1 (156), C3 with its table (1,516) and C5 (48,120).
with own_work(stage=4, what="conv_parameters"):
    counts = (
        conv_parameters(1, 6, 5),
        conv_parameters(6, 16, 5, table=models.LENET_C3_TABLE),
        conv_parameters(16, 120, 5),
    )
check(counts[0] == 156, "conv_parameters(1, 6, 5) is not C1's 156")
check(counts[1] == 1516, "conv_parameters(6, 16, 5, table=LENET_C3_TABLE) is not C3's 1,516")
check(counts[2] == 48120, "conv_parameters(16, 120, 5) is not C5's 48,120")
### BEGIN HIDDEN TESTS
# Layers of other sizes, against the parameters torch allocates.
for c_in, c_out, k in ((3, 8, 3), (7, 2, 1), (4, 5, 4)):
    with own_work(stage=4, what="conv_parameters"):
        found = conv_parameters(c_in, c_out, k)
    check(
        found == sum(p.numel() for p in torch.nn.Conv2d(c_in, c_out, k).parameters()),
        f"conv_parameters({c_in}, {c_out}, {k})",
    )
with own_work(stage=4, what="conv_parameters"):
    found = conv_parameters(3, 2, 3, table=((0,), (0, 1, 2)))
check(found == (1 + 3) * 9 + 2, "conv_parameters with a table ((0,), (0, 1, 2))")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5.3 — LeNet-5's parameters, layer by layer
# Write `lenet_parameters(partial=True)`: a dict mapping `"C1"`, `"S2"`, `"C3"`, `"S4"`, `"C5"`, `"F6"`, `"output"` to
# each layer's number of trainable parameters, using your `conv_parameters` (C3 with `models.LENET_C3_TABLE` if
# `partial`, fully connected to all six S2 maps if not). A sub-sampling layer has a trainable coefficient and a
# trainable bias per map; a fully connected layer $m \to n$ has $mn + n$. Our output layer is a linear layer $84 \to 10$
# (the paper's Gaussian connections are fixed, not trained).


# %% nbgrader={"grade": false, "grade_id": "lenet-parameters-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lenet_parameters(partial=True):
    """Trainable parameters of each LeNet-5 layer, as a dict."""
    ### BEGIN SOLUTION
    return {
        "C1": conv_parameters(1, 6, 5),
        "S2": 2 * 6,
        "C3": conv_parameters(6, 16, 5, table=models.LENET_C3_TABLE if partial else None),
        "S4": 2 * 16,
        "C5": conv_parameters(16, 120, 5),
        "F6": 120 * 84 + 84,
        "output": 84 * 10 + 10,
    }
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "lenet-parameters-tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The trainable parameters the paper gives for each layer (Section II.B), and our output layer; the total must be
# what torch allocates for LeNet-5 without the table (every C3 map reading every S2 map).
with own_work(stage=4, what="lenet_parameters (it uses your conv_parameters)"):
    ours, full_table = lenet_parameters(partial=True), lenet_parameters(partial=False)
check(
    isinstance(ours, dict) and set(ours) == {"C1", "S2", "C3", "S4", "C5", "F6", "output"},
    "lenet_parameters must return a dict with the keys C1, S2, C3, S4, C5, F6, output",
)
for layer, paper in {
    "C1": 156,
    "S2": 12,
    "C3": 1516,
    "S4": 32,
    "C5": 48120,
    "F6": 10164,
    "output": 850,
}.items():
    check(ours[layer] == paper, f"lenet_parameters()[{layer!r}] is not the paper's count")
check(
    sum(full_table.values()) == sum(p.numel() for p in models.LeNet5(partial=False).parameters()),
    "the total of lenet_parameters(partial=False) is not the parameter count of LeNet-5 "
    "without the table",
)

# %% [markdown]
# ### Exercise 5.4 — LeNet's sub-sampling layer
# Write the module `Subsampling(channels)`, the S2 and S4 layers of the table above: for each of the `channels`
# input maps, the sum of every non-overlapping $2\times2$ block (stride 2), times a trainable coefficient of that map,
# plus a trainable bias of that map, then the squashing $\tanh$. Input `(N, channels, H, W)`, output
# `(N, channels, H // 2, W // 2)`; `2 * channels` parameters in all, created as `nn.Parameter`s in `__init__` (start
# the coefficients at 0.25, so that the layer first averages, and the biases at 0). The LeNet-5 trained below is
# built with your layer.

# %% nbgrader={"grade": false, "grade_id": "subsampling-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Subsampling(torch.nn.Module):
    """Per map: tanh(coefficient * (sum of each 2x2 block) + bias); (N, C, H, W) -> (N, C, H // 2, W // 2)."""

    def __init__(self, channels):
        super().__init__()
        ### BEGIN SOLUTION
        self.coefficient = torch.nn.Parameter(torch.full((channels,), 0.25))
        self.bias = torch.nn.Parameter(torch.zeros(channels))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        blocks = x[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).sum(dim=(3, 5))
        return torch.tanh(blocks * self.coefficient[:, None, None] + self.bias[:, None, None])
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "subsampling-shapes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Two trainable parameters per map, the output shape, and the first output: tanh of each block's mean.
x_s2 = torch.randn(2, 6, 28, 28, generator=torch.Generator().manual_seed(40))
with own_work(stage=4, what="Subsampling"):
    layer_s2 = Subsampling(6)
    out_s2 = layer_s2(x_s2)
check(isinstance(layer_s2, torch.nn.Module), "Subsampling should be a torch nn.Module")
check(sum(p.numel() for p in layer_s2.parameters() if p.requires_grad) == 12,
      "Subsampling(6) should have 12 trainable parameters: a coefficient and a bias per map")
check_shape(out_s2, (2, 6, 14, 14), "Subsampling(6) of a (2, 6, 28, 28) batch")
check_close(out_s2.detach().numpy(), torch.tanh(torch.nn.functional.avg_pool2d(x_s2, 2)).numpy(),
            "the output of a new layer (coefficient 0.25, bias 0): tanh of each block's mean", tol=1e-5, atol=1e-6)
### BEGIN HIDDEN TESTS
for shape_s in ((1, 16, 10, 10), (3, 2, 7, 9)):
    x_s = torch.randn(*shape_s, generator=torch.Generator().manual_seed(41))
    with own_work(stage=4, what="Subsampling"):
        out_s = Subsampling(shape_s[1])(x_s)
    check_shape(out_s, (shape_s[0], shape_s[1], shape_s[2] // 2, shape_s[3] // 2), f"Subsampling of a {shape_s} batch")
    check_close(out_s.detach().numpy(), torch.tanh(torch.nn.functional.avg_pool2d(x_s, 2)).numpy(),
                f"the output of a new layer for a {shape_s} batch", tol=1e-5, atol=1e-6)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "subsampling-oracle", "locked": true, "schema_version": 3, "solution": false, "task": false}
def subsampling_oracle(x, coefficient, bias):
    return torch.tanh(4 * torch.nn.functional.avg_pool2d(x, 2) * coefficient[:, None, None] + bias[:, None, None])


def check_subsampling(seed, shape, what):
    g = torch.Generator().manual_seed(seed)
    x, c, b = torch.randn(*shape, generator=g), torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
    dOut = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=g)
    with own_work(stage=4, what="Subsampling"):
        layer = Subsampling(shape[1])
    check(isinstance(getattr(layer, "coefficient", None), torch.nn.Parameter)
          and isinstance(getattr(layer, "bias", None), torch.nn.Parameter),
          "Subsampling should keep its parameters as the nn.Parameters self.coefficient and self.bias")
    with torch.no_grad():
        layer.coefficient.copy_(c)
        layer.bias.copy_(b)
    x_mine = x.clone().requires_grad_(True)
    with own_work(stage=4, what="Subsampling"):
        out = layer(x_mine)
        out.backward(dOut)
    x_ref, c_ref, b_ref = (t.clone().requires_grad_(True) for t in (x, c, b))
    expected = subsampling_oracle(x_ref, c_ref, b_ref)
    expected.backward(dOut)
    check_close(out.detach().numpy(), expected.detach().numpy(), f"the output {what}", tol=1e-5, atol=1e-6)
    for name, got, want in (("input", x_mine.grad, x_ref.grad), ("coefficients", layer.coefficient.grad, c_ref.grad),
                            ("biases", layer.bias.grad, b_ref.grad)):
        check(got is not None, f"no gradient reached the {name}: is the output computed from them with torch?")
        check_close(got.numpy(), want.numpy(), f"the gradient of the {name} {what}", tol=1e-4, atol=1e-5)


# %% nbgrader={"grade": true, "grade_id": "subsampling-function", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# With coefficients and biases set by the test: the output, and the gradients of the input, the coefficients
# and the biases (the layer must be trainable) against torch autograd of the same formula.
check_subsampling(42, (2, 3, 6, 6), "of a (2, 3, 6, 6) batch")
### BEGIN HIDDEN TESTS
check_subsampling(43, (1, 6, 28, 28), "of a (1, 6, 28, 28) batch")
check_subsampling(44, (3, 4, 9, 11), "of a (3, 4, 9, 11) batch")
### END HIDDEN TESTS

# %% [markdown]
# Train LeNet-5 with the paper's connection table (and your trainable sub-sampling; Adam instead of the paper's
# stochastic diagonal Levenberg-Marquardt), look at its six C1 filters, its confusion matrix and the digits it still
# gets wrong. Two simplifications: the squashing is plain $\tanh$ after C1, C3, C5 and F6, where the paper uses
# $f(a) = 1.7159 \tanh(2a/3)$ after every layer, the sub-sampling ones included; and a linear output layer with
# softmax cross-entropy replaces the paper's Gaussian (RBF) units. The paper reports 0.95% test error without
# distortions, after many passes over the training set (its Figure 5 plots both errors against the passes; we
# train for 6 in the full budget and 2 in the fast one).

# %% nbgrader={"grade": false, "grade_id": "lenet-train", "locked": true, "schema_version": 3, "solution": false, "task": false}
subsampling_layer = yours_or(Subsampling, models.Subsampling, "LeNet-5's S2 and S4")
lenet, lenet_history = train(
    lambda: models.LeNet5(partial=True, subsampling=subsampling_layer), "LeNet-5", train_images,
    (test_images, test_labels), seed=3,
)
plots.show(
    plots.image_grid(
        lenet.c1.weight.detach()[:, 0],
        [f"C1 filter {k}" for k in range(6)],
        ncols=6,
        size=1.2,
        symmetric=True,
        suptitle="LeNet-5's learned C1 filters (red positive, blue negative)",
    )
)
show_errors(training.predict(lenet, test_images), "LeNet-5")

# %% [markdown]
# What LeNet-5's first two layers make of one test digit: the six C1 feature maps ($28\times28$, after the squashing)
# and the six S2 maps ($14\times14$), each S2 map the sub-sampled version of the C1 map above it.

# %% nbgrader={"grade": false, "grade_id": "lenet-maps-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
with torch.no_grad():
    digit = training.prepare(test_images[:1])
    c1_maps = torch.tanh(lenet.c1(torch.nn.functional.pad(digit, (2, 2, 2, 2))))[0]
    s2_maps = lenet.s2(c1_maps[None])[0]
plots.show(plots.image_grid(test_images[:1], [f"test digit, label {int(test_labels[0])}"], ncols=1, size=1.3))
plots.show(
    plots.image_grid(
        torch.cat([c1_maps, torch.nn.functional.interpolate(s2_maps[None], scale_factor=2.0)[0]]),
        [f"C1 map {k}" for k in range(6)] + [f"S2 map {k}" for k in range(6)],
        ncols=6,
        size=1.2,
        symmetric=True,
        suptitle="C1 (28x28, top) and S2 (14x14, drawn at the same size, bottom)",
    )
)

# %% [markdown]
# ## Summary
#
# - The fully connected net reaches a few percent of test error but is blind to the image structure: a fixed
#   shuffle of the pixels does not change what it can learn. The CNN, with a quarter of the parameters, does
#   better on real digits because locality and weight sharing match images, and loses that edge on shuffled ones.
# - In `coursekit`: `coursekit.data.load_mnist` (the real MNIST, checked by sha256 and cached; `coursekit data
#   fetch` fetches it once), `coursekit.nets.training.fit` (the device-resident training loop, used in later stages),
#   `training.predict`, `training.confusion_matrix`, `coursekit.data.transforms.permute_pixels` and `pixel_permutation`,
#   `coursekit.nets.models` (`fc_net`, `small_cnn`, `LeNet5` with the paper's C3 table, `parameter_count`), and the
#   `DigitBrowser` widget.
# - Next, stage 05: AlexNet, the same ideas at ImageNet scale.
