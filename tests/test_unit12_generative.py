"""Unit 12: the generative models' shapes, the VAE's maths (reparameterisation, KL), the DDPM's forward
process and sampler, the sample-quality measures, registration, and the flow on the quick profile."""

from __future__ import annotations

import io
import math
import tempfile

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from pipeline.models.generative import (
    GAN,
    PIXELS,
    VAE,
    Denoiser,
    Discriminator,
    Generator,
    binarize,
    elbo_terms,
    neg_elbo_terms,
    predict_images,
    predict_neg_elbo,
    timestep_embedding,
)
from pipeline.scratch.generative import (
    DiffusionSchedule,
    ancestral_sample,
    bernoulli_nll,
    class_coverage,
    feature_stats,
    features_frechet_distance,
    forward_moments,
    frechet_distance,
    gaussian_kl,
    iterate_noising,
    q_sample,
    reparameterize,
)
from pipeline.units.unit12_generative import Unit12Params


@pytest.fixture
def one_thread():
    """Torch on one thread: the tiny models train in seconds instead of waiting on busy cores."""
    from pipeline.training.device import one_thread as torch_one_thread

    with torch_one_thread():
        yield


# --- shapes -----------------------------------------------------------------------------------------

def test_every_model_maps_the_shapes_it_promises(one_thread):
    torch.manual_seed(0)
    z = torch.randn(5, 64)
    images = Generator(64).eval()(z)
    assert images.shape == (5, PIXELS) and images.abs().max() <= 1.0  # tanh
    assert Discriminator()(images).shape == (5,)
    gan = GAN(16)
    assert gan.generator(torch.randn(3, 16)).shape == (3, PIXELS)
    logits, mu, logvar = VAE(latent_dim=8)(torch.rand(4, PIXELS))
    assert logits.shape == (4, PIXELS) and mu.shape == logvar.shape == (4, 8)
    x = torch.randn(6, 1, 28, 28)
    assert Denoiser(channels=8)(x, torch.randint(0, 50, (6,))).shape == x.shape
    assert timestep_embedding(torch.arange(7), 32).shape == (7, 32)


def test_the_denoiser_reads_its_timestep(one_thread):
    torch.manual_seed(0)
    model, x = Denoiser(channels=8).eval(), torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert not torch.allclose(model(x, torch.tensor([0, 0])), model(x, torch.tensor([40, 40])))


# --- the VAE's maths --------------------------------------------------------------------------------

def test_reparameterisation_gradients_are_one_and_eps_sigma_over_two():
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(16, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(16, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(16, 4, generator=generator, dtype=torch.float64)
    z = reparameterize(mu, logvar, eps)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu), rtol=0, atol=1e-15)
    torch.testing.assert_close(logvar.grad, eps * torch.exp(0.5 * logvar.detach()) / 2, rtol=0, atol=1e-15)


def test_the_elbo_gradient_reaches_the_encoder_through_the_sample():
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, hidden=(32,))
    x = (torch.rand(8, PIXELS) > 0.5).float()
    recon, _ = neg_elbo_terms(vae, x)
    recon.mean().backward()  # the reconstruction term alone: its gradient flows only through z
    assert vae.to_mu.weight.grad.abs().sum() > 0 and vae.to_logvar.weight.grad.abs().sum() > 0
    assert vae.encoder[0].weight.grad.abs().sum() > 0


def test_kl_matches_torch_distributions_and_a_monte_carlo_estimate():
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    logvar = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    ours = gaussian_kl(mu, logvar)  # (10,)
    q, p = Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(ours, kl_divergence(q, p).sum(-1), rtol=1e-12, atol=1e-12)
    # E_q[log q(z) - log p(z)] from 200,000 draws: within 5 standard errors of the closed form
    z = q.sample((200_000,))  # (N, 10, 3)
    log_ratio = (q.log_prob(z) - p.log_prob(z)).sum(-1)  # (N, 10)
    standard_error = log_ratio.std(0) / math.sqrt(len(z))
    assert ((log_ratio.mean(0) - ours).abs() <= 5 * standard_error).all()
    assert gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max() == 0  # q = p


def test_bernoulli_nll_is_the_summed_binary_cross_entropy():
    torch.manual_seed(0)
    logits, x = torch.randn(3, 784, dtype=torch.float64), (torch.rand(3, 784) > 0.5).double()
    manual = -(x * torch.log(torch.sigmoid(logits)) + (1 - x) * torch.log(1 - torch.sigmoid(logits))).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x), manual, rtol=1e-10, atol=1e-10)


def test_binarize_thresholds_intensity_at_one_half():
    images = np.array([[[0, 127, 128, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(binarize(images).numpy(), [[0, 0, 1, 1]])
    np.testing.assert_array_equal(binarize(np.array([[0.2, 0.5, 0.51]])).numpy(), [[0, 0, 1]])


# --- the DDPM -----------------------------------------------------------------------------------------

def test_linear_schedule_ends_near_pure_noise_and_refuses_bad_settings():
    schedule = DiffusionSchedule.linear(200)
    assert schedule.timesteps == 200 and (schedule.betas.diff() > 0).all()
    assert float(schedule.alpha_bars[-1]) < 1e-3 and float(schedule.alpha_bars[0]) > 0.99
    with pytest.raises(ValueError, match="at least 2"):
        DiffusionSchedule.linear(1)
    with pytest.raises(ValueError, match="betas"):
        DiffusionSchedule.linear(100, beta_start=0.5, beta_end=0.1)


def test_closed_form_moments_equal_the_one_step_recursion():
    schedule = DiffusionSchedule.linear(100)
    for t in range(100):
        scale, variance = forward_moments(schedule, t)
        assert scale == pytest.approx(math.sqrt(float(schedule.alpha_bars[t])), abs=1e-12)
        assert variance == pytest.approx(1 - float(schedule.alpha_bars[t]), abs=1e-12)


@pytest.mark.parametrize("t", [0, 10, 25, 49])
def test_forward_closed_form_matches_iterated_noising(t):
    """Both ways of reaching x_t from the same x_0: mean and variance within 5 standard errors
    (40,000 draws of 4 pixels, fixed seed)."""
    schedule, n = DiffusionSchedule.linear(50), 40_000
    x0 = torch.tensor([-1.0, -0.2, 0.3, 1.0], dtype=torch.float64).expand(n, -1)
    iterated = iterate_noising(schedule, x0, t, torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    closed = q_sample(schedule, x0, torch.full((n,), t), torch.randn(x0.shape, generator=generator, dtype=x0.dtype))
    variance = 1 - float(schedule.alpha_bars[t])
    mean_se, var_se = math.sqrt(variance / n), variance * math.sqrt(2 / (n - 1))
    for draws in (iterated, closed):
        assert ((draws.mean(0) - math.sqrt(float(schedule.alpha_bars[t])) * x0[0]).abs() <= 5 * mean_se).all()
        assert ((draws.var(0) - variance).abs() <= 5 * var_se).all()
    assert ((iterated.mean(0) - closed.mean(0)).abs() <= 5 * math.sqrt(2) * mean_se).all()


def test_q_sample_broadcasts_one_timestep_per_image():
    schedule = DiffusionSchedule.linear(20)
    x0, noise = torch.ones(3, 1, 28, 28), torch.zeros(3, 1, 28, 28)
    xt = q_sample(schedule, x0, torch.tensor([0, 5, 19]), noise)
    assert xt.shape == x0.shape and xt.dtype == x0.dtype
    for row, t in enumerate([0, 5, 19]):
        assert torch.allclose(xt[row], torch.full((1, 28, 28), math.sqrt(float(schedule.alpha_bars[t]))))


def test_ancestral_sampler_shapes_determinism_and_an_exact_denoiser():
    schedule = DiffusionSchedule.linear(30)
    target = 0.4  # the data is the single point x_0 = 0.4 everywhere; the ideal ε is then known exactly

    def ideal(x, t):
        alpha_bar = schedule.alpha_bars[t].float().view(-1, 1, 1, 1)
        return (x - alpha_bar.sqrt() * target) / (1 - alpha_bar).sqrt()

    first, kept = ancestral_sample(ideal, schedule, (5, 1, 28, 28), torch.Generator().manual_seed(0),
                                   keep=(30, 15, 0))
    again, _ = ancestral_sample(ideal, schedule, (5, 1, 28, 28), torch.Generator().manual_seed(0))
    assert first.shape == (5, 1, 28, 28) and set(kept) == {30, 15, 0}
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(first, torch.full_like(first, target), rtol=0, atol=1e-4)
    assert kept[30].std() > 0.9  # x_T is pure noise


# --- sample quality ---------------------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.2, 3, 5), rng.uniform(0.2, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0, abs=1e-10)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(mu1, np.diag(var1), mu2[:3], np.diag(var2[:3]))


def test_frechet_distance_from_samples_approaches_the_gaussians_and_survives_few_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (20_000, 3)), rng.normal(1, 2, (20_000, 3))
    assert features_frechet_distance(a, b) == pytest.approx(3 * 1 + 3 * 1, rel=0.05)  # 3·1² + 3·(2-1)²
    few = rng.normal(size=(10, 50))  # fewer samples than dimensions: a singular covariance
    assert abs(features_frechet_distance(few, few)) < 1e-3
    mean, cov = feature_stats(a)
    assert mean.shape == (3,) and cov.shape == (3, 3)


def test_class_coverage_counts_shares_and_present_classes():
    predicted = np.array([0] * 50 + [1] * 49 + [2])  # 2 holds 1 %, the threshold; 3..9 are missing
    coverage = class_coverage(predicted)
    np.testing.assert_allclose(coverage["shares"][:3], [0.5, 0.49, 0.01])
    assert coverage["classes_present"] == 3 and coverage["min_share"] == 0.0
    assert class_coverage(np.arange(10).repeat(3))["entropy_bits"] == pytest.approx(math.log2(10))
    with pytest.raises(ValueError, match="0..9"):
        class_coverage(np.array([10]))


# --- training steps in the shared loop ----------------------------------------------------------------

def test_the_three_steps_train_in_the_shared_loop(one_thread):
    from pipeline.training import TrainConfig, Trainer
    from pipeline.training.generative import DiffusionStep, GANStep, VAEStep

    images = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    config = TrainConfig(epochs=2, batch_size=32, device="cpu")
    torch.manual_seed(0)
    gan = Trainer(GAN(8), config, GANStep(), callbacks=[]).fit(images)
    assert {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake"} <= set(gan.history[-1])
    vae = Trainer(VAE(4, hidden=(32,)), config, VAEStep(), callbacks=[]).fit(images[:48], None, images[48:])
    row = vae.history[-1]
    assert row["train_loss"] == pytest.approx(row["train_recon"] + row["train_kl"], rel=1e-5)
    assert {"val_loss", "val_recon", "val_kl"} <= set(row)
    ddpm = Trainer(Denoiser(4), config, DiffusionStep(DiffusionSchedule.linear(20)), callbacks=[]).fit(images)
    assert len(ddpm.history) == 2 and ddpm.history[-1]["train_loss"] > 0


# --- registration and files -------------------------------------------------------------------------

def test_registered_vae_and_generator_load_back_and_predict(tmp_path, one_thread):
    from pipeline.training.export import TorchModel, load_torch_model, save_torch_model

    torch.manual_seed(0)
    vae = VAE(latent_dim=8)
    model = TorchModel(vae, VAE, {"latent_dim": 8}, predict_neg_elbo, {"threshold": 0.5, "seed": 0})
    images = np.random.default_rng(0).random((3, 784)).astype(np.float32)
    scores = model.predict(images)
    assert scores.shape == (3,) and (scores > 0).all()
    recon, kl = elbo_terms(vae, binarize(images), seed=0)
    np.testing.assert_allclose(scores, (recon + kl).numpy(), rtol=1e-6)
    np.testing.assert_allclose(load_torch_model(save_torch_model(model, tmp_path / "vae")).predict(images), scores,
                               rtol=1e-6)

    generator = Generator(16)
    gmodel = TorchModel(generator, Generator, {"z_dim": 16}, predict_images, {"z_dim": 16})
    noise = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    out = load_torch_model(save_torch_model(gmodel, tmp_path / "gen")).predict(noise)
    assert out.shape == (4, 784) and 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(out, gmodel.predict(noise), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="noise of shape"):
        gmodel.predict(noise[:, :8])


def test_report_files_are_written_under_files_and_paths_may_not_escape(tmp_path):
    from pipeline.registry import _file_path, _write_run_files
    from pipeline.report import UnitReport

    report = UnitReport("unitX", "m", True, {}, metrics={"m": 1.0},
                        files={"progress.gif": b"GIF89a", "epochs/epoch_01.png": b"png"})
    _write_run_files(report, tmp_path)
    assert (tmp_path / "files" / "progress.gif").read_bytes() == b"GIF89a"
    assert (tmp_path / "files" / "epochs" / "epoch_01.png").read_bytes() == b"png"
    for bad in ("../escape.gif", "/abs.gif", "a/./b.png", ""):
        with pytest.raises(ValueError, match="relative path"):
            _file_path(bad)


def test_gif_has_one_frame_per_grid():
    from PIL import Image

    from pipeline.lessons.generative import gif_bytes, tile

    grids = [tile(np.full((64, 28, 28), level)) for level in (0.0, 0.5, 1.0)]
    assert grids[0].shape == (2 * (8 * 30 + 2), 2 * (8 * 30 + 2)) and grids[2].max() == 255
    with Image.open(io.BytesIO(gif_bytes(grids))) as gif:
        assert gif.n_frames == 3


def test_the_audit_passes_and_fails_when_the_kl_is_wrong(monkeypatch):
    import pipeline.audit.generative as module

    features = np.random.default_rng(0).normal(size=(200, 8))
    assert module.audit_generative(DiffusionSchedule.linear(20), features).passed
    monkeypatch.setattr(module, "gaussian_kl", lambda mu, logvar: -0.5 * torch.sum(1 + logvar - mu.pow(2), -1))
    report = module.audit_generative(DiffusionSchedule.linear(20), features)
    assert [f.check for f in report.failures] == ["KL closed form = torch kl_divergence (random Gaussians)"]


def test_params_bounds():
    assert Unit12Params().profile == "full" and Unit12Params().cv_folds == 0
    with pytest.raises(ValueError):
        Unit12Params(latent_dim=1)
    with pytest.raises(ValueError):
        Unit12Params(timesteps=5)


def test_settings_take_the_overrides():
    from pipeline.lessons.generative import settings

    s = settings(Unit12Params(profile="quick", epochs_gan=3, latent_dim=2, timesteps=20, seed=4))
    assert (s.gan_epochs, s.latent_dim, s.timesteps, s.seed, s.vae_epochs) == (3, 2, 20, 4, 2)
    assert settings(Unit12Params()).n_samples == 500


# --- the flow ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_unit12_flow_registers_the_vae_and_the_generator(prefect_harness, fresh_home):
    from flows.unit12_generative import unit12_generative
    from pipeline.registry import client, load_version

    outcome = unit12_generative(Unit12Params(profile="quick", timesteps=20, n_samples=50))
    assert outcome["status"] == "succeeded" and outcome["primary_metric"] == "test_neg_elbo"
    assert 50 < outcome["value"] < 400 and (outcome["version"], outcome["alias"]) == ("1", "champion")
    metrics = client().get_run(outcome["run_id"]).data.metrics
    for model in ("gan", "vae", "ddpm", "real"):
        assert {f"{model}_fd", f"{model}_classes_present", f"{model}_min_class_share"} <= set(metrics)
    assert metrics["real_fd"] < metrics["ddpm_fd"] and "test_accuracy" in metrics
    with tempfile.TemporaryDirectory() as tmp:
        folder = client().download_artifacts(outcome["run_id"], "files", tmp)
        assert open(f"{folder}/gan_progress.gif", "rb").read(6) == b"GIF89a"
        assert open(f"{folder}/gan_epochs/epoch_00.png", "rb").read(4) == b"\x89PNG"
    vae = load_version("mlpath-unit12", "1")
    assert vae.predict(np.zeros((2, 784), dtype=np.float32)).shape == (2,)
    generator = load_version("mlpath-unit12-generator", "1")
    assert generator.predict(np.zeros((3, 64), dtype=np.float32)).shape == (3, 784)
