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
# # Lesson 4 — The VAE
#
# **By the end of this lesson you will** know the two networks of a variational autoencoder and
# the bound it maximises, be able to read its two terms off a training run, and use the trained
# model to reconstruct, interpolate and walk its latent plane.
#
# A VAE is an implicit model with a helper. Its decoder pushes $z \sim N(0, I)$ forward to a
# distribution $p(x \mid z)$ over images, like the generator of lesson 1. To train it we need
# $\log p(x)$, which would mean integrating over every $z$; instead an encoder proposes, for
# each image, a Gaussian $q(z \mid x) = N(\mu(x), \operatorname{diag}\sigma^2(x))$ of the codes
# likely to have made it, and the model maximises the evidence lower bound (ELBO):
#
# $$\log p(x) \;\ge\; \underbrace{\mathbb{E}_{q(z \mid x)}\big[\log p(x \mid z)\big]}_{\text{reconstruction}} \;-\; \underbrace{\mathrm{KL}\big(q(z \mid x)\,\|\,p(z)\big)}_{\text{distance from the prior}}.$$
#
# The expectation is estimated with one draw $z = \mu + \sigma \odot \epsilon$,
# $\epsilon \sim N(0, I)$ — the *reparameterisation* that lets gradients flow through the
# sampling into the encoder.

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

import pushforward
from pushforward import plots

run = pushforward.train(
    "vae", data="digits", latent_dim=2, hidden=256, epochs=60, out="runs/lesson4", progress=False
)
scores = run.evaluate(["elbo", "latent"])
run

# %% [markdown]
# ## The ELBO's two terms
#
# Every logged row of `metrics.jsonl` holds the batch's reconstruction term (`recon`, nats per
# image, higher is better) and its KL term (`kl`). Early on the decoder ignores $z$ and the KL is
# near zero; as the encoder starts to carry information, the reconstruction improves and the KL
# — the price of that information — rises.

# %%
history = run.history()
steps = [r["step"] for r in history]
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(steps, [r["recon"] for r in history])
axes[0].set_title("reconstruction E[log p(x|z)]")
axes[1].plot(steps, [r["kl"] for r in history], color="C1")
axes[1].set_title("KL(q(z|x) || p(z))")
for a in axes:
    a.set_xlabel("step")
display(fig)
plt.close(fig)

# %%
first, last = history[0], history[-1]
assert last["recon"] > first["recon"] + 5  # nats per image: the decoder learned to reconstruct
assert last["kl"] > first["kl"]  # and paid for it with information in z
assert scores["active_units"] == 2  # both latent dimensions carry information

# %% [markdown]
# ## Reconstructions and interpolations
#
# Encode a held-out digit to its mean code and decode it: the top row of each pair is the
# image, the bottom its reconstruction through a two-number bottleneck. Then decode the straight
# line between the codes of two digits.

# %%
x, x_hat = run.reconstructions(8)
display(Image(plots.grid_figure(torch.cat([x, x_hat]), "held-out / reconstructed", nrow=8)))
lines = run.interpolations(4, steps=8)
display(Image(plots.grid_figure(lines, "interpolations in z", nrow=8)))

# %% [markdown]
# ## The latent plane
#
# With a 2-d $z$ the whole code space is a plane. The encoder's means of the test digits,
# coloured by class, show how it arranged them; in the explorer, hover over the plane to see
# the decoder's image at each point, and click two points for the path between them.

# %%
z, labels = run.latents()
display(Image(plots.latent_bytes(z, labels, "encoder means of test digits")))
run.explore(height=820)

# %% [markdown]
# ## What β does
#
# Weighting the KL term by $\beta$ trades the two terms: $\beta > 1$ pushes every $q(z \mid x)$
# towards the prior (smoother, blurrier, less information in $z$), $\beta < 1$ lets the codes
# spread out and reconstruct better.
#
# ## Try this
#
# **1.** Train the same VAE with `beta=4.0`. Is its final KL term higher or lower? Write the
# final `kl` of that run as `answer_1`.

# %% tags=["solution"] jupyter={"source_hidden": true}
heavy = pushforward.train(
    "vae", data="digits", latent_dim=2, hidden=256, epochs=60, beta=4.0,
    out="runs/lesson4-beta4", progress=False,
)  # fmt: skip
answer_1 = heavy.history()[-1]["kl"]

# %% tags=["check"]
assert answer_1 < last["kl"], "a heavier KL weight leaves less information in z"
print(f"correct: KL {answer_1:.2f} with beta 4 against {last['kl']:.2f} with beta 1")

# %% [markdown]
# **2.** The ELBO is a *lower* bound. Evaluate the importance-weighted bound with `k=100`
# (`run.evaluate(["nll"], k=100)`, reported as a negative log-likelihood) and write
# $-$`nll_nats` as `answer_2`: is it above or below the ELBO?

# %% tags=["solution"] jupyter={"source_hidden": true}
answer_2 = -run.evaluate(["nll"], k=100, write=False)["nll_nats"]

# %% tags=["check"]
assert answer_2 > scores["elbo"], "more importance samples, a tighter (higher) bound"
print(f"correct: IWAE-100 {answer_2:.2f} nats above the ELBO {scores['elbo']:.2f}")
