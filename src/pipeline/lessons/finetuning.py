"""Unit 11 — fine-tuning a pretrained transformer (MiniLM-L6, a 6-layer BERT) on SST-2.

The unit compares, on the same dev (GLUE's 872 sentences) and test (the 1,821 labelled SST test
sentences) rows:

(a) the pretrained encoder with a new, untrained classification head — what pre-training alone gives;
(b) the frozen encoder's mean-pooled sentence embeddings + a logistic-regression probe;
(c) TF-IDF (words and bigrams) + logistic regression, no pre-training at all;
(d) full fine-tuning: every weight trained with ``transformers.Trainer`` (AdamW, linear decay);
(e) LoRA (``peft``): rank-8 adapters on the attention's query and value projections + the head.

plus a zero-shot baseline for the prompt-engineering note: a sentence is called positive when its
embedding is closer to a positive label prompt ("a great movie.") than to the negative one.

(a), (b) and the zero-shot rows read one cached forward pass of the base model per set of texts
(``Encoder``). Training goes through ``transformers.Trainer``: the Hugging Face loop brings the
dynamic-padding collator, the schedulers and the PEFT integration that this unit is about, so it
is used instead of our own ``pipeline.training`` loop.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.data.pretrained import DEFAULT_BASE_MODEL, BaseModel, resolve_base_model
from pipeline.models.sentiment import LABELS, SentimentModel

logger = logging.getLogger(__name__)

UNTRAINED = "(a) base model + untrained head"
PROBE = "(b) frozen encoder + logistic regression"
TFIDF = "(c) TF-IDF + logistic regression"
FINE_TUNED = "(d) full fine-tuning"
LORA = "(e) LoRA (query/value)"  # its rank: Settings.lora_r, in the run's meta
ZERO_SHOT = "zero-shot: nearest label prompt"
CLASS_NAMES = LABELS
MAX_LENGTH = 128  # tokens; SST-2's longest sentence has about 70 word pieces
LORA_TARGETS = ("query", "value")

# Prompt templates for the zero-shot baseline: (template, negative word, positive word). The
# sentence's embedding is compared with the embeddings of the two filled-in prompts.
TEMPLATES = (
    ("{}", "negative", "positive"),
    ("{}", "bad", "good"),
    ("this movie is {}.", "bad", "good"),
    ("a {} movie.", "terrible", "great"),
    ("the review is {}.", "negative", "positive"),
    ("i {} this film.", "hated", "loved"),
)


@dataclass(frozen=True)
class Settings:
    """How much data and training each row gets. ``None`` sizes mean all rows of the split."""

    train_size: int | None
    dev_size: int | None
    test_size: int | None
    epochs: int
    lr: float
    batch_size: int
    lora_lr: float
    lora_r: int
    lora_train_size: int | None
    probe_train_size: int | None
    eval_each_epoch: bool
    weight_decay: float = 0.01
    warmup: float = 0.06  # share of the steps with a linear warm-up
    max_length: int = MAX_LENGTH
    # Batches of phrases of like length (transformers' LengthGroupedSampler): dynamic padding then
    # pads little, 2.2x faster here. It sorts within random "mega-batches" of 50 batches, so on a
    # set smaller than that (quick's 256 phrases) it would sort the whole epoch by length: no.
    length_grouped: bool = False


# Quick: a smoke run in about a minute on 2 idle cores (it registers a champion; its accuracy means
# little). Full: all 67,349 training phrases for full fine-tuning, whole dev and test; LoRA and the
# probe on at most 20,000 of them. ``train_size`` caps all three. Learning rate 1e-4, not BERT-base's
# usual 2e-5 to 5e-5: this small encoder (6 layers, 384 wide) learns faster with it (one epoch on the
# same 8,000 phrases: 0.854 dev at 1e-4 against 0.837 at 5e-5); 1e-3 collapses (the "try next" row).
# Three epochs: 0.8968 dev against 0.8956 with two (LoRA 0.877 against 0.865), 38 % more time.
SETTINGS = {
    "quick": Settings(train_size=256, dev_size=300, test_size=300, epochs=1, lr=1e-4, batch_size=16, lora_lr=2e-3,
                      lora_r=8, lora_train_size=256, probe_train_size=256, eval_each_epoch=False),
    "full": Settings(train_size=None, dev_size=None, test_size=None, epochs=3, lr=1e-4, batch_size=32, lora_lr=1e-3,
                     lora_r=8, lora_train_size=20000, probe_train_size=20000, eval_each_epoch=True,
                     length_grouped=True),
}

CAPTIONS = {
    "comparison": "Dev accuracy against trainable parameters (log scale), one point per approach, the "
                  "training time in the label. Look for the jump from (a), pre-training alone, to "
                  "(d), full fine-tuning, and how close LoRA gets with a few percent of the weights.",
    "training_loss": "Training loss per logged step of full fine-tuning and LoRA. Look for the fast "
                      "early drop (the pretrained encoder already separates the classes once the "
                      "head learns where to look) and LoRA's slower start.",
    "templates": "Zero-shot dev accuracy of each prompt template (nearest label prompt by cosine "
                 "similarity of MiniLM sentence embeddings). Look at the spread: the wording of the "
                 "prompt alone moves accuracy by many points, with no training.",
}


def settings(profile: str, *, epochs: int | None = None, lr: float | None = None, lora_lr: float | None = None,
             batch_size: int | None = None, train_size: int | None = None, lora_r: int | None = None) -> Settings:
    """The profile's settings with any of the given overrides (``train_size`` caps LoRA's and the probe's too)."""
    config = SETTINGS[profile]
    overrides = {k: v for k, v in dict(epochs=epochs, lr=lr, lora_lr=lora_lr, batch_size=batch_size,
                                       train_size=train_size, lora_r=lora_r).items() if v is not None}
    if train_size is not None:
        overrides["lora_train_size"] = min(train_size, config.lora_train_size or train_size)
        overrides["probe_train_size"] = min(train_size, config.probe_train_size or train_size)
    return replace(config, **overrides)


def unit_settings(params) -> Settings:
    """``settings`` for a ``Unit11Params``."""
    return settings(params.profile, epochs=params.epochs, lr=params.lr, lora_lr=params.lora_lr,
                    batch_size=params.batch_size, train_size=params.train_size, lora_r=params.lora_r)


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class TextData:
    """SST-2 as texts and 0/1 labels (1 = positive)."""

    train: tuple[list[str], np.ndarray]
    dev: tuple[list[str], np.ndarray]
    test: tuple[list[str], np.ndarray]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train[0]), "dev": len(self.dev[0]), "test": len(self.test[0])}


def _rows(frame: pd.DataFrame, size: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    if size is not None and size < len(frame):
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), size, replace=False))
        frame = frame.iloc[keep]
    return frame["sentence"].astype(str).tolist(), frame["label"].to_numpy(dtype=np.int64)


def sst2_texts(dataset, config: Settings, seed: int = 0) -> TextData:
    """The dataset's splits as texts and labels, subsampled to ``config``'s sizes (rows drawn with
    ``seed``, original order kept; the full profile keeps all of dev and test)."""
    splits = dataset.splits
    return TextData(_rows(splits["train"], config.train_size, seed), _rows(splits["dev"], config.dev_size, seed),
                    _rows(splits["test"], config.test_size, seed))


def split(pair: tuple[list[str], np.ndarray]):
    """Rows to score as a ``Split`` for the shared evaluation (models come trained: no training rows)."""
    from pipeline.features import Split

    return Split(None, pair[0], None, pair[1])


def subset(pair: tuple[list[str], np.ndarray], size: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    """The first-come ``size`` rows of a shuffled copy (all when ``size`` is None or larger)."""
    texts, labels = pair
    if size is None or size >= len(texts):
        return texts, labels
    keep = np.sort(np.random.default_rng(seed + 1).choice(len(texts), size, replace=False))
    return [texts[i] for i in keep], labels[keep]


# ---------------------------------------------------------------------------------------------
# The base model


@contextmanager
def quiet_transformers():
    """Silence transformers' load reports and the progress bars of transformers and datasets (a new
    head is "MISSING" by design; a bar per tokenised split is noise in a flow's log)."""
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled(), ds_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars[0]:
            hf_logging.enable_progress_bar()
        if bars[1]:
            ds_logging.enable_progress_bar()


def load_base(name: str = DEFAULT_BASE_MODEL) -> BaseModel:
    """The base model resolved and checked (``pipeline.data.pretrained.resolve_base_model``)."""
    return resolve_base_model(name)


def load_tokenizer(base: BaseModel):
    from transformers import AutoTokenizer

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(base.path, trust_remote_code=False)


def base_classifier(base: BaseModel, seed: int = 0):
    """The pretrained encoder with a new 2-way head (random, seeded): model (a) and the start of (d)/(e)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            base.path, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
            label2id={name: i for i, name in enumerate(LABELS)}, use_safetensors=True, trust_remote_code=False)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


class Encoder:
    """The base classifier's forward pass over texts, cached per set of texts: its head's logits
    (model (a)) and the mean-pooled, L2-normalised last hidden states (the sentence embedding
    sentence-transformers computes for MiniLM; models (b) and zero-shot)."""

    def __init__(self, model, tokenizer, max_length: int = MAX_LENGTH, batch_size: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """(logits (n, 2), embeddings (n, hidden)) for ``texts``."""
        import torch

        texts = list(texts)
        key = (len(texts), hash(tuple(texts)))
        if key in self._cache:
            return self._cache[key]
        hidden = self.model.config.hidden_size
        logits, embeddings = np.zeros((len(texts), len(LABELS))), np.zeros((len(texts), hidden), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                out = self.model(**batch, output_hidden_states=True)
                mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
                pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, H)
                embeddings[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
                logits[rows] = out.logits.double().numpy()
        self._cache[key] = logits, embeddings
        return logits, embeddings


class UntrainedHead(ClassifierMixin, BaseEstimator):
    """Model (a): the base classifier as loaded — the pretrained encoder and a random head."""

    def __init__(self, encoder: Encoder | None = None):
        self.encoder = encoder

    def fit(self, X=None, y=None):
        self.classes_ = np.arange(len(LABELS))
        return self

    def predict_proba(self, X) -> np.ndarray:
        logits = self.encoder(X)[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


class FrozenProbe(ClassifierMixin, BaseEstimator):
    """Model (b): logistic regression on the frozen encoder's sentence embeddings."""

    def __init__(self, encoder: Encoder | None = None, C: float = 1.0):
        self.encoder = encoder
        self.C = C

    def fit(self, X, y):
        self.probe_ = LogisticRegression(C=self.C, max_iter=2000).fit(self.encoder(X)[1], y)
        self.classes_ = self.probe_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.probe_.predict_proba(self.encoder(X)[1])

    def predict(self, X) -> np.ndarray:
        return self.probe_.predict(self.encoder(X)[1])


class ZeroShot(ClassifierMixin, BaseEstimator):
    """Zero-shot: positive when the sentence embedding is closer (cosine) to the positive prompt.

    ``predict_proba`` is a softmax of the two similarities scaled by ``temperature`` (a score for
    ROC AUC, not a calibrated probability)."""

    def __init__(self, encoder: Encoder | None = None, template: str = "{}", negative: str = "negative",
                 positive: str = "positive", temperature: float = 0.05):
        self.encoder = encoder
        self.template = template
        self.negative = negative
        self.positive = positive
        self.temperature = temperature

    def fit(self, X=None, y=None):
        prompts = [self.template.format(self.negative), self.template.format(self.positive)]
        self.prompts_ = self.encoder(prompts)[1]  # (2, H), unit length
        self.classes_ = np.arange(len(LABELS))
        return self

    def predict_proba(self, X) -> np.ndarray:
        similarity = self.encoder(X)[1] @ self.prompts_.T / self.temperature  # (n, 2)
        e = np.exp(similarity - similarity.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def template_table(encoder: Encoder, dev: tuple[list[str], np.ndarray]) -> pd.DataFrame:
    """Zero-shot dev accuracy per prompt template, best first."""
    rows = []
    for template, negative, positive in TEMPLATES:
        model = ZeroShot(encoder, template, negative, positive).fit()
        accuracy = float((model.predict(dev[0]) == dev[1]).mean())
        rows.append({"template": template, "negative": negative, "positive": positive, "dev_accuracy": accuracy})
    return pd.DataFrame(rows).sort_values("dev_accuracy", ascending=False, ignore_index=True)


def best_zero_shot(encoder: Encoder, templates: pd.DataFrame) -> ZeroShot:
    top = templates.iloc[0]
    return ZeroShot(encoder, top["template"], top["negative"], top["positive"]).fit()


def tfidf_baseline(C: float = 4.0) -> Pipeline:
    """Model (c): TF-IDF over words and bigrams + logistic regression."""
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)),
                     ("logreg", LogisticRegression(C=C, max_iter=2000))])


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class Trained:
    """A fitted row of the comparison: the model, its trainable/total parameters, its training time."""

    model: Any
    trainable: int
    total: int
    seconds: float
    train_rows: int
    history: list[dict] = field(default_factory=list)


@contextmanager
def cpu_threads():
    """One torch thread on a CPU (see ``pipeline.training.device.one_thread``: on the shared 2-core
    machine two threads ran a training step 3x slower than one); untouched on a GPU."""
    import torch

    from pipeline.training.device import one_thread

    if torch.cuda.is_available():
        yield
        return
    with one_thread():
        yield


def fit_baselines(base: BaseModel, data: TextData, config: Settings, seed: int = 0) -> dict[str, Trained]:
    """Rows (a), (b), (c) and the zero-shot row, fitted (the zero-shot row's ``history`` is the
    templates table's records); each scores dev and test once here, so the evaluation reads caches."""
    with cpu_threads():
        rows = _fit_baselines(base, data, config, seed)
        for row in (rows[UNTRAINED], rows[PROBE]):
            row.model.predict_proba(data.dev[0]), row.model.predict_proba(data.test[0])
    return rows


def _fit_baselines(base: BaseModel, data: TextData, config: Settings, seed: int) -> dict[str, Trained]:
    tokenizer = load_tokenizer(base)
    encoder = Encoder(base_classifier(base, seed), tokenizer, config.max_length)
    trainable_head = sum(p.numel() for p in encoder.model.classifier.parameters())
    _, total = count_parameters(encoder.model)
    out = {UNTRAINED: Trained(UntrainedHead(encoder).fit(), 0, total, 0.0, 0)}
    probe_rows = subset(data.train, config.probe_train_size, seed)
    start = time.perf_counter()
    probe = FrozenProbe(encoder).fit(*probe_rows)
    n_probe = probe.probe_.coef_.size + probe.probe_.intercept_.size
    # the encoder without its (unused) classification head, plus the probe's own weights
    out[PROBE] = Trained(probe, n_probe, total - trainable_head + n_probe, time.perf_counter() - start,
                         len(probe_rows[0]))
    start = time.perf_counter()
    tfidf = tfidf_baseline().fit(*data.train)
    n_weights = tfidf.named_steps["logreg"].coef_.size + tfidf.named_steps["logreg"].intercept_.size
    out[TFIDF] = Trained(tfidf, n_weights, n_weights, time.perf_counter() - start, len(data.train[0]))
    templates = template_table(encoder, data.dev)
    out[ZERO_SHOT] = Trained(best_zero_shot(encoder, templates), 0, total - trainable_head, 0.0, 0,
                             history=templates.to_dict("records"))
    return out


def _dataset(tokenizer, pair: tuple[list[str], np.ndarray], max_length: int):
    """A ``datasets.Dataset`` of token ids (unpadded: the collator pads each batch)."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    texts, labels = pair
    # Fingerprints named from the content: otherwise datasets derives them by pickling the table and
    # the function with dill, which is slow and prints bytecode into a Prefect flow's log.
    digest = hashlib.sha256("\n".join(texts).encode() + np.asarray(labels, dtype=np.int64).tobytes())
    table = InMemoryTable.from_pydict({"sentence": list(texts), "label": [int(v) for v in labels]})
    data = Dataset(table, fingerprint=digest.hexdigest()[:32])
    digest.update(f"{tokenizer.name_or_path}:{max_length}".encode())
    return data.map(lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=max_length),
                    batched=True, remove_columns=["sentence"], new_fingerprint=digest.hexdigest()[:32])


def _accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def fine_tune(base: BaseModel, data: TextData, config: Settings, seed: int = 0, *, lora: bool = False,
              meta: dict | None = None) -> Trained:
    """Row (d) (every weight) or, with ``lora``, row (e) (LoRA adapters on query/value + the head),
    trained with ``transformers.Trainer``: AdamW, linear warm-up then decay, dynamic padding, the
    seed fixed. Returns the model as a ``SentimentModel`` (LoRA merged into the weights), its dev
    and test probabilities already computed."""
    with cpu_threads():
        trained = _fine_tune(base, data, config, seed, lora=lora, meta=meta)
        trained.model.predict_proba(data.dev[0]), trained.model.predict_proba(data.test[0])
    return trained


def _fine_tune(base: BaseModel, data: TextData, config: Settings, seed: int, *, lora: bool,
               meta: dict | None) -> Trained:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    tokenizer = load_tokenizer(base)
    model = base_classifier(base, seed)
    lr = config.lora_lr if lora else config.lr
    train_pair = subset(data.train, config.lora_train_size, seed) if lora else data.train
    if lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_r,
                                                 lora_alpha=2 * config.lora_r, lora_dropout=0.1,
                                                 target_modules=list(LORA_TARGETS)))
    trainable, total = count_parameters(model)
    with quiet_transformers():
        train_set = _dataset(tokenizer, train_pair, config.max_length)
        dev_set = _dataset(tokenizer, data.dev, config.max_length) if config.eval_each_epoch else None
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    grouped = config.length_grouped and steps_per_epoch >= 4 * 50  # several mega-batches of 50 batches
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=64, learning_rate=lr, weight_decay=config.weight_decay,
            lr_scheduler_type="linear", warmup_steps=int(config.warmup * steps_per_epoch * config.epochs),
            eval_strategy="epoch" if dev_set is not None else "no", save_strategy="no",
            logging_strategy="steps", logging_steps=max(1, steps_per_epoch // 10), report_to="none",
            use_cpu=not torch.cuda.is_available(), seed=seed, data_seed=seed, disable_tqdm=True,
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if grouped else "random")
        trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
                          data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                          compute_metrics=_accuracy if dev_set is not None else None)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        history = [dict(row) for row in trainer.state.log_history]
    if lora:
        model = model.merge_and_unload()
    model = model.cpu().eval()
    meta = {**(meta or {}), "base_model": base.name, "base_model_source": base.source,
            "base_model_revision": base.revision or "", "method": "lora" if lora else "full fine-tuning",
            "epochs": config.epochs, "learning_rate": lr, "batch_size": config.batch_size,
            "train_rows": len(train_pair[0]), "seed": seed}
    return Trained(SentimentModel(model, tokenizer, max_length=config.max_length, meta=meta), trainable, total,
                   seconds, len(train_pair[0]), history)


# ---------------------------------------------------------------------------------------------
# The comparison


def accuracy(model, pair: tuple[list[str], np.ndarray]) -> float:
    return float((np.asarray(model.predict(pair[0])) == pair[1]).mean())


def comparison_table(trained: dict[str, Trained], data: TextData) -> pd.DataFrame:
    """One row per approach: dev and test accuracy, trainable/total parameters, training rows and time."""
    rows = []
    for name, row in trained.items():
        rows.append({"model": name, "dev_accuracy": accuracy(row.model, data.dev),
                     "test_accuracy": accuracy(row.model, data.test), "trainable_params": row.trainable,
                     "total_params": row.total, "train_rows": row.train_rows, "train_seconds": round(row.seconds, 1)})
    return pd.DataFrame(rows).set_index("model")


def loss_history(history: list[dict]) -> list[dict]:
    """Trainer's log history as MLflow histories: one row per logged step (``epoch`` = the step)."""
    rows = []
    for entry in history:
        row = {k: float(v) for k, v in entry.items() if k in ("loss", "learning_rate", "grad_norm", "eval_loss",
                                                             "eval_accuracy")}
        if row and "step" in entry:
            rows.append({"epoch": int(entry["step"]), **row})
    return rows


def comparison_figure(table: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for name, row in table.iterrows():
        x = max(int(row["trainable_params"]), 1)
        ax.scatter(x, row["dev_accuracy"], s=40)
        label = name.split(" ")[0] if name.startswith("(") else "zero-shot"
        ax.annotate(f"{label}  {row['train_seconds']:.0f}s", (x, row["dev_accuracy"]),
                    textcoords="offset points", xytext=(6, -3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log; 1 = none)")
    ax.set_ylabel("SST-2 dev accuracy")
    ax.set_title("Accuracy against what is trained")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def training_loss_figure(histories: dict[str, list[dict]]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for name, history in histories.items():
        steps = [r["epoch"] for r in history if "loss" in r]
        ax.plot(steps, [r["loss"] for r in history if "loss" in r], marker=".", label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def templates_figure(templates: pd.DataFrame):
    from matplotlib.figure import Figure

    labels = [f"{t.format(n)} / {t.format(p)}" for t, n, p in
              zip(templates["template"], templates["negative"], templates["positive"], strict=True)]
    fig = Figure(figsize=(7, 3.4))
    ax = fig.subplots()
    ax.barh(labels[::-1], templates["dev_accuracy"].to_numpy()[::-1])
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("zero-shot dev accuracy")
    ax.set_xlim(0.4, 1.0)
    fig.tight_layout()
    return fig


def reference(model: SentimentModel, dev: tuple[list[str], np.ndarray]) -> dict:
    """The monitoring reference statistics of ``model`` on the dev texts (Unit 13's drift monitor)."""
    from pipeline.serving.monitoring import reference_statistics

    return reference_statistics(dev[0], model.predict_proba(dev[0]), model.tokenizer)


def model_meta(data_refs, base: BaseModel) -> dict:
    """What the saved model carries about its origin: the base model (name, source, revision), the
    training data's versions (``DataRef``: sha256, rows, profile) and the code's git commit."""
    from pipeline.registry import git_commit

    return {"base_model": base.name, "base_model_source": base.source, "base_model_revision": base.revision or "",
            "base_model_verified": base.verified, "data": [ref.as_dict() for ref in data_refs],
            "git_commit": git_commit()}


def unit_report(unit, params, trained: dict[str, Trained], data: TextData, dev_results: dict, test_results: dict,
                base: BaseModel, audits: dict, data_refs: list):
    """The run's ``UnitReport``: the fine-tuned model (with its monitoring reference) registered on
    dev accuracy, its test evaluation, the comparison table, figures, histories and notes."""
    from pipeline.plots import figure_to_png
    from pipeline.report import UnitReport

    model = trained[FINE_TUNED].model
    table = comparison_table(trained, data)
    metrics = {f"dev_{k.removeprefix('test_')}": float(v) for k, v in dev_results[FINE_TUNED].metrics.items()}
    model.meta["metrics"] = {**metrics, "test_accuracy": float(test_results[FINE_TUNED].metrics["test_accuracy"])}
    model.reference = reference(model, data.dev)
    short = {UNTRAINED: "untrained_head", PROBE: "probe", TFIDF: "tfidf", FINE_TUNED: "fine_tuned", LORA: "lora",
             ZERO_SHOT: "zero_shot"}
    for name, row in table.iterrows():
        metrics[f"{short[name]}_dev_accuracy"] = float(row["dev_accuracy"])
        metrics[f"{short[name]}_test_accuracy"] = float(row["test_accuracy"])
        metrics[f"{short[name]}_trainable_params"] = float(row["trainable_params"])
        metrics[f"{short[name]}_train_seconds"] = float(row["train_seconds"])
    templates = pd.DataFrame(trained[ZERO_SHOT].history)
    histories = {"fine_tuned": loss_history(trained[FINE_TUNED].history), "lora": loss_history(trained[LORA].history)}
    figures = {"comparison": comparison_figure(table), "templates": templates_figure(templates),
               "training_loss": training_loss_figure({"full fine-tuning": histories["fine_tuned"],
                                                      "LoRA": histories["lora"]})}
    report = UnitReport.for_unit(
        unit, params, test_results[FINE_TUNED], audits, class_names=CLASS_NAMES, data_refs=list(data_refs),
        model=model, model_example=pd.DataFrame({"text": data.dev[0][:2]}), holdout=data.dev,
        tables={"comparison": table, "prompt templates": templates},
        histories={k: v for k, v in histories.items() if v}, notes=notes(data, base, table))
    report.metrics.update(metrics)
    report.figures.update({name: figure_to_png(fig) for name, fig in figures.items()})
    report.captions.update(CAPTIONS)
    return report


def notes(data: TextData, base: BaseModel, table: pd.DataFrame) -> str:
    sizes = data.sizes()
    return (f"Base model {base.name} ({base.source}{', upstream sha256 verified' if base.verified else ''}). "
            f"SST-2: {sizes['train']:,} training phrases, dev = {sizes['dev']} of GLUE's 872 dev sentences (the "
            f"primary metric and the champion's holdout), test = {sizes['test']:,} of the 1,821 labelled SST test "
            f"sentences. Full fine-tuning: dev accuracy {table.loc[FINE_TUNED, 'dev_accuracy']:.4f}; LoRA "
            f"{table.loc[LORA, 'dev_accuracy']:.4f} with {int(table.loc[LORA, 'trainable_params']):,} trainable "
            "parameters. The registered model is the fully fine-tuned one, with its tokenizer.")
