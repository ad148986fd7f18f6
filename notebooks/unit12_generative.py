# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unit 12 — Generative models: a GAN, a VAE and a minimal DDPM
#
# Three ways to learn p(image) on MNIST, each trained here for a moment on the quick profile's
# 6,000 images (the full profile's results are in `docs/unit12_generative.md`): a GAN, a VAE on
# binarized pixels, and a small denoising diffusion model. Then we measure their samples with our
# own classifier instead of eyeballing them.
#
# Code: `pipeline.scratch.generative` (KL, reparameterisation, the diffusion schedule and sampler,
# Fréchet distance, class coverage), `pipeline.models.generative` (the networks),
# `pipeline.training.generative` (the training steps) and `pipeline.lessons.generative` (settings,
# sampling, figures).

# %%
from dataclasses import replace

import torch
from IPython.display import Image, display
from torch.distributions import Normal, kl_divergence

from pipeline.data import load_dataset
from pipeline.features import image_split
from pipeline.lessons import generative
from pipeline.plots import show
from pipeline.scratch.generative import (
    DiffusionSchedule,
    gaussian_kl,
    iterate_noising,
    q_sample,
    reparameterize,
)
from pipeline.units.unit12_generative import Unit12Params

torch.set_num_threads(1)  # small models train fastest on one thread; the cores stay free
mnist = load_dataset("mnist", "quick")
images, flat = image_split(mnist, flatten=False), image_split(mnist, flatten=True)
s = replace(generative.settings(Unit12Params(profile="quick")), timesteps=30, n_samples=64, ddpm_rows=1000)
print("train", images.X_train.shape, "test", images.X_test.shape)

# %% [markdown]
# ## The VAE's two pieces of maths
#
# The encoder gives μ and log σ² per latent dimension. The KL divergence of N(μ, σ²) from the
# prior N(0, 1) has a closed form, −½ (1 + log σ² − μ² − σ²); here it is beside
# `torch.distributions`:

# %%
mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
ours = gaussian_kl(mu, logvar)
theirs = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
ours, (ours - theirs).abs().max()

# %% [markdown]
# The reparameterisation z = μ + σ ε makes the sample differentiable: dz/dμ = 1 and
# dz/d(log σ²) = ε σ / 2, exactly what autograd finds.

# %%
mu.requires_grad_(True)
logvar.requires_grad_(True)
eps = torch.randn(4, 3, dtype=torch.float64)
reparameterize(mu, logvar, eps).sum().backward()
float((mu.grad - 1).abs().max()), float((logvar.grad - eps * torch.exp(0.5 * logvar.detach()) / 2).abs().max())

# %% [markdown]
# ## Training the VAE
#
# Binarized pixels (intensity > 0.5), a Bernoulli decoder, the negative ELBO in nats per image.
# Two epochs on 5,500 images; the last 500 validate. The full profile's 30 epochs on 55,000 images
# reach far lower.

# %%
vae = generative.train_vae(images.X_train, s)
generative.vae_test_metrics(vae.model, images.X_test, s.seed)

# %%
figures = generative.vae_figures(vae, images.X_test, images.y_test, generative.generate_vae_samples(vae, s), s.seed)
for name in ("vae_reconstructions", "vae_latent_map", "vae_interpolation"):
    print(name, "—", generative.CAPTIONS[name])
    display(Image(figures[name]))

# %% [markdown]
# ## The GAN
#
# The discriminator's update, then the generator's (non-saturating loss, real labels smoothed to
# 0.9, Adam with β1 = 0.5), on every batch. The same 64 noise vectors are drawn after each epoch;
# after two epochs on 3,000 images the digits have barely started to form.

# %%
gan = generative.train_gan(images.X_train[:3000], replace(s, gan_epochs=2))
display(Image(generative.png_bytes(gan.grids[-1])))
show(generative.gan_loss_figure(gan.history))

# %% [markdown]
# ## The diffusion model: forward process
#
# x_t from its closed form √ᾱ_t x_0 + √(1 − ᾱ_t) ε, against t + 1 single noising steps: the same
# mean and variance.

# %%
schedule = DiffusionSchedule.linear(s.timesteps)
x0 = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64).expand(20_000, -1)
t = 15
iterated = iterate_noising(schedule, x0, t, torch.Generator().manual_seed(0))
closed = q_sample(schedule, x0, torch.full((len(x0),), t), torch.randn(x0.shape, dtype=torch.float64))
print("mean, iterated:", iterated.mean(0).numpy().round(3), " closed form:", closed.mean(0).numpy().round(3))
print("var,  iterated:", iterated.var(0).numpy().round(3), " closed form:", closed.var(0).numpy().round(3),
      " 1 - ᾱ_t =", round(1 - float(schedule.alpha_bars[t]), 3))

# %% [markdown]
# One epoch of a narrow denoiser on 1,000 images, T = 30: the samples are blobs, but the forward
# and reverse strips show the process.

# %%
ddpm = generative.train_ddpm(images.X_train, s)
samples = generative.generate(gan, vae, ddpm, s)
for name, png in generative.ddpm_figures(ddpm, images.X_test, samples, s.seed).items():
    if name in ("ddpm_forward", "ddpm_reverse"):
        print(name, "—", generative.CAPTIONS[name])
        display(Image(png))

# %% [markdown]
# ## Measuring the samples
#
# Unit 7's network, trained for one epoch, gives 256 features per image and a predicted digit.
# The Fréchet distance compares Gaussians fitted to the features of each model's samples and of
# the test images; real training images give the floor. With 64 samples in 256 dimensions the
# distances are noisy and biased upwards; the full profile uses 500.

# %%
feature_net = generative.train_feature_net(flat, s)[generative.FEATURE_NET]
table, shares, _ = generative.sample_quality(feature_net, samples, flat, s)
display(table.round(3))
show(generative.quality_figure(table, shares))
