"""Unit 12 — generative models on MNIST: a GAN, a VAE and a minimal DDPM, measured side by side."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.generative import audit_generative
from pipeline.features import image_split
from pipeline.lessons import generative
from pipeline.lessons.classes import MNIST_DIGITS
from pipeline.report import ExtraModel, UnitReport
from pipeline.units.unit12_generative import SPEC as UNIT
from pipeline.units.unit12_generative import Unit12Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated

AUDIT_ROWS = 500  # test images for the trained encoder's KL check and the Fréchet self-distance


@flow(name="unit12-generative", log_prints=True)
def unit12_generative(params: Unit12Params = Unit12Params()) -> dict:
    mnist = ingest_validated("mnist", params)
    images, flat = image_split(mnist, flatten=False), image_split(mnist, flatten=True)
    settings = generative.settings(params)
    features = train_with("feature-classifier", generative.train_feature_net, flat, settings)
    table, results = evaluate("mnist-features", features, flat, cv=params.cv_folds, seed=params.seed)
    feature_net = features[generative.FEATURE_NET]
    gan = train_with("gan", generative.train_gan, images.X_train, settings)
    vae = train_with("vae", generative.train_vae, images.X_train, settings)
    ddpm = train_with("ddpm", generative.train_ddpm, images.X_train, settings)
    samples = train_with("samples", generative.generate, gan, vae, ddpm, settings)
    quality = generative.sample_quality(feature_net, samples, flat, settings)
    checks = audit(audit_generative, ddpm.schedule,
                   generative.classifier_features(feature_net, flat.X_test[:AUDIT_ROWS]),
                   vae.model, flat.X_test[:AUDIT_ROWS], seed=params.seed)

    parts = generative.report_parts(gan, vae, ddpm, samples, quality, images, settings)
    generator = ExtraModel(generative.registered_generator(gan, settings), "gan_fd", greater_is_better=False,
                           example=generative.generator_example(settings))
    report = UnitReport.for_unit(
        UNIT, params, results[generative.FEATURE_NET], {"maths": checks}, class_names=MNIST_DIGITS,
        data_refs=[mnist.ref], model=generative.registered_vae(vae, settings), model_example=flat.X_test[:4],
        extra_models={"generator": generator}, captions=generative.CAPTIONS,
        tables={"feature classifier": table, **parts.pop("tables")}, **parts)
    return register(report)
