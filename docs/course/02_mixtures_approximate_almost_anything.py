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
# # Lesson 2 — Mixtures approximate almost anything
#
# **By the end of this lesson you will** know why a weighted sum of Gaussians is the classic
# explicit density model, be able to fit one by EM with `pushforward`, and measure how close it
# gets to a density that is nothing like a Gaussian as the number of components grows.
#
# A Gaussian mixture writes its density down:
#
# $$p(x) = \sum_{k=1}^{K} w_k\, \mathcal{N}(x;\, \mu_k, \Sigma_k), \qquad w_k \ge 0,\ \sum_k w_k = 1.$$
#
# With enough components it approximates any smooth density as closely as we like — each
# Gaussian covers a small patch. How close is measured by the Kullback–Leibler divergence from
# the true density $p^*$ to the mixture $p$,
# $\mathrm{KL}(p^* \| p) = \mathbb{E}_{x \sim p^*}[\log p^*(x) - \log p(x)]$: zero only when the
# two agree. On held-out points it is the mixture's negative log-likelihood (`nll_nats`) minus
# the true density's own (`true_entropy_nats`).

# %%
import itertools

import matplotlib.pyplot as plt
from IPython.display import Image, display

import pushforward
from pushforward import plots

data = pushforward.load_dataset("checkerboard")
print(data.train.shape, "training points; exact density known:", data.log_prob is not None)

# %% [markdown]
# `checkerboard` is uniform on eight squares: flat inside, zero outside, with sharp edges — as
# un-Gaussian as a density gets. We fit mixtures of $K = 1, 2, 4, \ldots, 64$ full-covariance
# Gaussians by EM (each from a k-means start) and score each on the test points.

# %%
ks = [1, 2, 4, 8, 16, 32, 64]
kl, runs = {}, {}
for k in ks:
    run = pushforward.train(
        "gmm", data="checkerboard", components=k, out=f"runs/lesson2-k{k}", progress=False
    )
    s = run.evaluate(["nll", "true_nll"])
    kl[k], runs[k] = s["nll_nats"] - s["true_entropy_nats"], run
    print(f"K = {k:2d}: KL(p* || p) = {kl[k]:.3f} nats")

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(ks, [kl[k] for k in ks], "o-")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("components K")
ax.set_ylabel("KL(p* || p), nats")
display(fig)
plt.close(fig)

# %%
assert kl[64] < 0.25 * kl[1]  # far closer with many components
assert all(
    kl[b] < kl[a] + 0.02 for a, b in itertools.pairwise(ks)
)  # and never much worse with more

# %% [markdown]
# Each doubling of $K$ brings the mixture closer. Here are the densities themselves: one
# Gaussian is a blurred blob over all the squares; a few dozen tile them.

# %%
for k in (1, 8, 64):
    model = runs[k].model
    png = plots.density_bytes(lambda x, m=model: m.log_prob(x), data.train[:20000], f"K = {k}")
    display(Image(png))

# %% [markdown]
# The price is parameters: each full-covariance component in $d$ dimensions has a weight, a
# mean ($d$ numbers) and a covariance ($d(d+1)/2$ numbers). In two dimensions that is cheap; in
# 784 (a 28×28 image) one component already needs over 300,000 numbers — lesson 3 follows that
# thread.
#
# ## Try this
#
# **1.** How many free parameters does the $K = 8$ mixture have in two dimensions? (The weights
# sum to one, so one of them is not free.) Write it as `answer_1`.

# %% tags=["solution"] jupyter={"source_hidden": true}
answer_1 = 8 * (1 + 2 + 3) - 1

# %% tags=["check"]
assert answer_1 == runs[8].model.n_parameters(), "a weight, 2 mean entries, 3 covariance entries"
print("correct")

# %% [markdown]
# **2.** `ring8` is itself a mixture of eight Gaussians. Fit $K = 8$ to it and compute its KL as
# above; write it as `answer_2`. Why is it so much smaller than the checkerboard's at $K = 8$?

# %% tags=["solution"] jupyter={"source_hidden": true}
ring = pushforward.train(
    "gmm", data="ring8", components=8, out="runs/lesson2-ring8", progress=False
)
s = ring.evaluate(["nll", "true_nll"])
answer_2 = s["nll_nats"] - s["true_entropy_nats"]

# %% tags=["check"]
assert abs(answer_2) < 0.02, "the model family contains the truth: EM finds it"
assert answer_2 < kl[8]
print(f"correct: {answer_2:.4f} nats")

# %% [markdown]
# **3.** Diagonal covariances (`covariance="diag"`) have fewer parameters. Fit $K = 16$
# diagonal Gaussians to the checkerboard; is its KL higher or lower than the full $K = 16$?
# Write the diagonal mixture's KL as `answer_3`.

# %% tags=["solution"] jupyter={"source_hidden": true}
diag = pushforward.train(
    "gmm",
    data="checkerboard",
    components=16,
    covariance="diag",
    out="runs/lesson2-diag",
    progress=False,
)
s = diag.evaluate(["nll", "true_nll"])
answer_3 = s["nll_nats"] - s["true_entropy_nats"]

# %% tags=["check"]
assert answer_3 > 0 and diag.model.n_parameters() < runs[16].model.n_parameters()
print(f"diagonal K = 16: {answer_3:.3f} nats; full K = 16: {kl[16]:.3f} nats")
