# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 1 — A Gaussian, pushed forward
#
# **By the end of this lesson you will** be able to say what it means to *push a distribution
# forward* through a map, compute the density that comes out when the map is invertible, and
# watch a neural network learn such a map from data — the idea every model in this course is
# built on.
#
# Take a random variable $z$ with a simple distribution, a standard Gaussian, and a function
# $f$. The variable $x = f(z)$ has a new distribution, the *pushforward* of the Gaussian through
# $f$. Sampling from it is easy: draw $z$, apply $f$. Its density is another matter. When $f$ is
# invertible and smooth, the change-of-variables formula gives it:
#
# $$p_x(x) = p_z\big(f^{-1}(x)\big)\,\left|\frac{d f^{-1}}{dx}(x)\right| = \frac{p_z(z)}{|f'(z)|}\Big|_{z = f^{-1}(x)}.$$
#
# Where $f$ stretches space ($|f'|$ large), the density thins; where it squeezes, the density
# piles up. A neural network is just a very flexible $f$ — but usually not an invertible one,
# and in many dimensions, which is why the VAE and the GAN never write $p_x$ down.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

import pushforward

_ = torch.manual_seed(0)  # the draws below are the same on every run

# %% [markdown]
# ## In one dimension, by hand
#
# Let $f(z) = z + 0.8 \tanh(2z)$. Its slope $f'(z) = 1 + 1.6\,(1 - \tanh^2 2z)$ is above 1
# everywhere, steepest at 0: the map pushes mass away from the middle. We draw 200,000 samples
# of $x = f(z)$ and hold their histogram against the formula.


# %%
def f(z: torch.Tensor) -> torch.Tensor:
    return z + 0.8 * torch.tanh(2 * z)


def f_slope(z: torch.Tensor) -> torch.Tensor:
    return 1 + 1.6 * (1 - torch.tanh(2 * z) ** 2)


def normal_pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)


x = f(torch.randn(200_000))
z_grid = torch.linspace(-4, 4, 2001)
x_grid, p_x = f(z_grid), normal_pdf(z_grid) / f_slope(z_grid)  # the formula, along the map

counts, edges = torch.histogram(x, bins=80, range=(-3.5, 3.5), density=True)
centres = (edges[:-1] + edges[1:]) / 2
formula_at_centres = torch.from_numpy(np.interp(centres.numpy(), x_grid.numpy(), p_x.numpy()))
gap = float((counts - formula_at_centres).abs().max())

fig, ax = plt.subplots(figsize=(6, 3))
ax.stairs(counts, edges, fill=True, alpha=0.4, label="histogram of f(z)")
ax.plot(x_grid, p_x, "k", lw=1.5, label="p_z(z) / |f'(z)|")
ax.plot(z_grid, normal_pdf(z_grid), "--", color="gray", label="p_z (before)")
ax.set_xlim(-3.5, 3.5)
ax.legend(fontsize=8)
display(fig)
plt.close(fig)
print(f"largest gap between histogram and formula: {gap:.4f}")

# %%
assert gap < 0.02  # the formula is the histogram, up to sampling noise

# %% [markdown]
# The dip in the middle is where $f$ is steepest: it stretches a small interval of $z$ into a
# long one of $x$, so the same probability is spread thinner. A single Gaussian, pushed through a
# smooth map, became a distribution with two bumps.
#
# ## In two dimensions: a ring from a Gaussian
#
# The same works in the plane. Here $f$ keeps each point's direction and replaces its distance
# from the origin $r = |z|$ by $1 + 0.1\,(r - 1)$: the Gaussian's mass is gathered onto a thin
# ring of radius about 1. Every point of the ring came from a ray of $z$-space; the colours show
# which.

# %%
z = torch.randn(5000, 2)
r = z.norm(dim=1, keepdim=True)
ring = z / r * (1 + 0.1 * (r - 1))
angle = torch.atan2(z[:, 1], z[:, 0])

fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
axes[0].scatter(z[:, 0], z[:, 1], c=angle, cmap="hsv", s=2)
axes[0].set_title("z ~ N(0, I)")
axes[1].scatter(ring[:, 0], ring[:, 1], c=angle, cmap="hsv", s=2)
axes[1].set_title("f(z): a ring")
for a in axes:
    a.set_aspect("equal")
    a.set_xlim(-3, 3)
    a.set_ylim(-3, 3)
display(fig)
plt.close(fig)
radius = ring.norm(dim=1)
print(f"radius of the ring: {float(radius.mean()):.3f} ± {float(radius.std()):.3f}")

# %%
assert abs(float(radius.mean()) - 1.0) < 0.05 and float(radius.std()) < 0.1

# %% [markdown]
# ## A learned map: a GAN on eight modes
#
# Now let a network find $f$. `ring8` is eight small Gaussian blobs on a circle. A GAN's
# generator $G$ is a neural network pushing $z \sim N(0, I)$ forward; a second network, the
# discriminator, tells $G$ where its samples differ from the data. One call trains it (about a
# minute on two cores) and keeps, every so often, a *frame* of what $G$ does to fixed inputs.
# Displaying the run shows its card: the data, its numbers and its samples.

# %%
run = pushforward.train("gan", data="ring8", steps=4000, out="runs/lesson1-gan", progress=False)
scores = run.evaluate(["modes"])
run

# %%
print(f"modes captured: {scores['modes']} of 8; samples near a mode: {scores['hq_fraction']:.0%}")
assert scores["modes"] >= 7 and scores["hq_fraction"] > 0.5

# %% [markdown]
# The explorer replays the training. Drag the timeline: on the left, straight lines of the
# $z$-plane and fixed draws of $z$ coloured by where they sit; in the middle, the same lines and
# points after $G$ — the plane folding itself onto the eight modes; on the right, where the
# discriminator calls the data real.

# %%
run.explore(height=620)

# %% [markdown]
# Notice what $G$ cannot do: it is continuous, and the Gaussian is one connected blob, so the
# samples between two modes never vanish entirely — $G$ only makes the bridges thin. Lesson 6
# comes back to this.
#
# ## Try this
#
# **1.** Push $z \sim N(0, 1)$ through $f(z) = 2z + 1$. What is the density of $x$ at $x = 1$?
# Write it as `answer_1`.

# %% tags=["solution"] jupyter={"source_hidden": true}
answer_1 = normal_pdf(torch.tensor(0.0)).item() / 2  # z = (x - 1) / 2 = 0, and f' = 2

# %% tags=["check"]
assert abs(answer_1 - 1 / (2 * math.sqrt(2 * math.pi))) < 1e-6, "p_z(0) divided by |f'| = 2"
print("correct")

# %% [markdown]
# **2.** Push $z \sim N(0, 1)$ through $f(z) = z^3$. At which $x$ is the density of $x$
# infinite? Write it as `answer_2`.

# %% tags=["solution"] jupyter={"source_hidden": true}
answer_2 = 0.0  # f'(0) = 0: the map squeezes a neighbourhood of 0 into a point

# %% tags=["check"]
assert answer_2 == 0.0, "where is f' zero?"
print("correct")

# %% [markdown]
# **3.** Train the GAN for only 200 steps (`steps=200`, another `out=`). How many modes does it
# capture? Write the count as `answer_3`, and look at its explorer: what has $G$ not yet done?

# %% tags=["solution"] jupyter={"source_hidden": true}
short = pushforward.train("gan", data="ring8", steps=200, out="runs/lesson1-short", progress=False)
answer_3 = short.evaluate(["modes"])["modes"]

# %% tags=["check"]
assert answer_3 == short.evaluate(["modes"], write=False)["modes"]
assert answer_3 <= scores["modes"]  # fewer steps, no more modes than the full run
print(f"correct: {answer_3} modes after 200 steps")
