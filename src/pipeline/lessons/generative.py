"""Unit 12 — generative models on MNIST: a GAN, a VAE and a minimal DDPM, side by side.

All three train in the shared loop (``pipeline.training``) with their own steps
(``pipeline.training.generative``); the maths they rest on is in ``pipeline.scratch.generative``.

- GAN: an MLP generator and discriminator. A fixed batch of 64 noise vectors is drawn once and
  rendered after every epoch, so the grids (and the GIF made of them) show the same digits forming.
- VAE: on MNIST binarized at a fixed threshold (intensity > 0.5), with a Bernoulli decoder, so its
  negative ELBO is a proper bound in nats per image (summed over pixels, averaged over images). It
  trains on the training images less a validation tail (the last ``val_rows``), whose negative
  ELBO picks the epoch kept; the test images are scored once, at the end.
- DDPM: a small U-Net denoiser, trained briefly; it need not be good, it must be correct (the
  audit checks the forward process's closed form against iterated noising).

Sample quality is measured with our own MNIST classifier: Unit 7's network (its architecture and
settings, one epoch on the quick profile), trained here on the same training images and scored by
the shared evaluation. Its last hidden layer (256 ReLU features) gives the Fréchet distance between
the samples and the test images; its predicted digits give class coverage. The same number of
real training images against the test images is the floor a perfect generator would reach.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.features import Split
from pipeline.lessons import mnist_mlp
from pipeline.lessons.classes import MNIST_DIGITS
from pipeline.models.generative import GAN, PIXELS, VAE, Denoiser, Generator, binarize, elbo_terms
from pipeline.scratch.generative import (
    DiffusionSchedule,
    ancestral_sample,
    class_coverage,
    feature_stats,
    frechet_distance,
)
from pipeline.scratch.mlp import NeuralNetwork, NumpyMLPClassifier, predict_logits
from pipeline.training import MLflowLogger, OnEpochEnd, ProgressBar, TrainConfig, Trainer, default_callbacks

FEATURE_NET = "feature classifier: Unit 7 MLP 784-512-256-10"
MODELS = ("GAN", "VAE", "DDPM")
REAL = "real train images (the floor)"
THRESHOLD = 0.5  # binarization: a pixel is on when its intensity / 255 exceeds it
GRID_NOISE = 64  # the GAN's fixed noise batch: an 8 x 8 grid per epoch
SNAPSHOTS = 8  # DDPM images shown in the forward and reverse strips

# What to look for in each figure, printed under it on the results site.
CAPTIONS = {
    "gan_samples_first_epoch": "The GAN's 64 fixed noise vectors after the first epoch. Blurry strokes and "
                               "blobs: the generator has found where ink goes, not yet what a digit is.",
    "gan_samples_last_epoch": "The same 64 noise vectors after the last epoch (the animation gan_progress.gif "
                              "shows every epoch in between). Look for variety: "
                              "all ten digits, different slants and widths. The same digit over and over "
                              "would be mode collapse.",
    "gan_progress.gif": "The same 64 noise vectors at the end of every epoch, one frame each (the last held "
                        "longer). Look for the moment blobs become strokes and strokes become digits, and "
                        "whether each grid cell keeps its digit from frame to frame or keeps switching "
                        "(a generator still chasing the discriminator).",
    "gan_losses": "Generator and discriminator losses per epoch, and the discriminator's mean output on real "
                  "and generated images. A GAN has no loss that falls to a minimum: the two push each other. "
                  "Healthy training keeps them in balance (D's output on fakes neither 0 nor 1); a "
                  "discriminator loss near zero with a climbing generator loss means D has won and G gets "
                  "no useful gradient.",
    "vae_curves": "Negative ELBO per epoch, in nats per image, on the training images and on the validation "
                  "tail (not trained on; it picks the epoch kept), split into reconstruction and KL. The KL "
                  "term is what the latent code costs: it rises as the encoder learns to use the latent.",
    "vae_reconstructions": "Test digits (top row of each pair, binarized as the VAE sees them) and their "
                           "reconstructions (pixel probabilities, bottom). Reconstructions are smoother "
                           "than the input: the decoder gives each pixel's probability, not a sample.",
    "vae_samples": "Decoder outputs for z drawn from the prior N(0, I): new digits, blurrier than the GAN's "
                   "because each image is a mean over pixels' Bernoulli probabilities.",
    "vae_latent_map": "The test images' latent means μ projected on their first two principal components "
                      "(our Unit 1 PCA), coloured by digit. Nobody told the VAE the labels, yet some digits "
                      "separate even in two of its 32 dimensions (1s, 0s, 3s in the full run) while others "
                      "overlap in this projection: the latent space is organised by what the images look like.",
    "vae_interpolation": "Decoding points on the straight line between the latent means of two test digits. "
                         "A smooth morph, with no broken images midway, says the latent space is continuous "
                         "where the data is, which is what the KL term buys.",
    "ddpm_forward": "The forward process on a few test digits: x_t drawn from the closed form q(x_t | x_0) at "
                    "increasing t. The digit fades into Gaussian noise; by t = T nothing of it is left.",
    "ddpm_reverse": "The reverse process: ancestral sampling from pure noise (left) to x_0 (right), one row "
                    "per sample. Structure appears late: in the full run a stroke shows from about a third of the way "
                    "from the end (t ≈ 60 of 200) and the digit settles in the last few dozen steps.",
    "ddpm_samples": "Final DDPM samples. Brief training on a CPU, so expect rough digits; the audit checks the "
                    "process is right, not that the samples are good.",
    "ddpm_loss": "The denoiser's loss per epoch: mean squared error between the noise added and the noise "
                 "predicted, averaged over uniformly drawn timesteps.",
    "sample_quality": "Fréchet distance (lower is better) between each model's samples and the test images, on "
                      "our classifier's 256 features, beside the same number of real training images (the "
                      "floor), and the share of samples per predicted digit (all ten about 10 % is full "
                      "coverage; a missing digit is a mode the model dropped).",
}


@dataclass(frozen=True)
class Settings:
    """Everything the profile and the parameters set. ``ddpm_rows`` None trains on every image."""

    profile: str
    seed: int
    feature_epochs: int | None
    gan_epochs: int
    gan_batch: int
    gan_lr: float
    z_dim: int
    vae_epochs: int
    vae_lr: float
    latent_dim: int
    val_rows: int
    ddpm_epochs: int
    ddpm_rows: int | None
    ddpm_channels: int
    ddpm_lr: float
    timesteps: int
    n_samples: int


# Full: about half an hour on 2 CPU cores (see docs/unit12_generative.md for the measured times).
FULL = Settings(profile="full", seed=0, feature_epochs=None, gan_epochs=15, gan_batch=64, gan_lr=2e-4, z_dim=64,
                vae_epochs=30, vae_lr=1e-3, latent_dim=32, val_rows=5000, ddpm_epochs=2, ddpm_rows=None,
                ddpm_channels=16, ddpm_lr=2e-3, timesteps=200, n_samples=500)
QUICK = replace(FULL, profile="quick", feature_epochs=1, gan_epochs=2, vae_epochs=2, val_rows=500, ddpm_epochs=1,
                ddpm_rows=2000, ddpm_channels=8, timesteps=50, n_samples=100)


def settings(params) -> Settings:
    """The profile's `Settings` with the unit's parameter overrides (``Unit12Params``)."""
    base = FULL if params.profile == "full" else QUICK
    overrides = {"gan_epochs": params.epochs_gan, "vae_epochs": params.epochs_vae,
                 "ddpm_epochs": params.epochs_ddpm, "timesteps": params.timesteps, "n_samples": params.n_samples}
    return replace(base, seed=params.seed, latent_dim=params.latent_dim,
                   **{k: v for k, v in overrides.items() if v is not None})


# --- the feature classifier -------------------------------------------------------------------------

def train_feature_net(split: Split, s: Settings) -> dict[str, NumpyMLPClassifier]:
    """Unit 7's network with its profile settings (epochs per ``s``) fitted on the flattened
    training images in [0, 1]: the classifier whose features measure sample quality."""
    model = mnist_mlp.mlp_classifier(s.profile, s.seed, s.feature_epochs)
    return {FEATURE_NET: model.fit(split.X_train, split.y_train)}


def classifier_features(model: NumpyMLPClassifier, X: np.ndarray) -> np.ndarray:
    """The network's last hidden layer (n, 256) for images X (n, 784) in [0, 1]: the same network
    with its output layer replaced by the identity, so ``forward`` stops at the ReLU features."""
    net = model.net_
    width = net.layer_sizes[-2]
    trunk = NeuralNetwork((*net.layer_sizes[:-1], width), activation=net.activation, dtype=net.dtype)
    trunk.weights = [*net.weights[:-1], np.eye(width, dtype=net.dtype)]
    trunk.biases = [*net.biases[:-1], np.zeros(width, dtype=net.dtype)]
    return predict_logits(trunk, np.asarray(X, dtype=net.dtype))


# --- training --------------------------------------------------------------------------------------

@dataclass
class GANRun:
    model: GAN
    history: list[dict[str, float]]
    grids: list[np.ndarray] = field(default_factory=list)  # (H, W) uint8 per epoch, the first before training


@dataclass
class VAERun:
    model: VAE
    history: list[dict[str, float]]
    best_epoch: int


@dataclass
class DDPMRun:
    model: Denoiser
    schedule: DiffusionSchedule
    history: list[dict[str, float]]


def _config(s: Settings, label: str, epochs: int, batch_size: int, lr: float, **extra) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=s.seed, label=label, **extra)


def fixed_noise(s: Settings, n: int = GRID_NOISE) -> torch.Tensor:
    """The GAN's fixed noise batch (n, z_dim), the same for every epoch and run with this seed."""
    return torch.randn(n, s.z_dim, generator=torch.Generator().manual_seed(s.seed + 1))


def generate_images(generator: Generator, z: torch.Tensor) -> np.ndarray:
    """Generator images (n, 28, 28) in [0, 1] for noise z (n, z_dim), in eval mode."""
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        images = generator(z.to(next(generator.parameters()).device)).float().cpu().numpy()
    generator.train(was_training)
    return ((images + 1.0) / 2.0).reshape(-1, 28, 28)


def train_gan(images: np.ndarray, s: Settings) -> GANRun:
    """The MLP GAN on uint8 images (n, 28, 28), with a grid of the fixed noise's images per epoch."""
    from pipeline.training.generative import GANStep

    torch.manual_seed(s.seed)
    gan, noise = GAN(s.z_dim), fixed_noise(s)
    run = GANRun(gan, [], [tile(generate_images(gan.generator, noise))])
    callbacks = [ProgressBar(), MLflowLogger(),
                 OnEpochEnd(lambda epoch, row: run.grids.append(tile(generate_images(gan.generator, noise))))]
    result = Trainer(gan, _config(s, "GAN", s.gan_epochs, s.gan_batch, s.gan_lr), GANStep(), callbacks).fit(images)
    run.history = result.history
    return run


def train_vae(images: np.ndarray, s: Settings) -> VAERun:
    """The VAE on uint8 images (n, 28, 28) less the last ``val_rows``, which validate each epoch;
    the epoch with the lowest validation negative ELBO is kept."""
    from pipeline.training.generative import VAEStep

    if len(images) <= s.val_rows:
        raise ValueError(f"{len(images)} training images leave none to train on after {s.val_rows} for validation")
    torch.manual_seed(s.seed)
    vae = VAE(s.latent_dim)
    config = _config(s, "VAE", s.vae_epochs, 128, s.vae_lr)
    result = Trainer(vae, config, VAEStep(THRESHOLD), default_callbacks(config)).fit(
        images[: -s.val_rows], None, images[-s.val_rows:])
    return VAERun(vae, result.history, result.best_epoch)


def train_ddpm(images: np.ndarray, s: Settings) -> DDPMRun:
    """The denoiser on uint8 images (n, 28, 28) (the first ``ddpm_rows``), cosine-annealed AdamW."""
    from pipeline.training.generative import DiffusionStep

    schedule = DiffusionSchedule.linear(s.timesteps)
    torch.manual_seed(s.seed)
    denoiser = Denoiser(s.ddpm_channels)
    rows = images if s.ddpm_rows is None else images[: s.ddpm_rows]
    config = _config(s, "DDPM", s.ddpm_epochs, 128, s.ddpm_lr, scheduler="cosine", grad_clip=1.0)
    result = Trainer(denoiser, config, DiffusionStep(schedule), [ProgressBar(), MLflowLogger()]).fit(rows)
    return DDPMRun(denoiser, schedule, result.history)


# --- scoring and sampling --------------------------------------------------------------------------

def vae_test_metrics(vae: VAE, X_test: np.ndarray, seed: int) -> dict[str, float]:
    """test_neg_elbo (the primary metric), its reconstruction and KL parts, in nats per image,
    on the binarized test images (uint8 (n, 28, 28) or floats in [0, 1])."""
    vae.eval()
    recon, kl = elbo_terms(vae, binarize(X_test, THRESHOLD), seed)
    return {"test_neg_elbo": float((recon + kl).mean()), "test_recon_nll": float(recon.mean()),
            "test_kl": float(kl.mean())}


@dataclass
class Samples:
    """n images (n, 784) in [0, 1] per model, and the DDPM's reverse process for the first few."""

    images: dict[str, np.ndarray]
    reverse: dict[int, np.ndarray]  # timestep -> (SNAPSHOTS, 28, 28) in [0, 1]


def reverse_keep(timesteps: int, n: int = 8) -> tuple[int, ...]:
    """Timesteps to keep from the reverse process for the strip: T, then evenly down to 0."""
    return tuple(sorted({int(round(t)) for t in np.linspace(timesteps, 0, n)}, reverse=True))


def generate_vae_samples(vae: VAERun, s: Settings) -> np.ndarray:
    """``s.n_samples`` VAE images (n, 784): pixel probabilities decoded from z ~ N(0, I), seeded."""
    latent = torch.randn(s.n_samples, s.latent_dim, generator=torch.Generator().manual_seed(s.seed + 3))
    return _decode(vae.model.eval(), latent.numpy())


def generate(gan: GANRun, vae: VAERun, ddpm: DDPMRun, s: Settings, chunk: int = 250) -> Samples:
    """``s.n_samples`` images from each model, each from its own seeded CPU generator."""
    n = s.n_samples
    z = torch.randn(n, s.z_dim, generator=torch.Generator().manual_seed(s.seed + 2))
    gan_images = generate_images(gan.model.generator, z).reshape(n, PIXELS)
    vae_images = generate_vae_samples(vae, s)
    denoiser = ddpm.model.eval()
    device = next(denoiser.parameters()).device
    generator, parts, reverse = torch.Generator().manual_seed(s.seed + 4), [], {}
    keep = reverse_keep(ddpm.schedule.timesteps)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        x0, kept = ancestral_sample(denoiser, ddpm.schedule, (size, 1, 28, 28), generator, device,
                                    keep=keep if start == 0 else ())
        parts.append(((x0 + 1.0) / 2.0).reshape(size, PIXELS).numpy())
        reverse.update({t: ((x[:SNAPSHOTS, 0].clamp(-1, 1) + 1.0) / 2.0).numpy() for t, x in kept.items()})
    return Samples({"GAN": gan_images, "VAE": vae_images, "DDPM": np.concatenate(parts)}, reverse)


def sample_quality(feature_net: NumpyMLPClassifier, samples: Samples, split: Split, s: Settings
                   ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Fréchet distance to the test images and class coverage, per model and for real training
    images (the floor), on the flattened ``split`` in [0, 1].

    Returns the side-by-side table, the share of samples per predicted digit (a row per model),
    and the metrics ``<model>_fd``, ``<model>_classes_present``, ``<model>_min_class_share``,
    ``<model>_coverage_entropy_bits`` with model in gan, vae, ddpm, real.
    """
    test_stats = feature_stats(classifier_features(feature_net, split.X_test))
    rng = np.random.default_rng(s.seed)
    real = split.X_train[rng.choice(len(split.X_train), size=min(s.n_samples, len(split.X_train)), replace=False)]
    sets = {**samples.images, REAL: real}
    rows, shares, metrics = [], {}, {}
    for name, images in sets.items():
        fd = frechet_distance(*feature_stats(classifier_features(feature_net, images)), *test_stats)
        coverage = class_coverage(feature_net.predict(images))
        key = "real" if name == REAL else name.lower()
        metrics |= {f"{key}_fd": fd, f"{key}_classes_present": float(coverage["classes_present"]),
                    f"{key}_min_class_share": coverage["min_share"],
                    f"{key}_coverage_entropy_bits": coverage["entropy_bits"]}
        rows.append({"model": name, "samples": len(images), "frechet_distance": fd,
                     "classes_present": coverage["classes_present"], "min_class_share": coverage["min_share"],
                     "coverage_entropy_bits": coverage["entropy_bits"]})
        shares[name] = coverage["shares"]
    table = pd.DataFrame(rows).set_index("model")
    return table, pd.DataFrame(shares, index=list(MNIST_DIGITS)).T.rename_axis("model"), metrics


# --- images, figures, files ------------------------------------------------------------------------

def tile(images: np.ndarray, ncols: int = 8, pad: int = 2, scale: int = 2) -> np.ndarray:
    """Images (n, 28, 28) in [0, 1] as one uint8 grid (ncols wide, ``pad`` px apart, each pixel
    ``scale`` x ``scale``): the GAN's per-epoch frames."""
    images = np.clip(np.asarray(images, dtype=np.float32).reshape(-1, 28, 28), 0.0, 1.0)
    nrows = -(-len(images) // ncols)
    side = 28 + pad
    grid = np.zeros((nrows * side + pad, ncols * side + pad), dtype=np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, ncols)
        grid[pad + r * side: pad + r * side + 28, pad + c * side: pad + c * side + 28] = np.round(image * 255)
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def png_bytes(grid: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grid, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def gif_bytes(grids: list[np.ndarray], frame_ms: int = 500, last_ms: int = 2000) -> bytes:
    """An animated GIF of the grids (the GAN's epochs), looping, the last frame held longer."""
    from PIL import Image

    frames = [Image.fromarray(grid, mode="L") for grid in grids]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=[frame_ms] * (len(frames) - 1) + [last_ms])
    return buffer.getvalue()


def _strip_figure(rows: list[np.ndarray], column_titles: list[str], title: str, row_titles=None):
    """A grid of images: ``rows`` of (k, 28, 28) arrays, a title per column."""
    from matplotlib.figure import Figure

    nrows, ncols = len(rows), len(column_titles)
    fig = Figure(figsize=(1.2 * ncols + 0.6, 1.2 * nrows + 0.6))
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.imshow(row[c], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c], fontsize=8)
            if c == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=8)
    fig.suptitle(title)
    return fig


def gan_loss_figure(history: list[dict[str, float]]):
    from matplotlib.figure import Figure

    frame = pd.DataFrame(history)
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    left.plot(frame["epoch"], frame["train_g_loss"], marker="o", label="generator")
    left.plot(frame["epoch"], frame["train_d_loss"], marker="o", label="discriminator")
    left.set(xlabel="epoch", ylabel="loss (nats)", title="GAN losses")
    left.legend()
    right.plot(frame["epoch"], frame["train_d_real"], marker="o", label="D(real)")
    right.plot(frame["epoch"], frame["train_d_fake"], marker="o", label="D(G(z))")
    right.set(xlabel="epoch", ylabel="mean probability 'real'", ylim=(0, 1), title="Discriminator outputs")
    right.legend()
    return fig


def vae_curve_figure(history: list[dict[str, float]], best_epoch: int):
    from matplotlib.figure import Figure

    frame = pd.DataFrame(history)
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for label, column in (("training", "train_loss"), ("validation", "val_loss")):
        left.plot(frame["epoch"], frame[column], marker="o", label=label)
    left.axvline(best_epoch, color="grey", linestyle=":", label=f"kept (epoch {best_epoch})")
    left.set(xlabel="epoch", ylabel="negative ELBO (nats / image)", title="VAE: negative ELBO")
    left.legend()
    for label, column in (("reconstruction (val)", "val_recon"), ("KL (val)", "val_kl")):
        right.plot(frame["epoch"], frame[column], marker="o", label=label)
    right.set(xlabel="epoch", ylabel="nats / image", yscale="log", title="VAE: the two terms")
    right.legend()
    return fig


def ddpm_loss_figure(history: list[dict[str, float]]):
    from matplotlib.figure import Figure

    frame = pd.DataFrame(history)
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.plot(frame["epoch"], frame["train_loss"], marker="o")
    ax.set(xlabel="epoch", ylabel="MSE of the predicted noise", title="DDPM denoiser loss")
    return fig


def quality_figure(table: pd.DataFrame, shares: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    colors = ["C0", "C1", "C2", "grey"]
    left.bar(range(len(table)), table["frechet_distance"], color=colors[: len(table)])
    left.set_xticks(range(len(table)), [name.split(" (")[0] for name in table.index], fontsize=8)
    left.set(ylabel="Fréchet distance to the test images", title="Sample quality (lower is better)")
    width = 0.8 / len(shares)
    for i, (name, row) in enumerate(shares.iterrows()):
        right.bar(np.arange(10) + i * width, row.to_numpy(), width, label=name.split(" (")[0],
                  color=colors[i % len(colors)])
    right.axhline(0.1, color="black", linestyle=":", linewidth=1)
    right.set_xticks(np.arange(10) + 0.4 - width / 2, MNIST_DIGITS)
    right.set(xlabel="predicted digit", ylabel="share of samples", title="Class coverage")
    right.legend(fontsize=8)
    return fig


def latent_means(vae: VAE, images: np.ndarray) -> np.ndarray:
    """The encoder's means μ (n, latent_dim) for images (binarized as in training)."""
    vae.eval()
    device = next(vae.parameters()).device
    with torch.no_grad():
        mu, _ = vae.encode(binarize(images, THRESHOLD).to(device))
    return mu.float().cpu().numpy()


def _decode(vae: VAE, z: np.ndarray) -> np.ndarray:
    """Pixel probabilities (n, 784) for latent codes z (n, latent_dim)."""
    device = next(vae.parameters()).device
    with torch.no_grad():
        return torch.sigmoid(vae.decode(torch.as_tensor(z, dtype=torch.float32, device=device))).cpu().numpy()


def vae_figures(vae: VAERun, X_test: np.ndarray, y_test: np.ndarray, samples: np.ndarray, seed: int,
                map_rows: int = 2000) -> dict[str, Any]:
    """Reconstructions, prior samples, the PCA map of the latent means, an interpolation."""
    from pipeline.plots import figure_to_png, scatter_2d_figure
    from pipeline.scratch.pca import PCA

    model = vae.model.eval()
    shown = X_test[:10]
    recon = _decode(model, latent_means(model, shown)).reshape(-1, 28, 28)
    originals = binarize(shown, THRESHOLD).numpy().reshape(-1, 28, 28)
    mu = latent_means(model, X_test[:map_rows])
    points = PCA(n_components=2).fit_transform(mu)
    # Two different digits (the first 3 and the first 8 in the test images) and 10 points between them.
    a, b = int(np.flatnonzero(y_test == 3)[0]), int(np.flatnonzero(y_test == 8)[0])
    ends = latent_means(model, X_test[[a, b]])
    steps = np.linspace(0.0, 1.0, 10)[:, None]
    line = _decode(model, (1 - steps) * ends[0] + steps * ends[1]).reshape(-1, 28, 28)
    return {
        "vae_curves": figure_to_png(vae_curve_figure(vae.history, vae.best_epoch)),
        "vae_reconstructions": figure_to_png(_strip_figure([originals, recon], [""] * 10,
                                                           "Test digits and their reconstructions",
                                                           ["input", "decoded"])),
        "vae_samples": png_bytes(tile(samples[:GRID_NOISE])),
        "vae_latent_map": figure_to_png(scatter_2d_figure(
            points, np.asarray(MNIST_DIGITS)[y_test[:map_rows]],
            f"VAE latent means of {len(points)} test digits, first two principal components")),
        "vae_interpolation": figure_to_png(_strip_figure(
            [line], [f"{w:.2f}" for w in steps[:, 0]], f"Decoding the line from a {y_test[a]} to an {y_test[b]} "
                                                       "in latent space (weight of the second)")),
    }


def ddpm_figures(ddpm: DDPMRun, X_test: np.ndarray, samples: Samples, seed: int) -> dict[str, bytes]:
    """The forward process on test digits, the reverse process of the first samples, samples, loss."""
    from pipeline.plots import figure_to_png
    from pipeline.scratch.generative import q_sample

    T = ddpm.schedule.timesteps
    ts = reverse_keep(T)[::-1][1:]  # increasing t, without 0 (x_0 is the first column)
    x0 = torch.as_tensor(X_test[:SNAPSHOTS], dtype=torch.float32).reshape(-1, 1, 28, 28) / 127.5 - 1.0
    generator = torch.Generator().manual_seed(seed)
    columns = [x0]
    for t in ts:
        noise = torch.randn(x0.shape, generator=generator)
        # x_t (paper's t, 1..T) is index t - 1 of the schedule
        columns.append(q_sample(ddpm.schedule, x0, torch.full((len(x0),), t - 1, dtype=torch.long), noise))
    forward = [((torch.stack([c[i, 0] for c in columns]).clamp(-1, 1) + 1) / 2).numpy() for i in range(4)]
    order = sorted(samples.reverse, reverse=True)
    reverse = [np.stack([samples.reverse[t][i] for t in order]) for i in range(min(4, SNAPSHOTS))]
    return {
        "ddpm_forward": figure_to_png(_strip_figure(forward, ["x_0"] + [f"t={t}" for t in ts],
                                                    f"Forward process q(x_t | x_0), T = {T}")),
        "ddpm_reverse": figure_to_png(_strip_figure(reverse, [f"t={t}" for t in order],
                                                    "Reverse process: ancestral sampling from x_T ~ N(0, I)")),
        "ddpm_samples": png_bytes(tile(samples.images["DDPM"][:GRID_NOISE])),
        "ddpm_loss": figure_to_png(ddpm_loss_figure(ddpm.history)),
    }


def report_parts(gan: GANRun, vae: VAERun, ddpm: DDPMRun, samples: Samples, quality, split: Split,
                 s: Settings) -> dict[str, Any]:
    """The report's metrics, figures, files, tables, histories and notes (``UnitReport`` fields).

    ``split`` holds uint8 images (n, 28, 28). Files: the GAN's GIF ``gan_progress.gif`` and each
    epoch's grid under ``gan_epochs/`` (epoch 0 is before training).
    """
    from pipeline.plots import figure_to_png

    table, shares, quality_metrics = quality
    metrics = {**vae_test_metrics(vae.model, split.X_test, s.seed), **quality_metrics,
               "vae_best_epoch": float(vae.best_epoch)}
    figures = {"gan_samples_first_epoch": png_bytes(gan.grids[1 if len(gan.grids) > 1 else 0]),
               "gan_samples_last_epoch": png_bytes(gan.grids[-1]),
               "gan_losses": figure_to_png(gan_loss_figure(gan.history)),
               **vae_figures(vae, split.X_test, split.y_test, samples.images["VAE"], s.seed),
               **ddpm_figures(ddpm, split.X_test, samples, s.seed),
               "sample_quality": figure_to_png(quality_figure(table, shares))}
    files = {"gan_progress.gif": gif_bytes(gan.grids),
             **{f"gan_epochs/epoch_{epoch:02d}.png": png_bytes(grid) for epoch, grid in enumerate(gan.grids)}}
    notes = (f"VAE on MNIST binarized at intensity > {THRESHOLD} (Bernoulli decoder): test negative ELBO "
             f"{metrics['test_neg_elbo']:.2f} nats per image (one-sample estimate, exact KL). Fréchet "
             f"distances on the features of {FEATURE_NET}, {s.n_samples} samples per model against the test "
             f"images: GAN {metrics['gan_fd']:.2f}, VAE {metrics['vae_fd']:.2f}, DDPM {metrics['ddpm_fd']:.2f}, "
             f"real training images {metrics['real_fd']:.2f} (the floor).")
    return {"metrics": metrics, "figures": figures, "files": files, "notes": notes,
            "tables": {"sample quality": table, "class coverage": shares},
            "histories": {"gan": gan.history, "vae": vae.history, "ddpm": ddpm.history}}


# --- registration ----------------------------------------------------------------------------------

def registered_vae(vae: VAERun, s: Settings):
    """The VAE as the registry stores it: images (n, 784) in [0, 1] -> negative ELBO per image (nats)."""
    from pipeline.models.generative import predict_neg_elbo
    from pipeline.training.export import TorchModel

    return TorchModel(vae.model, VAE, {"latent_dim": s.latent_dim}, predict_neg_elbo,
                      {"threshold": THRESHOLD, "seed": s.seed})


def registered_generator(gan: GANRun, s: Settings):
    """The GAN's generator as the registry stores it: noise (n, z_dim) -> images (n, 784) in [0, 1]."""
    from pipeline.models.generative import predict_images
    from pipeline.training.export import TorchModel

    return TorchModel(gan.model.generator, Generator, {"z_dim": s.z_dim}, predict_images, {"z_dim": s.z_dim})


def generator_example(s: Settings, n: int = 4) -> np.ndarray:
    """A few noise rows (n, z_dim) float32: the generator's input example for its signature."""
    return np.random.default_rng(s.seed).standard_normal((n, s.z_dim)).astype(np.float32)
