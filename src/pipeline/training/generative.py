"""Steps for the shared training loop that train Unit 12's generative models on unlabelled images.

Batches are ``(images,)`` of uint8 MNIST digits (B, 28, 28) on the device; each step turns them
into what its model reads:

- `GANStep`: images in [-1, 1]. Per batch the discriminator's update (real vs generated, with
  one-sided label smoothing: real targets 0.9), then the generator's with the non-saturating loss
  -log D(G(z)) (Goodfellow et al., 2014), each by its own Adam with β1 = 0.5 (DCGAN's setting).
- `VAEStep`: binary pixels (intensity > 0.5). Loss = the negative ELBO, reconstruction (Bernoulli)
  + KL, in nats per image; validation reports the same terms.
- `DiffusionStep`: images in [-1, 1]. A random timestep per image, x_t from the closed form, and
  the mean squared error between the true noise and the denoiser's prediction (the DDPM "simple" loss).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.models.generative import neg_elbo_terms
from pipeline.scratch.generative import DiffusionSchedule, q_sample
from pipeline.training.config import TrainConfig
from pipeline.training.steps import Step

if TYPE_CHECKING:
    from pipeline.training.loop import Trainer

ADAM_BETAS = (0.5, 0.999)  # DCGAN: a lower β1 than Adam's 0.9 steadies the adversarial game


def to_signed(images: Tensor) -> Tensor:
    """uint8 images (B, ...) -> float32 in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_binary(images: Tensor, threshold: float = 0.5) -> Tensor:
    """uint8 images (B, 28, 28) -> binary pixels (B, 784), float32: intensity / 255 > threshold."""
    return (images.flatten(1).float() / 255.0 > threshold).float()


class GANStep(Step):
    """Discriminator update, then generator update, on every batch of real images."""

    def __init__(self, real_label: float = 0.9):
        self.real_label = real_label

    def configure_optimizers(self, model: nn.Module, config: TrainConfig) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(model.discriminator.parameters(), lr=config.lr, betas=ADAM_BETAS),
                torch.optim.Adam(model.generator.parameters(), lr=config.lr, betas=ADAM_BETAS)]

    def training_step(self, trainer: Trainer, batch: tuple[Tensor]) -> dict[str, Tensor]:
        (images,) = batch
        real = to_signed(images).flatten(1)  # (B, 784)
        gan, (d_optimizer, g_optimizer) = trainer.model, trainer.optimizers
        z = torch.randn(len(real), gan.generator.z_dim, device=real.device)  # (B, z_dim)
        fake = gan.generator(z)  # (B, 784)
        d_real, d_fake = gan.discriminator(real), gan.discriminator(fake.detach())  # (B,), (B,)
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, self.real_label))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        trainer.optimize(d_loss, d_optimizer)
        # Non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z))), whose gradient
        # vanishes exactly when the generator is bad and D rejects its samples confidently.
        d_on_fake = gan.discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(d_on_fake, torch.ones_like(d_on_fake))
        trainer.optimize(g_loss, g_optimizer)
        return {"d_loss": d_loss, "g_loss": g_loss,
                "d_real": torch.sigmoid(d_real).mean(), "d_fake": torch.sigmoid(d_fake).mean()}


class VAEStep(Step):
    """The negative ELBO (reconstruction + KL, nats per image) of binarized images, one z per image."""

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def _terms(self, trainer: Trainer, images: Tensor) -> dict[str, Tensor]:
        recon, kl = neg_elbo_terms(trainer.model, to_binary(images, self.threshold))  # (B,), (B,)
        return {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}

    def training_step(self, trainer: Trainer, batch: tuple[Tensor]) -> dict[str, Tensor]:
        metrics = self._terms(trainer, batch[0])
        trainer.optimize(metrics["loss"])
        return metrics

    def validation_step(self, trainer: Trainer, batch: tuple[Tensor]) -> dict[str, Tensor]:
        return self._terms(trainer, batch[0])


class DiffusionStep(Step):
    """Noise-prediction loss ||ε - ε_θ(x_t, t)||² at a uniformly drawn timestep per image."""

    def __init__(self, schedule: DiffusionSchedule):
        self.schedule = schedule

    def training_step(self, trainer: Trainer, batch: tuple[Tensor]) -> dict[str, Tensor]:
        (images,) = batch
        x0 = to_signed(images).unsqueeze(1)  # (B, 1, 28, 28)
        t = torch.randint(0, self.schedule.timesteps, (len(x0),), device=x0.device)  # (B,)
        noise = torch.randn_like(x0)
        loss = F.mse_loss(trainer.model(q_sample(self.schedule, x0, t, noise), t), noise)
        trainer.optimize(loss)
        return {"loss": loss}
