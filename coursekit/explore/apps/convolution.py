# ---
# jupyter:
#   coursekit:
#     stages: [03-convolution, 04-mnist]
# ---

# %% [markdown]
# # Convolution: the explorers
#
# *Deep learning for vision*, lecture part "convolution" (the course's stages 03 and 04): convolution as a linear
# time-invariant system, a kernel on a real photo, and MNIST digits with their pixels shuffled through nets that
# learned them either way. Every picture is redrawn when a control changes.

# %%
from IPython.display import display

import coursekit
from coursekit.data import load_mnist, transforms
from coursekit.explore.convolution import DigitBrowser, KernelExplorer, LTIExplorer
from coursekit.explore.stand_ins import digit_nets

coursekit.seed_everything(0)
DEVICE = coursekit.device()

# %% [markdown]
# ## A linear time-invariant system (stage 03)
#
# A signal $x$, an impulse response $h = f(\delta)$ and the output $y = x * h$; beside them the time-invariance
# check $f(t_k x) = t_k f(x)$ for a delay $k$: away from the ends the two orders agree, near them a finite signal
# shifts in zeros.

# %%
display(LTIExplorer())

# %% [markdown]
# ## A kernel on a photo (stage 03)
#
# A $3\times3$ kernel from the list, or typed into the grid, convolved with a photo (zero padding, the same size):
# blurs, edges along $x$ or $y$, the Laplacian. A kernel with negative entries gives a signed map (red positive,
# blue negative).

# %%
display(KernelExplorer())

# %% [markdown]
# ## Shuffled pixels (stage 04)
#
# One fixed permutation shuffles the pixels of every digit. A fully connected net does not care (a permutation of
# its input is a permutation of its weights), a CNN does: its small shared filters assume that neighbouring pixels
# belong together. Each net's prediction on 1,000 test digits (green when right), and the first-layer maps of the
# CNN trained on each kind of pixels; the menu narrows the slider to the digits a net gets wrong.
#
# *A stand-in for stage 04's nets:* each is trained here for one epoch on 4,000 MNIST digits (the stage trains on
# 60,000 for several), in about two seconds on a laptop's CPU, so its errors are several times the stage's; the
# lesson (the CNN loses more than the FC net when the pixels are shuffled) already shows.

# %%
mnist = load_mnist(DEVICE, download=False)  # from the course's data cache: `coursekit data fetch` puts it there
permutation = transforms.pixel_permutation(28 * 28, seed=2024)
original, shuffled = digit_nets(mnist.train_images[:4000], mnist.train_labels[:4000], permutation, epochs=1)
display(DigitBrowser(mnist.test_images[:1000], mnist.test_labels[:1000], permutation, original=original,
                     shuffled=shuffled))
