"""Unit 12 — Generative models: a GAN, a VAE and a minimal DDPM on MNIST."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit12Params(UnitParams):
    cv_folds: int = Field(0, ge=0, le=10, description="cross-validation folds of the feature classifier "
                                                     "(0: test metrics only)")
    epochs_gan: int | None = Field(None, ge=1, le=200, description="GAN epochs (None: the profile's)")
    epochs_vae: int | None = Field(None, ge=1, le=200, description="VAE epochs (None: the profile's)")
    epochs_ddpm: int | None = Field(None, ge=1, le=100, description="DDPM denoiser epochs (None: the profile's)")
    latent_dim: int = Field(32, ge=2, le=256, description="VAE latent dimensions")
    timesteps: int | None = Field(None, ge=10, le=1000, description="DDPM diffusion steps T (None: the profile's)")
    n_samples: int | None = Field(None, ge=20, le=10_000, description="samples per model for the Fréchet "
                                                                       "distance and class coverage (None: the "
                                                                       "profile's)")


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
        "denoising diffusion (DDPM)",
        "measuring sample quality: Fréchet distance, class coverage",
    ),
    challenge=("A GAN, a VAE and a minimal DDPM on MNIST: sample grids, latent interpolation, and sample "
               "quality measured with our own classifier's features; test negative ELBO <= 100 nats on the "
               "full profile."),
    params=Unit12Params,
    flow="flows.unit12_generative:unit12_generative",
    datasets=("mnist",),
    primary_metric="test_neg_elbo",
    greater_is_better=False,
    schedule=Schedule("0 5 * * 2"),
    references=(
        Reference("MNIST test loss (negative ELBO, nats per image) of PyTorch's example VAE (784-400-20, "
                  "10 epochs, on grey-level pixels)", "105.6", "pytorch/examples, vae/main.py README",
                  "test_neg_elbo"),
    ),
    notes="docs/unit12_generative.md",
    notebook="notebooks/unit12_generative.ipynb",
    learned=(
        "A GAN trains two networks against each other; the non-saturating generator loss, one-sided "
        "label smoothing and Adam with β1 = 0.5 keep the game from collapsing early.",
        "A VAE maximises the ELBO, a lower bound on log p(x): reconstruction minus KL(q(z|x) || p(z)); "
        "on binarized pixels its negative is a bound in nats per image.",
        "The reparameterisation z = μ + σ ε moves the randomness out of the path of the gradient, so "
        "the encoder trains by backpropagation.",
        "A diffusion model learns to undo Gaussian noise added in T small steps; the forward process "
        "has a closed form, so training jumps to any step in one draw.",
        "Sample quality is measured, not eyeballed: a Fréchet distance on a classifier's features, and "
        "how the samples spread over the ten digits.",
    ),
    sources=("src/pipeline/scratch/generative.py", "src/pipeline/models/generative.py",
             "src/pipeline/training/generative.py", "src/pipeline/lessons/generative.py",
             "flows/unit12_generative.py"),
    quick=("6,000 training and 1,000 test images; 2 GAN and 2 VAE epochs, 1 epoch of a narrower denoiser on "
           "2,000 images with T = 50, 1 epoch of the feature classifier, 100 samples per model"),
    try_next=(
        Experiment(("latent_dim=2",), "a 2-D latent: the latent map needs no PCA, and the ELBO pays for it"),
        Experiment(("epochs_gan=5",), "the GAN stopped early: how far the digits formed in the GIF, and "
                                      "the Fréchet distance"),
        Experiment(("timesteps=100",), "fewer diffusion steps: cheaper sampling, coarser reverse process"),
    ),
)
