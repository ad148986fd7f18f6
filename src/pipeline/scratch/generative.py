"""The mathematics of Unit 12's generative models, written out: the VAE's KL term and
reparameterisation, the DDPM noise schedule, forward process and ancestral sampler, and the
Fréchet distance and class coverage that measure sample quality.

VAE (Kingma & Welling, 2014). The encoder gives q(z|x) = N(μ, diag σ²) with ``logvar`` = log σ²;
its KL divergence from the prior N(0, I) has a closed form, summed over the d latent dimensions:

    KL(q || p) = -1/2 · Σ_j (1 + log σ_j² - μ_j² - σ_j²)

and ``z = μ + σ · ε`` with ε ~ N(0, I) (the reparameterisation) makes a sample differentiable in μ
and log σ²: dz/dμ = 1, dz/d(log σ²) = ε · σ / 2.

DDPM (Ho, Jain & Abbeel, 2020). The forward process adds Gaussian noise in T steps,
q(x_t | x_{t-1}) = N(√(1 - β_t) x_{t-1}, β_t I). With α_t = 1 - β_t and ᾱ_t = Π_{s<=t} α_s it has a
closed form from x_0, so training can jump to any t in one draw:

    q(x_t | x_0) = N(√ᾱ_t · x_0, (1 - ᾱ_t) I)

The reverse (ancestral) sampler starts at x_T ~ N(0, I) and steps back with a network ε_θ that
predicts the noise:

    x_{t-1} = (x_t - β_t / √(1 - ᾱ_t) · ε_θ(x_t, t)) / √α_t + σ_t z,   σ_t² = β_t,  z ~ N(0, I)

(no noise at the last step). Timesteps are 1..T in the paper and 0..T-1 here (index t holds β_{t+1}).

Fréchet distance between Gaussians fitted to two sets of features (Heusel et al., 2017, on Inception
features; here on our own MNIST classifier's):

    FD = ||μ_1 - μ_2||² + Tr(Σ_1 + Σ_2 - 2 (Σ_1 Σ_2)^{1/2})
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

N_DIGITS = 10
PRESENT_SHARE = 0.01  # a class counts as present when at least 1 % of the samples are predicted as it


# --- VAE -------------------------------------------------------------------------------------------

def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) || N(0, I)) per row, in nats: mu, logvar (B, d) -> (B,)."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = μ + σ · ε with σ = exp(log σ² / 2): a sample of N(μ, σ²) differentiable in μ and log σ²."""
    return mu + torch.exp(0.5 * logvar) * eps


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log p(x | z) of binary pixels under Bernoulli(sigmoid(logits)), summed over the pixels,
    in nats: logits, x (B, ...) -> (B,)."""
    nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return nll.flatten(1).sum(dim=1)


# --- DDPM ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiffusionSchedule:
    """β_t, α_t = 1 - β_t and ᾱ_t = Π_{s<=t} α_s for t = 0..T-1, float64 tensors (T,)."""

    betas: Tensor

    @classmethod
    def linear(cls, timesteps: int, beta_start: float | None = None, beta_end: float | None = None
               ) -> DiffusionSchedule:
        """The DDPM paper's linear schedule, 1e-4 to 0.02 over T = 1000 steps; for other T both ends
        are scaled by 1000 / T (as Nichol & Dhariwal do) so that x_T is as close to pure noise."""
        if timesteps < 2:
            raise ValueError(f"a diffusion needs at least 2 timesteps, got {timesteps}")
        scale = 1000.0 / timesteps
        start = 1e-4 * scale if beta_start is None else beta_start
        end = min(0.02 * scale, 0.999) if beta_end is None else beta_end
        if not 0.0 < start <= end < 1.0:
            raise ValueError(f"betas must satisfy 0 < start <= end < 1, got {start} and {end}")
        return cls(torch.linspace(start, end, timesteps, dtype=torch.float64))

    @property
    def timesteps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> Tensor:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> Tensor:
        return torch.cumprod(self.alphas, dim=0)


def _per_row(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """values[t] (B,) shaped (B, 1, ..., 1) to broadcast over rows like ``like``, in its dtype."""
    return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def q_sample(schedule: DiffusionSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = √ᾱ_t · x_0 + √(1 - ᾱ_t) · ε, the forward process's closed form: x0, noise (B, ...),
    t (B,) int64 in 0..T-1."""
    alpha_bar = _per_row(schedule.alpha_bars, t, x0)
    return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise


def iterate_noising(schedule: DiffusionSchedule, x0: Tensor, t: int, generator: torch.Generator | None = None
                    ) -> Tensor:
    """x_t by running the forward process step by step, x_s = √(1 - β_s) x_{s-1} + √β_s ε_s for
    s = 0..t: what `q_sample` shortcuts (used to check it)."""
    x = x0
    for s in range(t + 1):
        beta = float(schedule.betas[s])
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = math.sqrt(1.0 - beta) * x + math.sqrt(beta) * noise
    return x


def forward_moments(schedule: DiffusionSchedule, t: int) -> tuple[float, float]:
    """(scale, variance) of x_t given x_0 by the one-step recursion: scale_t = √α_t · scale_{t-1},
    var_t = α_t · var_{t-1} + β_t, from (1, 0). The closed form says (√ᾱ_t, 1 - ᾱ_t)."""
    scale, variance = 1.0, 0.0
    for s in range(t + 1):
        alpha = float(schedule.alphas[s])
        scale, variance = math.sqrt(alpha) * scale, alpha * variance + (1.0 - alpha)
    return scale, variance


@torch.no_grad()
def ancestral_sample(denoiser: Callable[[Tensor, Tensor], Tensor], schedule: DiffusionSchedule,
                     shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str = "cpu",
                     keep: tuple[int, ...] = ()) -> tuple[Tensor, dict[int, Tensor]]:
    """Samples (n, ...) of ``shape`` by the DDPM reverse process from x_T ~ N(0, I).

    ``denoiser(x_t, t)`` predicts the noise ε for x_t (n, ...) at timesteps t (n,). All randomness
    comes from ``generator`` (a CPU generator: the same draws on any device). Returns the final
    x_0 (clipped to [-1, 1], on the CPU) and the intermediate x_t for each t in ``keep``, by t
    (CPU tensors; ``schedule.timesteps`` is the starting noise).
    """
    T = schedule.timesteps
    betas, alphas, alpha_bars = schedule.betas, schedule.alphas, schedule.alpha_bars
    x = torch.randn(shape, generator=generator).to(device)
    kept = {T: x.cpu()} if T in keep else {}
    for t in reversed(range(T)):
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
        eps = denoiser(x, t_batch).float()
        x = (x - float(betas[t]) / math.sqrt(1.0 - float(alpha_bars[t])) * eps) / math.sqrt(float(alphas[t]))
        if t > 0:
            x = x + math.sqrt(float(betas[t])) * torch.randn(shape, generator=generator).to(device)
        if t in keep:
            kept[t] = x.cpu()
    return x.clamp(-1.0, 1.0).cpu(), kept


# --- sample quality --------------------------------------------------------------------------------

def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of features (n, d), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be (n >= 2, d), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||μ1 - μ2||² + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½): the Fréchet (2-Wasserstein²) distance of two Gaussians.

    The matrix square root is ``scipy.linalg.sqrtm``, accurate enough even when Σ1 Σ2 is singular
    (fewer samples than dimensions, dead features); only if it fails (not finite) is a small
    multiple of I added to both first. The imaginary part that rounding leaves is dropped.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes do not match: mu {mu1.shape} and {mu2.shape}, sigma {sigma1.shape} "
                         f"and {sigma2.shape}")
    with warnings.catch_warnings():
        # Singular covariances (fewer samples than features, or features that never fire) make
        # scipy warn; its root is still accurate there, and adding εI would bias FD by -2εd.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(mu1)) * 1e-6
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def features_frechet_distance(features1: np.ndarray, features2: np.ndarray) -> float:
    """`frechet_distance` of Gaussians fitted to two feature sets (n1, d) and (n2, d)."""
    return frechet_distance(*feature_stats(features1), *feature_stats(features2))


def class_coverage(predicted: np.ndarray, n_classes: int = N_DIGITS, present_share: float = PRESENT_SHARE
                   ) -> dict[str, object]:
    """How the samples spread over the classes a classifier assigns them.

    Returns ``shares`` (n_classes,) the share of samples per predicted class, ``classes_present``
    the number of classes with at least ``present_share`` of them, ``min_share``, and
    ``entropy_bits`` of the shares (log2 of n_classes when uniform; a collapsed generator scores low).
    """
    predicted = np.asarray(predicted).ravel()
    if len(predicted) == 0:
        raise ValueError("class coverage needs at least one sample")
    if predicted.min() < 0 or predicted.max() >= n_classes:
        raise ValueError(f"predicted classes must be in 0..{n_classes - 1}")
    shares = np.bincount(predicted.astype(np.int64), minlength=n_classes) / len(predicted)
    nonzero = shares[shares > 0]
    return {"shares": shares, "classes_present": int((shares >= present_share).sum()),
            "min_share": float(shares.min()), "entropy_bits": float(-(nonzero * np.log2(nonzero)).sum())}
