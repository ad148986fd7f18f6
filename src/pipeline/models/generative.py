"""Unit 12's generative networks for 28 x 28 digits, and the prediction functions the registry stores.

- `Generator` / `Discriminator`: an MLP GAN (noise z (B, z_dim) -> image (B, 784) in [-1, 1] by
  tanh; image -> one real/fake logit), batch norm and LeakyReLU in the generator as in DCGAN.
- `VAE`: an MLP encoder to a Gaussian latent (μ, log σ²) and a decoder to one Bernoulli logit per
  pixel (binarized MNIST).
- `Denoiser`: a small U-Net that predicts the noise in a noised image x_t (B, 1, 28, 28) given its
  timestep t (B,), for the DDPM; the timestep enters as a sinusoidal embedding added in every block.

``predict_images`` (generator: noise -> images in [0, 1]) and ``predict_neg_elbo`` (VAE: images ->
negative ELBO per image, in nats) are what the registered models predict
(``pipeline.training.export.TorchModel``): plain arrays in, plain arrays out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.scratch.generative import bernoulli_nll, gaussian_kl, reparameterize

IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE


class Generator(nn.Module):
    """Noise (B, z_dim) -> images (B, 784) in [-1, 1]: dense layers widening to the image."""

    def __init__(self, z_dim: int = 64, hidden: tuple[int, ...] = (256, 512, 1024)):
        super().__init__()
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        width = z_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.LeakyReLU(0.2)]
            width = size
        layers += [nn.Linear(width, PIXELS), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)  # (B, 784)


class Discriminator(nn.Module):
    """Images (B, 784) in [-1, 1] -> one logit per image (B,): real (high) or generated (low)."""

    def __init__(self, hidden: tuple[int, ...] = (512, 256), dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        width = PIXELS
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(-1)  # (B,)


class GAN(nn.Module):
    """The generator and the discriminator as one module, for the shared training loop."""

    def __init__(self, z_dim: int = 64):
        super().__init__()
        self.generator = Generator(z_dim)
        self.discriminator = Discriminator()


class VAE(nn.Module):
    """Binary images (B, 784) -> (pixel logits (B, 784), μ (B, d), log σ² (B, d)).

    Encoder 784-h1-h2 -> (μ, log σ²); z = μ + σ ε; decoder d-h2-h1-784 gives Bernoulli logits.
    """

    def __init__(self, latent_dim: int = 32, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        self.latent_dim = latent_dim
        encoder: list[nn.Module] = []
        width = PIXELS
        for size in hidden:
            encoder += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.encoder = nn.Sequential(*encoder)
        self.to_mu = nn.Linear(width, latent_dim)
        self.to_logvar = nn.Linear(width, latent_dim)
        decoder: list[nn.Module] = []
        width = latent_dim
        for size in reversed(hidden):
            decoder += [nn.Linear(width, size), nn.ReLU()]
            width = size
        decoder.append(nn.Linear(width, PIXELS))
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x.flatten(1))  # (B, h2)
        return self.to_mu(h), self.to_logvar(h)  # (B, d), (B, d)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # (B, 784) logits

    def forward(self, x: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        eps = torch.randn_like(mu) if eps is None else eps
        return self.decode(reparameterize(mu, logvar, eps)), mu, logvar


def neg_elbo_terms(vae: VAE, x: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(reconstruction -log p(x|z), KL(q(z|x) || p(z))) per image (B,), in nats, one z per image."""
    logits, mu, logvar = vae(x, eps)
    return bernoulli_nll(logits, x.flatten(1)), gaussian_kl(mu, logvar)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding (B, dim) of integer timesteps t (B,), as the Transformer's positions."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Block(nn.Module):
    """conv-norm-SiLU twice with the timestep's embedding added between, and a residual path."""

    def __init__(self, c_in: int, c_out: int, time_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(min(8, c_out), c_out)
        self.time = nn.Linear(time_dim, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = nn.functional.silu(self.norm1(self.conv1(x)))  # (B, c_out, H, W)
        h = h + self.time(emb)[:, :, None, None]
        h = nn.functional.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class Denoiser(nn.Module):
    """ε_θ(x_t, t): noised images (B, 1, 28, 28) and timesteps (B,) -> predicted noise (B, 1, 28, 28).

    A two-level U-Net: 28 -> 14 -> 7 and back, with skip connections at 28 and 14, ``channels``
    wide at full resolution and twice that below.
    """

    def __init__(self, channels: int = 16, time_dim: int = 64):
        super().__init__()
        c = channels
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.down1 = _Block(c, c, time_dim)
        self.down2 = _Block(c, 2 * c, time_dim)
        self.mid = _Block(2 * c, 2 * c, time_dim)
        self.up2 = _Block(4 * c, 2 * c, time_dim)
        self.up1 = _Block(3 * c, c, time_dim)
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.time_dim))  # (B, time_dim)
        h1 = self.down1(self.inp(x), emb)  # (B, c, 28, 28)
        h2 = self.down2(nn.functional.avg_pool2d(h1, 2), emb)  # (B, 2c, 14, 14)
        h3 = self.mid(nn.functional.avg_pool2d(h2, 2), emb)  # (B, 2c, 7, 7)
        u2 = self.up2(torch.cat([nn.functional.interpolate(h3, scale_factor=2), h2], dim=1), emb)  # (B, 2c, 14, 14)
        u1 = self.up1(torch.cat([nn.functional.interpolate(u2, scale_factor=2), h1], dim=1), emb)  # (B, c, 28, 28)
        return self.out(u1)


# --- what the registered models predict -------------------------------------------------------------

def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def predict_images(module: Generator, meta: dict[str, Any], X: Any) -> np.ndarray:
    """The generator's images (n, 784) in [0, 1] for noise vectors X (n, z_dim)."""
    z = torch.as_tensor(np.asarray(X, dtype=np.float32), device=_device(module))
    if z.dim() != 2 or z.shape[1] != module.z_dim:
        raise ValueError(f"expected noise of shape (n, {module.z_dim}), got {tuple(z.shape)}")
    return ((module(z) + 1.0) / 2.0).float().cpu().numpy()


def binarize(images: Any, threshold: float = 0.5) -> Tensor:
    """Images as binary pixels (n, 784) float32: intensity in [0, 1] (or uint8 in 0..255) > threshold."""
    x = torch.as_tensor(np.asarray(images))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return (x.reshape(len(x), -1) > threshold).float()


def elbo_terms(vae: VAE, x: Tensor, seed: int = 0, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """(reconstruction -log p(x|z), KL) per image (n,), in nats, of binary images x (n, 784): the
    exact KL and a one-sample reconstruction term, ε drawn from a CPU generator seeded ``seed`` (so
    the estimate is deterministic); their sum is the negative ELBO."""
    generator = torch.Generator().manual_seed(seed)
    device, recon, kl = _device(vae), [], []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start: start + batch_size].to(device)
            eps = torch.randn(len(xb), vae.latent_dim, generator=generator).to(device)
            r, k = neg_elbo_terms(vae, xb, eps)
            recon.append(r.float().cpu())
            kl.append(k.float().cpu())
    return torch.cat(recon), torch.cat(kl)


def predict_neg_elbo(module: VAE, meta: dict[str, Any], X: Any) -> np.ndarray:
    """Negative ELBO per image (n,) in nats for images X (n, 784) or (n, 28, 28), intensities in
    [0, 1] or uint8, binarized at ``meta["threshold"]`` as in training: low for digit-like images."""
    x = binarize(X, float(meta.get("threshold", 0.5)))
    if x.shape[1] != PIXELS:
        raise ValueError(f"expected images of {PIXELS} pixels, got {x.shape[1]}")
    recon, kl = elbo_terms(module, x, int(meta.get("seed", 0)))
    return (recon + kl).numpy()
