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
# original generator loss stalls at the start of training, what *mode collapse* looks like,
# what each of the usual remedies changes — measured, not asserted — and how a label given
# with the data lets you ask for a class.
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
# ## Conditioning: a disconnected base the data supplies
#
# The mixture base works because it gives $z$ eight separate pieces — but someone had to tell
# the network there are eight. Often the data says it: every digit comes with its class, every
# ring8 point with the mode it was drawn from. A **conditional GAN** takes the label $y$ as a
# second input, $G(z, y)$ (here a one-hot vector beside $z$), and its discriminator judges
# pairs, $D(x, y) = \psi(\phi(x)) + \langle e_y, \phi(x) \rangle$ — the *projection*
# discriminator of Miyato & Koyama (2018): an embedding $e_y$ per class, compared with the
# features of $x$. For each label, $G$ only has to push the connected Gaussian onto one
# connected mode; the label is the tear. `--conditional` trains it on any labelled data, and
# `label=` asks for a class.

# %%
cond = pushforward.train(
    "gan", data="ring8", steps=3000, conditional=True, out="runs/lesson6-cond", progress=False
)
scores["R1 + EMA + labels (conditional)"] = s = cond.evaluate(["modes", "conditional"])
print(
    f"{s['modes']} modes, {s['hq_fraction']:.0%} near a mode; the samples asked for each label "
    f"land at its own mode: {s['label_modes']} of 8 labels, {s['label_hq_fraction']:.0%} of them"
)
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, (title, x, colours) in zip(
    axes,
    [
        ("the default GAN", runs["R1 + EMA (the defaults)"].sample(1000, seed=0), "C1"),
        (
            "conditional: colour = asked label",
            cond.sample(1000, seed=0, label=torch.arange(8).repeat_interleave(125)),
            [f"C{c}" for c in torch.arange(8).repeat_interleave(125).tolist()],
        ),
    ],
    strict=True,
):
    ax.scatter(x[:, 0], x[:, 1], s=2, c=colours)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
display(fig)
plt.close(fig)

# %%
assert s["modes"] == 8 and s["label_modes"] == 8
assert s["label_hq_fraction"] > 0.5  # an untrained conditional GAN: under 5%

# %% [markdown]
# The same on digits: one row per class, each asked for by its label, and the data's own
# classifier reading the samples back.

# %%
digits = pushforward.train(
    "gan", data="digits", steps=800, conditional=True, out="runs/lesson6-digits", progress=False
)
rows = torch.arange(10).repeat_interleave(6)  # six of each class
grid = plots.samples_figure(
    digits.sample(60, seed=0, label=rows), digits.data.train, "asked for 0 to 9", nrow=6,
    row_labels=[f"class {c}" for c in range(10)],
)  # fmt: skip
display(Image(grid))
read = digits.evaluate(["conditional"])
print(f"the classifier reads {read['cond_accuracy']:.0%} of the samples as the asked class")
assert read["cond_accuracy"] > 0.8  # chance: 10%

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

# %% [markdown]
# **3.** Which digit does the conditional GAN draw worst — the class whose samples the
# classifier reads as that class least often? `read["cond_accuracy_per_class"]` lists the
# fractions. Write the class as `answer_3`.

# %% tags=["solution"] jupyter={"source_hidden": true}
per_class = read["cond_accuracy_per_class"]
answer_3 = per_class.index(min(per_class))

# %% tags=["check"]
assert read["cond_accuracy_per_class"][answer_3] == min(read["cond_accuracy_per_class"])
print(f"correct: class {answer_3}")
