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
# # Lesson 6 — The GAN
#
# **By the end of this lesson you will** know the two-player game a GAN plays, why its
# original generator loss stalls at the start of training, what *mode collapse* looks like, and
# what each of the usual remedies changes — measured, not asserted.
#
# A generator $G$ pushes $z \sim N(0, I)$ forward (lesson 1); a discriminator $D$ outputs the
# probability that its input is real. They play
#
# $$\min_G \max_D \; \mathbb{E}_{x \sim p^*}\big[\log D(x)\big] + \mathbb{E}_{z}\big[\log\big(1 - D(G(z))\big)\big].$$
#
# $D$ never writes a density down; it only tells $G$ which way its samples differ from the data.

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

import pushforward
from pushforward import plots
from pushforward.models.gan import PLAIN_GAN
from pushforward.models.objectives import GAN_LOSSES

# %% [markdown]
# ## The saturating loss
#
# In the game as written, $G$ minimises $\log(1 - D(G(z)))$. Early in training $D$ easily
# rejects the fakes, $D(G(z)) \approx 0$, and there this loss is flat: $G$ gets almost no
# gradient. The *non-saturating* loss maximises $\log D(G(z))$ instead — the same fixed point,
# a strong gradient exactly where $G$ is bad. Here are the gradients of both (the package's own
# loss functions) with respect to $D$'s logit on a fake sample.

# %%
p = torch.linspace(0.001, 0.999, 400)
logits = torch.log(p / (1 - p)).requires_grad_(True)
grads = {}
for name in ("minimax", "ns"):
    g_loss = GAN_LOSSES[name][1]
    (g,) = torch.autograd.grad(g_loss(logits) * len(logits), logits)  # per-sample gradients
    grads[name] = g.abs().detach()

fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogy(p, grads["minimax"], label="minimax: log(1 - D(G(z)))")
ax.semilogy(p, grads["ns"], label="non-saturating: -log D(G(z))")
ax.set_xlabel("D(G(z)): how real the fake looks to D")
ax.set_ylabel("|gradient| for G")
ax.legend(fontsize=8)
display(fig)
plt.close(fig)

# %%
at = int((p - 0.01).abs().argmin())  # a fake D calls 1% real
print(
    f"at D(G(z)) = 0.01: minimax {grads['minimax'][at]:.4f}, non-saturating {grads['ns'][at]:.4f}"
)
assert grads["ns"][at] > 50 * grads["minimax"][at]

# %% [markdown]
# ## Mode collapse, and its remedies
#
# `ring8` has eight modes. A plain GAN (Adam, two hidden layers, nothing else) tends to cover
# some of them and drop or smear others — *mode collapse*: $G$ finds a few outputs $D$ accepts
# and stays there. The remedies change the game:
#
# - **R1** penalises $D$'s gradient on real data, so $D$ stays smooth and $G$'s signal stays
#   useful; an **EMA** of $G$'s weights averages out the oscillation of the game
#   (pushforward's defaults);
# - **packing** (PacGAN) shows $D$ several samples at once, so a batch of near-identical fakes
#   is easy to reject;
# - a **mixture base** gives $z$ separate clusters, so $G$ does not have to tear one Gaussian
#   into eight pieces (lesson 1's continuity argument).
#
# We train each for the same 3,000 steps and count, over 2,500 samples, the modes captured and
# the share of samples within three standard deviations of a mode.

# %%
configs = {
    "plain GAN": dict(PLAIN_GAN),
    "packing (pack 4)": {**PLAIN_GAN, "pack": 4},
    "R1 + EMA (the defaults)": {},
    "R1 + EMA + mixture base": {"noise": "mixture", "noise_components": 8},
}
scores, runs = {}, {}
for i, (name, options) in enumerate(configs.items()):
    out = f"runs/lesson6-{i}"
    runs[name] = pushforward.train(
        "gan", data="ring8", steps=3000, out=out, progress=False, **options
    )
    scores[name] = runs[name].evaluate(["modes"])
    s = scores[name]
    print(f"{name:>24}: {s['modes']} modes, {s['hq_fraction']:.0%} near a mode")

ref = runs["plain GAN"].data.train[:20000]
log_p = runs["plain GAN"].data.log_prob
for name, run in runs.items():
    display(Image(plots.samples_figure(run.sample(1000, seed=0), ref, name, log_p)))

# %%
plain, default = scores["plain GAN"], scores["R1 + EMA (the defaults)"]
assert default["modes"] == 8
assert default["hq_fraction"] > plain["hq_fraction"]
assert scores["R1 + EMA + mixture base"]["hq_fraction"] > plain["hq_fraction"]

# %% [markdown]
# One seed is an anecdote: `pushforward experiment mode-collapse` runs these configurations and
# more over several seeds, on ring8 and grid25, beside the published numbers (its page in these
# docs). The explorer of the default run shows the fight itself: the plane folding onto the
# modes while the discriminator's map flattens.

# %%
runs["R1 + EMA (the defaults)"].explore(height=620)

# %% [markdown]
# ## Try this
#
# **1.** At which value of $D(G(z))$ are the two losses' gradients equal? Write it as
# `answer_1`.

# %% tags=["solution"] jupyter={"source_hidden": true}
answer_1 = 0.5  # |d/dl log(1 - s)| = s and |d/dl log s| = 1 - s meet at s = 1/2

# %% tags=["check"]
middle = int((p - answer_1).abs().argmin())
assert abs(grads["ns"][middle] - grads["minimax"][middle]) < 0.01
print("correct")

# %% [markdown]
# **2.** Which configuration put the largest share of its samples near a mode? Write its name
# (a key of `configs`) as `answer_2`.

# %% tags=["solution"] jupyter={"source_hidden": true}
answer_2 = max(scores, key=lambda n: scores[n]["hq_fraction"])

# %% tags=["check"]
assert scores[answer_2]["hq_fraction"] == max(s["hq_fraction"] for s in scores.values())
print(f"correct: {answer_2}")
