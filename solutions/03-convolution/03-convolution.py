# ---
# jupyter:
#   coursekit:
#     full_budget_on_cpu: true
# ---

# %% [markdown]
# # Stage 03 — Convolution as a linear time-invariant system
#
# *Deep learning for vision*, lecture part "convolution": discrete-time signals, the shift operator, the
# unit impulse, linear and time-invariant (translation-equivariant) systems, why such a system *is* a
# convolution with its impulse response; then convolution on images and on feature maps.
#
# **You will**
# 1. write the shift operator and 1-D convolution, and recover the impulse response of a black-box system;
# 2. convolve real photos with classic kernels, and pin down convolution versus cross-correlation;
# 3. write a convolution layer (forward and backward) vectorised with im2col, checked against torch;
# 4. see where translation equivariance holds, where it breaks, and what pooling adds.
#
# A test cell that passes prints nothing. *Run All* stops at the first failing test: until your answers
# are done, run the cells one by one. While your code is graded, the reference `coursekit.convolution` is switched off.
#
# **Only the answer cells are graded: put all your code in them** (cells you add are dropped when your notebook
# is graded).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import scipy.linalg
import scipy.signal
import torch

import coursekit
from coursekit.data import samples
from coursekit.explore import plots
from coursekit.grading import check, check_close, check_gradients, check_shape, own_work, python_lines

BUDGET = coursekit.budget()
coursekit.seed_everything(0)
# While your code is graded, coursekit's reference pieces and the library routines that compute a
# convolution are switched off: the exercises ask you to write the computation.
LIBRARY = ["numpy.convolve", "numpy.correlate", "scipy.signal.convolve", "scipy.signal.correlate",
           "scipy.signal.convolve2d", "scipy.signal.correlate2d", "scipy.signal.fftconvolve", "scipy.signal.oaconvolve",
           "scipy.ndimage.convolve", "scipy.ndimage.correlate", "scipy.ndimage.convolve1d", "scipy.ndimage.correlate1d",
           "scipy.signal.lfilter", "torch.nn.functional.conv1d", "torch.nn.functional.conv2d", "torch.conv1d",
           "torch.conv2d", "torch.convolution", "torch.nn.functional.conv_transpose1d",
           "torch.nn.functional.conv_transpose2d", "torch.conv_transpose1d", "torch.conv_transpose2d",
           "torch.nn.grad.conv1d_input", "torch.nn.grad.conv1d_weight", "torch.nn.grad.conv2d_input",
           "torch.nn.grad.conv2d_weight"]
print(BUDGET)

# %% [markdown]
# ## 1. Signals and systems
#
# A discrete-time signal is a sequence $x[n]$, $n \in \mathbb{Z}$; here a finite array, zero outside. The
# **translation** (shift, delay) by $k \in \mathbb{Z}$ is $t_k(x)[n] = x[n-k]$, and the **unit impulse** is
# $\delta[n] = \mathbb{1}[n = 0]$, so that every signal is a sum of shifted impulses: $x[n] = \sum_k x[k]\,\delta[n-k]$.
#
# ### Exercise 1.1 — the shift operator
# Write `shift(x, k)` for a 1-D array `x`: the array of the same length with `out[n] = x[n - k]`, and zeros
# where `n - k` falls outside `x`. `k > 0` delays (moves right), `k < 0` advances. (`np.roll` is *not* it: it wraps around.)

# %% nbgrader={"grade": false, "grade_id": "shift-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shift(x, k):
    """t_k(x)[n] = x[n - k] on the same samples, zero-filled."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    n = np.arange(x.size)
    inside = (n - k >= 0) & (n - k < x.size)
    out[inside] = x[n[inside] - k]
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "shift-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Delays, advances, zero-fill, and shifts longer than the signal.
with own_work(*LIBRARY, stage=3, what="shift"):
    delayed = shift(np.array([1.0, 2.0, 3.0, 4.0]), 1)
    advanced = shift(np.array([1.0, 2.0, 3.0, 4.0]), -2)
    gone = shift(np.array([1.0, 2.0]), 5)
    same = shift(np.array([5.0, 6.0]), 0)
check_close(delayed, [0.0, 1.0, 2.0, 3.0], "shift([1, 2, 3, 4], 1)")
check_close(advanced, [3.0, 4.0, 0.0, 0.0], "shift([1, 2, 3, 4], -2)")
check_close(gone, [0.0, 0.0], "shift([1, 2], 5)")
check_close(same, [5.0, 6.0], "shift([5, 6], 0)")
### BEGIN HIDDEN TESTS
rng_shift = np.random.default_rng(301)
for length, k in ((9, 3), (9, -4), (6, 6), (6, -7), (1, 0), (12, int(rng_shift.integers(-11, 12)))):
    x_shift = rng_shift.normal(size=length)
    with own_work(*LIBRARY, stage=3, what="shift"):
        got_shift = shift(x_shift, k)
    expected_shift = np.array([x_shift[m - k] if 0 <= m - k < length else 0.0 for m in range(length)])  # the definition
    check_close(got_shift, expected_shift, f"shift of a random signal of length {length} by {k}")
### END HIDDEN TESTS

# %% [markdown]
# A system $f$ is **linear** if $f\left(\sum_i a_i x_i\right) = \sum_i a_i f(x_i)$ and **time-invariant** (translation
# equivariant) if $f(t_k(x)) = t_k(f(x))$. If $f$ is both, with **impulse response** $h = f(\delta)$, then
#
# $$f(x)[n] = f\Big(\sum_k x[k]\, t_k(\delta)\Big)[n] = \sum_k x[k]\, t_k(f(\delta))[n] = \sum_k x[k]\, h[n-k] = (x * h)[n]:$$
#
# linearity moves $f$ inside the sum, time invariance moves it past the shift. Every LTI system is a convolution.
#
# ### Exercise 1.2 — 1-D convolution
# Write `convolve(x, h)`: the full convolution $(x * h)[n] = \sum_k x[k]\,h[n-k]$ for $n = 0, \dots, \text{len}(x) + \text{len}(h) - 2$.
# (A loop over $k$ is fine here; no `np.convolve` or `scipy`.)

# %% nbgrader={"grade": false, "grade_id": "convolve-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def convolve(x, h):
    """Full 1-D convolution of x and h: an array of length len(x) + len(h) - 1."""
    ### BEGIN SOLUTION
    x, h = np.asarray(x, dtype=float), np.asarray(h, dtype=float)
    y = np.zeros(x.size + h.size - 1)
    for k in range(x.size):
        y[k : k + h.size] += x[k] * h
    return y
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "convolve-values", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A hand-computed case: (1, 2, 3) * (0, 1, 0.5) = (0, 1, 2.5, 4, 1.5); and the output length.
with own_work(*LIBRARY, stage=3, what="convolve"):
    y_hand = convolve(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
    y_len = convolve(np.ones(7), np.ones(3))
check_shape(y_len, (9,), "convolve of lengths 7 and 3")
check_close(y_hand, [0.0, 1.0, 2.5, 4.0, 1.5], "convolve([1, 2, 3], [0, 1, 0.5])", tol=1e-12)
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(301)
for len_x, len_h in ((13, 4), (3, 8), (1, 1)):
    x_c, h_c = rng.normal(size=len_x), rng.normal(size=len_h)
    with own_work(*LIBRARY, stage=3, what="convolve"):
        y_c = convolve(x_c, h_c)
    check_close(y_c, np.convolve(x_c, h_c), f"convolve of random signals of lengths {len_x} and {len_h}", tol=1e-10)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "convolve-flip", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Convolution flips h: convolving the impulse at 0 with h gives h itself (not h reversed),
# and convolution commutes.
h_asym = np.array([3.0, 2.0, 1.0, 0.5])
x_asym = np.random.default_rng(302).normal(size=6)
with own_work(*LIBRARY, stage=3, what="convolve"):
    y_delta = convolve(np.array([1.0]), h_asym)
    xh, hx = convolve(x_asym, h_asym), convolve(h_asym, x_asym)
check_close(y_delta, h_asym, "convolve(delta, h)", tol=1e-12)
check_close(xh, hx, "convolve(x, h) versus convolve(h, x)", tol=1e-10)
### BEGIN HIDDEN TESTS
rng_flip = np.random.default_rng(312)
x_fh, h_fh = rng_flip.normal(size=7), rng_flip.normal(size=5)
with own_work(*LIBRARY, stage=3, what="convolve"):
    y_fh = convolve(x_fh, h_fh)
check_close(y_fh, np.convolve(x_fh, h_fh), "convolve of a random x (7) and h (5)", tol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.3 — the impulse response
# Write `impulse_response(system, n)`: the response $h = f(\delta)$ of a system (a function from arrays of
# length `n` to arrays of length `n`) to the unit impulse at $n = 0$.

# %% nbgrader={"grade": false, "grade_id": "impulse-response-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def impulse_response(system, n):
    """h = system(delta) with delta the unit impulse at 0 on n samples."""
    ### BEGIN SOLUTION
    delta = np.zeros(n)
    delta[0] = 1.0
    return np.asarray(system(delta))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "impulse-response-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A black box that is secretly a causal LTI filter: its impulse response, then f(x) = x * h.
secret_h = np.array([0.5, -1.0, 0.25, 2.0])


def black_box(x):
    # y[n] = sum_k h[n - k] x[k], written as a product with the lower-triangular Toeplitz matrix of h
    column = np.zeros(len(x))
    column[: len(secret_h)] = secret_h[: len(x)]
    return scipy.linalg.toeplitz(column, np.zeros(len(x))) @ x


with own_work(*LIBRARY, stage=3, what="impulse_response"):
    h_found = impulse_response(black_box, 16)
check_shape(h_found, (16,), "impulse_response(black_box, 16)")
check_close(h_found, np.r_[secret_h, np.zeros(12)], "the impulse response of the black box", tol=1e-12)
x_any = np.random.default_rng(303).normal(size=16)
check_close(np.convolve(x_any, h_found)[:16], black_box(x_any), "x * h versus f(x) for a random x", tol=1e-10)
### BEGIN HIDDEN TESTS
other_h = np.random.default_rng(311).normal(size=7)
with own_work(*LIBRARY, stage=3, what="impulse_response"):
    h_other = impulse_response(lambda x: scipy.linalg.toeplitz(np.r_[other_h, np.zeros(18)], np.zeros(25)) @ x, 25)
check_close(h_other, np.r_[other_h, np.zeros(18)], "the impulse response of another causal filter", tol=1e-12, atol=1e-15)
### END HIDDEN TESTS

# %% [markdown]
# Which systems are LTI? `coursekit.convolution.signals.is_linear` and `is_time_invariant` test the two definitions on random
# signals. A moving average passes both; squaring is not linear; a gain that grows with time is not time-invariant.

# %% nbgrader={"grade": false, "grade_id": "lti-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
from coursekit.convolution import filters, layer, signals

systems = {
    "moving average of 5": lambda x: np.convolve(x, np.full(5, 0.2))[: len(x)],
    "squaring": lambda x: x**2,
    "gain growing with time": lambda x: x * np.arange(len(x)),
    "delay by 3": lambda x: signals.shift(x, 3),
}
for name, f in systems.items():
    print(f"{name:>24}: linear {signals.is_linear(f)}, time-invariant {signals.is_time_invariant(f)}")

# %% nbgrader={"grade": false, "grade_id": "lti-explorer", "locked": true, "schema_version": 3, "solution": false, "task": false}
if not coursekit.under_grading():
    from coursekit.explore.convolution import LTIExplorer

    display(LTIExplorer())

# %% [markdown]
# ### Boundaries: full, same, valid
#
# A finite convolution must decide where to stop. **full** keeps every $n$ where $x$ and the flipped $h$ overlap at
# all ($N + M - 1$ samples), **same** keeps the $N$ central ones (the output lines up with the input), **valid**
# keeps only those where $h$ lies entirely inside $x$ ($N - M + 1$): no sample there depends on the zeros
# assumed outside the signal.

# %% nbgrader={"grade": false, "grade_id": "boundaries-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
x_b = np.ones(12)
h_b = np.full(5, 0.2)
fig, axes = plots.new_figure(ncols=3, width=3.2, height=2.4)
for ax, mode in zip(axes, ("full", "same", "valid")):
    y = signals.convolve(x_b, h_b, mode)
    ax.stem(y, basefmt="k-")
    ax.set_title(f"{mode}: {len(y)} samples")
    ax.set_ylim(0, 1.1)
plots.show(fig)

# %% [markdown]
# ## 2. Convolution on images
#
# In two dimensions, $(x * k)[i, j] = \sum_{u, v} x[i-u, j-v]\,k[u, v]$: the kernel is **flipped** in both axes and slid
# over the image. **Cross-correlation** slides it without the flip: $(x \star k)[i, j] = \sum_{u,v} x[i+u, j+v]\,k[u, v]$.
# They agree for centrally symmetric kernels, k[u, v] = k[-u, -v] (box, Gaussian, Laplacian), and differ by a sign
# for the antisymmetric Sobel derivative kernels.
#
# ### Exercise 2.1 — 2-D convolution
# Write `conv2d(image, kernel)`: the **valid** 2-D convolution (only positions where the flipped kernel lies fully
# inside the image), an array of shape $(H - K_h + 1,\ W - K_w + 1)$. Loop over the kernel entries if you like,
# not over pixels.

# %% nbgrader={"grade": false, "grade_id": "conv2d-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv2d(image, kernel):
    """Valid 2-D convolution (kernel flipped) of a 2-D image with a 2-D kernel."""
    ### BEGIN SOLUTION
    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)[::-1, ::-1]
    kh, kw = k.shape
    H, W = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((H, W))
    for u in range(kh):
        for v in range(kw):
            out += k[u, v] * x[u : u + H, v : v + W]
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "conv2d-scipy", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Versus scipy.signal.convolve2d(mode="valid") on a photo patch, with an asymmetric kernel.
patch = samples.photo("camera", size=40)
k_asym = np.random.default_rng(304).normal(size=(3, 4))
with own_work(*LIBRARY, stage=3, what="conv2d"):
    out_patch = conv2d(patch, k_asym)
expected = scipy.signal.convolve2d(patch.astype(np.float64), k_asym, mode="valid")
check_close(out_patch, expected, "conv2d(photo, kernel)", tol=1e-5, atol=1e-5)  # float32 sums are fine
# No loop over pixels: the Python lines it runs must not grow with the image (counted, not timed).
with own_work(*LIBRARY, stage=3, what="conv2d"):
    _, lines_small = python_lines(conv2d, np.ones((12, 12)), k_asym)
    _, lines_large = python_lines(conv2d, np.ones((48, 48)), k_asym)
check(lines_large <= lines_small + 10, f"conv2d ran {lines_small} lines of Python on a 12x12 image and {lines_large} on "
      f"a 48x48 one: loop over the kernel's entries, not over pixels or rows")
### BEGIN HIDDEN TESTS
image_h = np.random.default_rng(314).normal(size=(25, 31))
kernel_h = np.random.default_rng(315).normal(size=(5, 2))
with own_work(*LIBRARY, stage=3, what="conv2d"):
    out_h = conv2d(image_h, kernel_h)
check_close(out_h, scipy.signal.convolve2d(image_h, kernel_h, mode="valid"), "conv2d of a random (25, 31) image",
            tol=1e-5, atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "conv2d-flip", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The flip: a single 1 at the top-left of a 3x3 kernel moves the image content up-left (in 'valid' mode
# out[i, j] = image[i + 2, j + 2]; cross-correlation would give image[i, j]), and the
# horizontal Sobel kernel [[1,0,-1],[2,0,-2],[1,0,-1]] convolved with a ramp increasing to the right is positive.
image_tf = np.arange(36.0).reshape(6, 6)
corner = np.zeros((3, 3))
corner[0, 0] = 1.0
ramp = np.tile(np.arange(8.0), (8, 1))
with own_work(*LIBRARY, stage=3, what="conv2d"):
    out_corner = conv2d(image_tf, corner)
    out_sobel = conv2d(ramp, np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]))
check(not np.allclose(out_corner, image_tf[:-2, :-2]),
      "conv2d slid the kernel over the image without flipping it: that is cross-correlation")
check_close(out_corner, image_tf[2:, 2:], "conv2d with a 1 at the kernel's top-left corner")
check_close(out_sobel, np.full((6, 6), 8.0), "conv2d(ramp, Sobel x)")
### BEGIN HIDDEN TESTS
rng_c2 = np.random.default_rng(313)
image_c2, kernel_c2 = rng_c2.normal(size=(9, 7)), rng_c2.normal(size=(2, 3))
with own_work(*LIBRARY, stage=3, what="conv2d"):
    out_c2 = conv2d(image_c2, kernel_c2)
check_close(out_c2, scipy.signal.convolve2d(image_c2, kernel_c2, mode="valid"), "conv2d of a random (9, 7) image",
            tol=1e-5, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# Classic kernels on a real photo: the box and Gaussian blur, the Sobel kernels respond to horizontal and vertical
# intensity changes, the Laplacian to edges in any direction. Which one does `torch.nn.functional.conv2d` compute?

# %% nbgrader={"grade": false, "grade_id": "kernels-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
photo = samples.photo("camera", size=BUDGET.pick(full=256, fast=96))
kernels = {"box 5x5": filters.box(5), "gaussian σ=2": filters.gaussian(2.0), "sobel x": filters.SOBEL_X,
           "sobel y": filters.SOBEL_Y, "laplacian": filters.LAPLACIAN}
fig, axes = plots.new_figure(ncols=6, width=2.3, height=2.5)
axes[0].imshow(photo, cmap="gray")
axes[0].set_title("camera")
for ax, (name, k) in zip(axes[1:], kernels.items()):
    ax.imshow(filters.convolve2d(photo, k), cmap="gray")
    ax.set_title(name)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plots.show(fig)

k_t = torch.tensor(filters.SOBEL_X)[None, None]
torch_out = torch.nn.functional.conv2d(torch.tensor(photo, dtype=torch.float64)[None, None], k_t)[0, 0].numpy()
print("torch conv2d == cross-correlation:", np.allclose(torch_out, filters.correlate2d(photo, filters.SOBEL_X, "valid")))
print("torch conv2d == convolution:      ", np.allclose(torch_out, filters.convolve2d(photo, filters.SOBEL_X, "valid")))

# %% [markdown]
# `torch.nn.functional.conv2d`, like every deep-learning library, computes the **cross-correlation**. For a layer
# whose kernels are learned the flip does not matter (the network learns the flipped kernel), so "convolution
# layer" means correlation from here on.
#
# ### Translation equivariance, and where it breaks
#
# Convolution commutes with shifts — as long as nothing falls off the border. Below, a shift by 5 pixels: in the
# interior the two orders agree exactly; near the border they differ, because zero padding is not shifted along.

# %% nbgrader={"grade": false, "grade_id": "equivariance-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
def shift2d(image, dy, dx):
    out = np.zeros_like(image)
    out[max(dy, 0) : image.shape[0] + min(dy, 0), max(dx, 0) : image.shape[1] + min(dx, 0)] = \
        image[max(-dy, 0) : image.shape[0] - max(dy, 0), max(-dx, 0) : image.shape[1] - max(dx, 0)]
    return out


a = filters.convolve2d(shift2d(photo, 5, 5), filters.SOBEL_X)
b = shift2d(filters.convolve2d(photo, filters.SOBEL_X), 5, 5)
gap = np.abs(a - b)
print(f"interior: max |f(t x) - t f(x)| = {gap[8:-8, 8:-8].max():.2e}; near the border: {gap.max():.2e}")

# %% [markdown]
# ## 3. Convolution in feature maps
#
# A convolution layer maps $C$ input feature maps to $F$ output maps. Each output map has its **own filter**,
# a $C \times K_h \times K_w$ array **shared among all spatial positions**, plus a bias:
#
# $$\text{out}[n, f, i, j] = b_f + \sum_{c}\sum_{u,v} x[n, c, s i + u, s j + v]\; w[f, c, u, v]$$
#
# with stride $s$ and zero padding $p$ added around the input. Arrays are `(N, C, H, W)`, filters `(F, C, Kh, Kw)`, as in torch.
#
# ### Exercise 3.1 — the output size
# Write `output_size(n, k, stride, padding)`: the number of positions of a kernel of size `k` along an input of
# size `n`, with `padding` zeros added on **each** side and the given stride.

# %% nbgrader={"grade": false, "grade_id": "output-size-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def output_size(n, k, stride=1, padding=0):
    """Output length of a convolution along one axis."""
    ### BEGIN SOLUTION
    return (n + 2 * padding - k) // stride + 1
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "output-size-tests", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# LeNet's C1 (32 -> 28 with 5x5), "same" padding, AlexNet's first layer (227, 11x11, stride 4 -> 55),
# and a stride that does not divide evenly; each checked against torch's actual output size.
results = {}
with own_work(*LIBRARY, stage=3, what="output_size"):
    for case in [(32, 5, 1, 0), (28, 3, 1, 1), (227, 11, 4, 0), (10, 3, 2, 1), (7, 3, 3, 0)]:
        results[case] = output_size(*case)
for (n, k, s, p), got in results.items():
    actual = torch.nn.functional.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p).shape[-1]
    check(got == actual, f"output_size(n={n}, k={k}, stride={s}, padding={p}) is {got}; that is not what a layer produces")
### BEGIN HIDDEN TESTS
rng_size = np.random.default_rng(302)
hidden_cases = []
while len(hidden_cases) < 8:
    n, k, s, p = (int(v) for v in (rng_size.integers(5, 60), rng_size.integers(1, 8), rng_size.integers(1, 5), rng_size.integers(0, 4)))
    if n + 2 * p >= k:
        hidden_cases.append((n, k, s, p))
with own_work(*LIBRARY, stage=3, what="output_size"):
    hidden_results = {case: output_size(*case) for case in hidden_cases}
for (n, k, s, p), got in hidden_results.items():
    actual = torch.nn.functional.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p).shape[-1]
    check(got == actual, f"output_size(n={n}, k={k}, stride={s}, padding={p}) is {got}; that is not what a layer produces")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.2 — the layer's forward pass, vectorised
# Write `conv_forward(x, w, b, stride, padding)` returning `(out, cache)` with `out` of shape `(N, F, Ho, Wo)`: the
# cross-correlation above. **No Python loop over pixels**: collect every input patch into a matrix (*im2col*) so
# that the whole layer is one matrix product, or loop over the $K_h \times K_w$ kernel offsets only.
# Return in `cache` whatever `conv_backward` will need.
#
# *im2col in numpy:* `np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))` views every window of a
# padded `xp` as an array `(N, C, Hp-kh+1, Wp-kw+1, kh, kw)`; slice `[:, :, ::stride, ::stride]`, move the channel and
# window axes together and reshape to `(N * Ho * Wo, C * kh * kw)`; then multiply by `w.reshape(F, -1).T`.

# %% nbgrader={"grade": false, "grade_id": "conv-forward-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_forward(x, w, b, stride=1, padding=0):
    """Convolution layer (cross-correlation): x (N, C, H, W), w (F, C, Kh, Kw), b (F,) -> (out, cache)."""
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    Ho, Wo = windows.shape[2], windows.shape[3]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    out = (cols @ w.reshape(F, -1).T + b).reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)
    return out, (x, w, stride, padding, cols)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "conv-forward-torch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Versus torch.nn.functional.conv2d for several strides and paddings, with C != F and a non-square kernel.
rng = np.random.default_rng(305)
for stride, padding in ((1, 0), (1, 1), (2, 1), (3, 2)):
    x_l, w_l, b_l = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    with own_work(*LIBRARY, stage=3, what="conv_forward"):
        out_l, _ = conv_forward(x_l, w_l, b_l, stride, padding)
    expected = torch.nn.functional.conv2d(torch.tensor(x_l), torch.tensor(w_l), torch.tensor(b_l), stride=stride, padding=padding)
    check_close(out_l, expected.numpy(), f"conv_forward with stride {stride}, padding {padding}", tol=1e-9, atol=1e-12)
### BEGIN HIDDEN TESTS
x_h, w_h, b_h = rng.normal(size=(3, 2, 11, 6)), rng.normal(size=(3, 2, 4, 3)), rng.normal(size=3)
with own_work(*LIBRARY, stage=3, what="conv_forward"):
    out_h, _ = conv_forward(x_h, w_h, b_h, 2, 3)
expected = torch.nn.functional.conv2d(torch.tensor(x_h), torch.tensor(w_h), torch.tensor(b_h), stride=2, padding=3)
check_close(out_h, expected.numpy(), "conv_forward of a random batch, stride 2, padding 3", tol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "conv-forward-vectorised", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Vectorised: on a (4, 3, 32, 32) input with 8 filters (4096 output pixels per map), the answer may run at most
# 300 lines of Python (a loop over pixels runs thousands; loops over kernel offsets are fine). Counted, not timed.
rng = np.random.default_rng(306)
x_v, w_v, b_v = rng.normal(size=(4, 3, 32, 32)), rng.normal(size=(8, 3, 3, 3)), rng.normal(size=8)
with own_work(*LIBRARY, stage=3, what="conv_forward"):
    (out_v, _), lines = python_lines(conv_forward, x_v, w_v, b_v, 1, 1)
check_shape(out_v, (4, 8, 32, 32), "conv_forward of a (4, 3, 32, 32) input with 8 filters, padding 1")
check(lines <= 300, f"conv_forward ran {lines} lines of Python on this input: vectorise it (im2col) instead of looping over pixels")
# ... and they must not grow with the image: a loop over output rows stays under 300 here, not on a larger input.
with own_work(*LIBRARY, stage=3, what="conv_forward"):
    _, lines_large = python_lines(conv_forward, rng.normal(size=(4, 3, 64, 64)), w_v, b_v, 1, 1)
check(lines_large <= lines + 10, f"conv_forward ran {lines} lines of Python on a 32x32 input and {lines_large} on a "
      f"64x64 one: the Python it runs must not grow with the image (loop over kernel offsets, not rows or pixels)")

# %% [markdown]
# ### Exercise 3.3 — the layer's backward pass
# Write `conv_backward(dout, cache)` returning `(dx, dw, db)`. With im2col the layer is `out = cols @ W.T + b`, so
# `dW = dout.T @ cols` and `dcols = dout @ W` as for an affine layer; then **col2im** adds every patch's gradient back to
# the input positions it came from (patches overlap, so contributions add). Loop over kernel offsets only.

# %% nbgrader={"grade": false, "grade_id": "conv-backward-impl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_backward(dout, cache):
    """Gradients (dx, dw, db) of conv_forward given dout (N, F, Ho, Wo)."""
    ### BEGIN SOLUTION
    x, w, stride, padding, cols = cache
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    Ho, Wo = dout.shape[2], dout.shape[3]
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, F)
    dw = (cols.T @ d2).T.reshape(w.shape)
    db = d2.sum(axis=0)
    dcols = (d2 @ w.reshape(F, -1)).reshape(N, Ho, Wo, C, kh, kw)
    dxp = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride] += dcols[..., u, v].transpose(0, 3, 1, 2)
    return dxp[:, :, padding : padding + H, padding : padding + W], dw, db
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "conv-backward-torch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# dx, dw and db versus torch autograd (float64), for strides and paddings where windows overlap and where they skip.
# (It runs your conv_forward first, to make the cache your conv_backward reads.)
rng = np.random.default_rng(307)
for stride, padding in ((1, 1), (2, 0), (2, 2)):
    x_b, w_b, b_b = rng.normal(size=(2, 3, 7, 9)), rng.normal(size=(5, 3, 3, 3)), rng.normal(size=5)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x_b, w_b, b_b))
    out_t = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding)
    dout_b = rng.normal(size=tuple(out_t.shape))
    out_t.backward(torch.tensor(dout_b))
    with own_work(*LIBRARY, stage=3, what="conv_backward"):
        _, cache_b = conv_forward(x_b, w_b, b_b, stride, padding)
        grads = conv_backward(dout_b, cache_b)
    check(len(grads) == 3, "conv_backward should return (dx, dw, db)")
    check_gradients(list(grads), [xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()],
                    [f"{g} (stride {stride}, padding {padding})" for g in ("dx", "dw", "db")])
### BEGIN HIDDEN TESTS
x_bh, w_bh, b_bh = rng.normal(size=(1, 2, 8, 5)), rng.normal(size=(3, 2, 2, 4)), rng.normal(size=3)
xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x_bh, w_bh, b_bh))
out_t = torch.nn.functional.conv2d(xt, wt, bt, stride=3, padding=1)
dout_bh = rng.normal(size=tuple(out_t.shape))
out_t.backward(torch.tensor(dout_bh))
with own_work(*LIBRARY, stage=3, what="conv_backward"):
    _, cache_bh = conv_forward(x_bh, w_bh, b_bh, 3, 1)
    grads = conv_backward(dout_bh, cache_bh)
check_gradients(list(grads), [xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()],
                [f"{g} of a random batch (stride 3, padding 1)" for g in ("dx", "dw", "db")])
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "conv-backward-vectorised", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Vectorised too: the backward pass of a (4, 3, 32, 32) input with 8 filters may run at most 300 lines of Python.
rng = np.random.default_rng(308)
x_vb, w_vb, b_vb = rng.normal(size=(4, 3, 32, 32)), rng.normal(size=(8, 3, 3, 3)), rng.normal(size=8)
dout_vb = rng.normal(size=(4, 8, 32, 32))
with own_work(*LIBRARY, stage=3, what="conv_backward"):
    _, cache_vb = conv_forward(x_vb, w_vb, b_vb, 1, 1)
    grads_vb, lines = python_lines(conv_backward, dout_vb, cache_vb)
check_shape(grads_vb[0], (4, 3, 32, 32), "dx of a (4, 3, 32, 32) input")
check(lines <= 300, f"conv_backward ran {lines} lines of Python on this input: loop over kernel offsets, not pixels")
with own_work(*LIBRARY, stage=3, what="conv_backward"):
    _, cache_large = conv_forward(rng.normal(size=(4, 3, 64, 64)), w_vb, b_vb, 1, 1)
    _, lines_large = python_lines(conv_backward, rng.normal(size=(4, 8, 64, 64)), cache_large)
check(lines_large <= lines + 10, f"conv_backward ran {lines} lines of Python on a 32x32 input and {lines_large} on a "
      f"64x64 one: the Python it runs must not grow with the image (loop over kernel offsets, not rows or pixels)")

# %% [markdown]
# A $1 \times 1$ convolution has no spatial extent: it is a matrix product over channels at every position.

# %% nbgrader={"grade": false, "grade_id": "one-by-one-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
x_11, w_11 = np.random.default_rng(309).normal(size=(2, 6, 5, 5)), np.random.default_rng(310).normal(size=(4, 6, 1, 1))
out_11, _ = layer.conv_forward(x_11, w_11, np.zeros(4))
print("1x1 convolution == matrix product over channels:",
      np.allclose(out_11, np.einsum("fc,nchw->nfhw", w_11[:, :, 0, 0], x_11)))

# %% [markdown]
# ## 4. Sub-sampling and invariance (LeNet-5)
#
# LeCun et al. follow each convolution with **sub-sampling**: "sub-sampling gradually introduces translation, scale
# and distortion invariance". Convolution alone is *equivariant* (its output moves with the input); pooling over
# $2 \times 2$ windows makes small moves matter less. Below, feature maps of a photo and of the same photo shifted by
# one pixel, compared before and after $2\times2$ max pooling, relative to how much the maps vary.

# %% nbgrader={"grade": false, "grade_id": "pooling-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
def relative_change(a, b):
    return float(np.abs(a - b).mean() / np.abs(a).mean())


maps = filters.convolve2d(photo, filters.SOBEL_X)[None, None]
maps_moved = filters.convolve2d(shift2d(photo, 0, 1), filters.SOBEL_X)[None, None]
print(f"{'feature maps':<24} relative change {relative_change(maps, maps_moved):.2f}")
for size in (2, 4):
    pooled = relative_change(layer.max_pool(np.abs(maps), size), layer.max_pool(np.abs(maps_moved), size))
    print(f"{f'after {size}x{size} max pooling':<24} relative change {pooled:.2f}")

# %% [markdown] nbgrader={"grade": true, "grade_id": "weight-sharing-question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Question (2 points).** Why do **locality** (small kernels) and **weight sharing** (one filter for all positions)
# suit images? Compare the number of parameters of a fully connected layer from a $32\times32$ image to
# $6 \times 28 \times 28$ outputs with LeNet's C1 (6 filters of $5\times5$), and say what each property assumes about images.
#
# ### BEGIN SOLUTION
# *Locality* assumes that the structure that matters at first (edges, corners, small textures) is made of nearby
# pixels: correlations between pixels fall off with distance, so a small kernel sees what is needed and ignores
# the rest. *Weight sharing* assumes stationarity: a pattern means the same wherever it appears, so the detector
# that works in one place works everywhere; this makes the layer translation-equivariant (shift the input, the
# feature map shifts). The saving is huge: a fully connected layer $1024 \to 4704$ needs $1024 \cdot 4704 + 4704
# \approx 4.8$ million parameters, C1 needs $6 \cdot (25 + 1) = 156$. Fewer parameters means less data needed and less
# overfitting, and the network cannot learn position-specific accidents; the cost is that it *relies* on these
# assumptions, which is why shuffling the pixels (stage 04) costs a CNN its edge over a fully connected net (its
# test error rises from under 1% to about 3%, worse than the FC net's 2%, which shuffling leaves unchanged).
# ### END SOLUTION

# %% nbgrader={"grade": false, "grade_id": "kernel-explorer", "locked": true, "schema_version": 3, "solution": false, "task": false}
if not coursekit.under_grading():
    from coursekit.explore.convolution import KernelExplorer

    display(KernelExplorer())

# %% [markdown]
# ## Summary
#
# An LTI system is a convolution with its impulse response; on images the same operation is a filter, flipped
# (convolution) or not (correlation, what layers compute); a convolution layer applies a bank of shared filters,
# vectorised as one matrix product with im2col; it is equivariant to translation away from the borders, and
# pooling adds approximate invariance. The reference pieces are in `coursekit.convolution`: `signals` (`shift`,
# `convolve`, `impulse_response`), `filters` (`convolve2d`, `correlate2d`, the kernels) and `layer` (`output_size`,
# `im2col`, `conv_forward`, `conv_backward`, `max_pool`, and `conv`, a node for the stage-02 engine); the
# explorers are `coursekit.explore.convolution.LTIExplorer` and `KernelExplorer`.
