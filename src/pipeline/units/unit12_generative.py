"""Unit 12 — Generative models: GANs and VAEs (MNIST) (planned: no flow yet)."""

from pipeline.units.spec import UnitSpec

SPEC = UnitSpec(
    id="unit12",
    number=12,
    title="Generative models: GANs and VAEs (MNIST)",
    phase=3,
    topics=(
        "generative adversarial networks",
        "variational autoencoders and the ELBO",
        "the reparameterisation trick",
        "latent spaces",
    ),
    challenge=("A GAN and a VAE on MNIST: sample grids, latent interpolation, and a measure of sample "
               "quality."),
    datasets=("mnist",),
)
