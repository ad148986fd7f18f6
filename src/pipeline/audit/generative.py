"""Audit of Unit 12's maths (``pipeline.scratch.generative``): checks that fail the run when wrong.

- the KL term's closed form against ``torch.distributions.kl_divergence``, on random Gaussians and
  on the trained VAE's encoder outputs for test images (float64, 1e-8 relative);
- the reparameterisation's gradients against their closed form: dz/dμ = 1, dz/d(log σ²) = ε σ / 2 (1e-12);
- the forward process: the closed form's (√ᾱ_t, 1 - ᾱ_t) against the one-step recursion (1e-10),
  and the empirical mean and variance of iterated noising against the closed form at several t
  (20,000 draws per t, fixed seed; within 5 standard errors);
- the Fréchet distance: of a feature set with itself (≈ 0, 1e-6 of its trace) and of diagonal
  Gaussians against Σ (σ1 - σ2)² + ||μ1 - μ2||² (1e-8 relative).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pipeline.audit import AuditReport
from pipeline.scratch.generative import (
    DiffusionSchedule,
    features_frechet_distance,
    forward_moments,
    frechet_distance,
    gaussian_kl,
    iterate_noising,
    reparameterize,
)

KL_RTOL = 1e-8
GRAD_ATOL = 1e-12
MOMENTS_ATOL = 1e-10
DRAWS = 20_000
STANDARD_ERRORS = 5.0
FD_RTOL = 1e-8


def _kl_gap(mu: torch.Tensor, logvar: torch.Tensor) -> float:
    """Largest relative gap between our KL and torch.distributions' (float64)."""
    from torch.distributions import Normal, kl_divergence

    mu, logvar = mu.double(), logvar.double()
    ours = gaussian_kl(mu, logvar)
    theirs = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    return float(((ours - theirs.sum(-1)).abs() / theirs.sum(-1).abs().clamp_min(1e-12)).max())


def check_kl(report: AuditReport, seed: int, vae=None, images=None) -> None:
    generator = torch.Generator().manual_seed(seed)
    mu, logvar = torch.randn(64, 16, generator=generator), torch.randn(64, 16, generator=generator)
    gap = _kl_gap(mu, logvar)
    report.add("KL closed form = torch kl_divergence (random Gaussians)", gap <= KL_RTOL,
               f"max relative gap {gap:.2e} (tolerance {KL_RTOL:g})")
    if vae is not None and images is not None:
        from pipeline.models.generative import binarize

        vae.eval()
        with torch.no_grad():
            device = next(vae.parameters()).device
            mu, logvar = vae.encode(binarize(images).to(device))
        gap = _kl_gap(mu.cpu(), logvar.cpu())
        report.add("KL closed form = torch kl_divergence (trained encoder, test images)", gap <= KL_RTOL,
                   f"{len(images)} images, max relative gap {gap:.2e} (tolerance {KL_RTOL:g})")


def check_reparameterisation(report: AuditReport, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    mu = torch.randn(32, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(32, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(32, 8, generator=generator, dtype=torch.float64)
    reparameterize(mu, logvar, eps).sum().backward()  # each z_ij depends on mu_ij and logvar_ij only
    mu_gap = float((mu.grad - 1.0).abs().max())
    logvar_gap = float((logvar.grad - eps * torch.exp(0.5 * logvar.detach()) / 2).abs().max())
    report.add("reparameterisation: dz/dmu = 1", mu_gap <= GRAD_ATOL, f"max gap {mu_gap:.1e}")
    report.add("reparameterisation: dz/dlogvar = eps*sigma/2", logvar_gap <= GRAD_ATOL, f"max gap {logvar_gap:.1e}")


def check_forward_process(report: AuditReport, schedule: DiffusionSchedule, seed: int) -> None:
    T = schedule.timesteps
    alpha_bars = schedule.alpha_bars
    gaps = []
    for t in range(T):
        scale, variance = forward_moments(schedule, t)
        gaps.append(max(abs(scale - math.sqrt(float(alpha_bars[t]))), abs(variance - (1 - float(alpha_bars[t])))))
    report.add("forward process: closed form = one-step recursion (scale, variance)", max(gaps) <= MOMENTS_ATOL,
               f"max gap {max(gaps):.1e} over t = 0..{T - 1}")
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)  # five pixel values, DRAWS times each
    for t in sorted({0, T // 4, T // 2, T - 1}):
        x = iterate_noising(schedule, x0.expand(DRAWS, -1), t, generator)  # (DRAWS, 5)
        mean, var = math.sqrt(float(alpha_bars[t])) * x0, 1.0 - float(alpha_bars[t])
        mean_z = float(((x.mean(0) - mean).abs() / math.sqrt(var / DRAWS)).max())
        var_z = float(((x.var(0) - var).abs() / (var * math.sqrt(2.0 / (DRAWS - 1)))).max())
        report.add(f"forward process: iterated noising matches q(x_t | x_0) at t={t}",
                   max(mean_z, var_z) <= STANDARD_ERRORS,
                   f"{DRAWS} draws: mean off by {mean_z:.2f}, variance by {var_z:.2f} standard errors "
                   f"(tolerance {STANDARD_ERRORS:g})")


def check_frechet(report: AuditReport, features: np.ndarray, seed: int) -> None:
    itself = features_frechet_distance(features, features)
    trace = float(np.trace(np.cov(features, rowvar=False)))
    report.add("Frechet distance of a feature set with itself = 0", abs(itself) <= 1e-6 * max(trace, 1.0),
               f"{itself:.2e} (trace of its covariance {trace:.1f})")
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 2.0, 6), rng.uniform(0.1, 2.0, 6)
    ours = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    closed = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum())
    gap = abs(ours - closed) / closed
    report.add("Frechet distance of diagonal Gaussians = closed form", gap <= FD_RTOL,
               f"{ours:.6f} vs {closed:.6f} (relative gap {gap:.1e})")


def audit_generative(schedule: DiffusionSchedule, features: np.ndarray, vae=None, images=None,
                     seed: int = 0) -> AuditReport:
    """All of the module's checks: ``schedule`` the DDPM's, ``features`` (n, d) of real images for
    the Fréchet self-distance, ``vae`` and ``images`` (a few test images) for the trained encoder's KL."""
    report = AuditReport("generative maths (KL, reparameterisation, forward process, Frechet distance)")
    check_kl(report, seed, vae, images)
    check_reparameterisation(report, seed)
    check_forward_process(report, schedule, seed)
    check_frechet(report, features, seed)
    return report
