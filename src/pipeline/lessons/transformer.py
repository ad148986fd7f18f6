"""The paper unit — "Attention Is All You Need" rebuilt small enough for a CPU.

Two experiments, both trained in the shared loop (``pipeline.training``):

1. The encoder–decoder Transformer (``pipeline.models.transformer``) learns to reverse digit strings
   (``digit_strings``): teacher forcing with label smoothing ε = 0.1, Adam (β₂ = 0.98) and the
   paper's warm-up schedule (``TrainConfig(scheduler="noam")``), then greedy decoding, scored by
   exact match on held-out strings the model never saw.
2. The decoder-only Transformer as a character language model on Tiny Shakespeare against Unit 9's
   `CharLSTM` of about the same size, each trained for the same wall-clock budget of training
   time (validation excluded) on the same split and batches; validation loss in nats per
   character, side by side, with samples.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.models.transformer import Transformer, TransformerLM, encode_texts, predict_sequences
from pipeline.settings import mlpath_home
from pipeline.training import Callback, TrainConfig, Trainer, default_callbacks
from pipeline.training.device import one_thread
from pipeline.training.seq2seq import Seq2SeqStep, exact_match_scores

ALPHABET = "0123456789"
SRC_LEN = 12  # the longest digit string
TGT_LEN = SRC_LEN + 1  # its reversal and </s>
SEQ2SEQ = "Transformer (encoder-decoder)"
LM_TRANSFORMER = "Transformer LM (decoder-only)"
LM_LSTM = "CharLSTM (Unit 9)"
SHORT_NAMES = {SEQ2SEQ: "seq2seq", LM_TRANSFORMER: "lm_transformer", LM_LSTM: "lm_lstm"}  # metric names
UNIT_ID = "paper"

# Per profile: the seq2seq model's arguments and its training. Full: d_model 64, 2 + 2 layers, the
# paper's recipe scaled down (warm-up 400 updates instead of 4,000; peak lr set directly).
SEQ2SEQ_SETTINGS: dict[str, tuple[dict[str, Any], TrainConfig]] = {
    "quick": (dict(d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=64, dropout=0.1),
              TrainConfig(epochs=2, batch_size=64, lr=3e-3, scheduler="noam", warmup_steps=60,
                          label_smoothing=0.1, grad_clip=1.0, label=SEQ2SEQ)),
    "full": (dict(d_model=64, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=256, dropout=0.1),
             TrainConfig(epochs=10, batch_size=128, lr=2e-3, scheduler="noam", warmup_steps=400,
                         label_smoothing=0.1, grad_clip=1.0, label=SEQ2SEQ)),
}


@dataclass(frozen=True)
class LMSettings:
    """One profile of the language-model comparison. ``budget_s`` seconds of training each;
    validation every ``eval_every`` updates on the first ``curve_chars`` validation characters
    (the figure), and once at the end on all of them (the table)."""

    train_chars: int | None
    budget_s: float
    eval_every: int
    curve_chars: int
    batch_size: int
    seq_len: int
    transformer: dict[str, Any]
    lstm: dict[str, Any]
    transformer_config: TrainConfig
    lstm_config: TrainConfig
    sample_chars: int


LM_SETTINGS = {
    "quick": LMSettings(
        train_chars=60_000, budget_s=2.0, eval_every=15, curve_chars=4_000, batch_size=16, seq_len=32,
        transformer=dict(d_model=48, n_heads=4, n_layers=2, d_ff=96, dropout=0.0, block_size=32),
        lstm=dict(embed_dim=32, hidden_size=96, num_layers=1, dropout=0.0),
        transformer_config=TrainConfig(epochs=1000, lr=3e-3, scheduler="noam", warmup_steps=20, grad_clip=1.0,
                                       label=LM_TRANSFORMER),
        lstm_config=TrainConfig(epochs=1000, lr=3e-3, grad_clip=1.0, label=LM_LSTM),
        sample_chars=120),
    "full": LMSettings(
        train_chars=None, budget_s=360.0, eval_every=100, curve_chars=20_000, batch_size=32, seq_len=128,
        transformer=dict(d_model=128, n_heads=4, n_layers=4, d_ff=512, dropout=0.1, block_size=128),
        lstm=dict(embed_dim=64, hidden_size=256, num_layers=2, dropout=0.1),
        transformer_config=TrainConfig(epochs=100_000, lr=1e-3, scheduler="noam", warmup_steps=200, grad_clip=1.0,
                                       label=LM_TRANSFORMER),
        lstm_config=TrainConfig(epochs=100_000, lr=2e-3, grad_clip=1.0, label=LM_LSTM),
        sample_chars=400),
}
SAMPLE_PROMPT, SAMPLE_TEMPERATURE = "ROMEO:", 0.8

# nanoGPT's character-level Shakespeare baseline (README, "quick start").
NANOGPT_VAL_LOSS = 1.47

CAPTIONS = {
    "seq2seq_training": "Left: the label-smoothed training and validation loss per epoch (with ε = 0.1 it "
                        "cannot reach 0). Right: validation exact match under teacher forcing, which equals "
                        "greedy exact match. Look for the sudden jump: the model finds the reversal "
                        "rule (position i attends to position n - 1 - i) all at once, not digit by digit.",
    "learning_rate": "The paper's schedule as our loop applied it: a linear warm-up, then a decay as "
                     "1/√step. Post-norm Transformers diverge without the warm-up.",
    "lm_val_loss_vs_time": "Validation loss (nats per character, on the first part of the held-out text) "
                           "against seconds of training, same budget and batches for both models. "
                           "Look at where each curve is when the budget runs out, and how fast each falls "
                           "early on: per second of one CPU thread, which architecture learns more?",
}


# --- the sequence-to-sequence task -------------------------------------------------------------


def seq2seq_tensors(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Source ids (n, SRC_LEN) and target ids with <s> and </s> (n, TGT_LEN + 1)."""
    src = encode_texts(frame["source"].tolist(), ALPHABET, SRC_LEN)
    tgt = encode_texts(frame["target"].tolist(), ALPHABET, TGT_LEN + 1, bos=True, eos=True)
    return src, tgt


def seq2seq_kwargs(profile: str) -> dict[str, Any]:
    """The seq2seq model's constructor arguments (plain JSON: the registry rebuilds it from them)."""
    vocab = 3 + len(ALPHABET)
    return dict(src_vocab=vocab, tgt_vocab=vocab, max_len=TGT_LEN + 1, share_embeddings=True,
                **SEQ2SEQ_SETTINGS[profile][0])


META = {"alphabet": ALPHABET, "src_len": SRC_LEN, "tgt_len": TGT_LEN}


@dataclass
class Seq2SeqRun:
    """The trained seq2seq Transformer, its per-epoch history and its training time."""

    module: Transformer
    kwargs: dict[str, Any]
    history: list[dict[str, float]]
    seconds: float
    lrs: list[float]


def train_seq2seq(splits: dict[str, pd.DataFrame], profile: str, seed: int, epochs: int | None = None) -> Seq2SeqRun:
    """The encoder–decoder Transformer trained on ``splits["train"]``, validated on ``splits["val"]``.

    Checkpoints go to ``MLPATH_HOME/runs/paper/seq2seq/``: an interrupted run resumes.
    """
    kwargs = seq2seq_kwargs(profile)
    config = replace(SEQ2SEQ_SETTINGS[profile][1], seed=seed, epochs=epochs or SEQ2SEQ_SETTINGS[profile][1].epochs,
                     checkpoint_dir=str(mlpath_home() / "runs" / UNIT_ID / f"seq2seq-{profile}"))
    torch.manual_seed(seed)
    module = Transformer(**kwargs)
    lrs = LearningRates()
    trainer = Trainer(module, config, Seq2SeqStep(TGT_LEN), [lrs, *default_callbacks(config)])
    with one_thread():
        result = trainer.fit(*seq2seq_tensors(splits["train"]), *seq2seq_tensors(splits["val"]))
    return Seq2SeqRun(trainer.model.cpu().eval(), kwargs, result.history, result.seconds, lrs.values)


class LearningRates(Callback):
    """Every update's learning rate, for the schedule's figure."""

    def __init__(self):
        self.values: list[float] = []

    def on_fit_start(self, trainer) -> None:
        self.values = []

    def on_batch_end(self, trainer, index, metrics) -> None:
        self.values.append(trainer.optimizer.param_groups[0]["lr"])


def seq2seq_model(run: Seq2SeqRun):
    """The trained seq2seq Transformer as a registrable `TorchModel`: strings in, reversals out."""
    from pipeline.training.export import TorchModel

    return TorchModel(run.module, Transformer, run.kwargs, predict_sequences, META)


def evaluate_seq2seq(model, frame: pd.DataFrame, prefix: str = "test_") -> tuple[dict[str, float], pd.DataFrame,
                                                                                   pd.DataFrame]:
    """Greedy decoding of ``frame["source"]`` scored against ``frame["target"]``.

    Returns the metrics (``<prefix>exact_match``, ``char_accuracy``, ``length_accuracy``), exact
    match by source length, and the first wrong outputs (or the first rows when none is wrong).
    """
    with one_thread():
        predicted = list(model.predict(frame["source"].to_numpy()))
    expected = frame["target"].tolist()
    metrics = {prefix + k: v for k, v in exact_match_scores(predicted, expected).items()}
    metrics[prefix + "sequences"] = float(len(frame))
    scored = frame.assign(predicted=predicted, length=frame["source"].str.len(),
                          correct=[p == e for p, e in zip(predicted, expected, strict=True)])
    by_length = scored.groupby("length").agg(sequences=("correct", "size"), exact_match=("correct", "mean"))
    wrong = scored[~scored["correct"]]
    examples = (wrong if len(wrong) else scored).head(10)[["source", "target", "predicted", "correct"]]
    return metrics, by_length, examples.reset_index(drop=True)


# --- the character language models ------------------------------------------------------------


class BatchCycle:
    """The next ``chunk`` batches of a list on each pass, wrapping around at its end: an "epoch"
    of the loop is then ``chunk`` updates, so the loop validates (and checks the clock) that often."""

    def __init__(self, batches: list, chunk: int):
        self.batches, self.chunk, self.position = batches, min(chunk, len(batches)), 0

    def __len__(self) -> int:
        return self.chunk

    def __iter__(self):
        for _ in range(self.chunk):
            yield self.batches[self.position]
            self.position = (self.position + 1) % len(self.batches)


class TrainingClock(Callback):
    """Counts training time only (validation excluded), adds it to each history row as
    ``train_seconds`` with the updates so far as ``steps``, and stops the fit once ``budget_s``
    seconds are spent. Put it first, so the other callbacks see both columns."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.total, self.steps, self.started, self.last = 0.0, 0, 0.0, 0.0

    def on_fit_start(self, trainer) -> None:
        self.total, self.steps = 0.0, 0

    def on_epoch_start(self, trainer, epoch) -> None:
        self.started = self.last = time.perf_counter()

    def on_batch_end(self, trainer, index, metrics) -> None:
        self.last = time.perf_counter()
        self.steps += 1

    def on_epoch_end(self, trainer, epoch, row) -> None:
        self.total += self.last - self.started
        row["train_seconds"], row["steps"] = self.total, float(self.steps)
        if self.total >= self.budget_s:
            trainer.should_stop = True


@dataclass
class LMRun:
    """One trained character model: its history (val loss by training seconds), final scores, sample."""

    name: str
    module: torch.nn.Module
    parameters: int
    history: list[dict[str, float]]
    train_seconds: float
    steps: int
    val_loss: float
    sample: str


def n_parameters(module: torch.nn.Module) -> int:
    """Trainable parameters, a shared (tied) matrix counted once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def char_lm_data(text: str, profile: str) -> tuple[Any, np.ndarray, np.ndarray]:
    """Unit 9's vocabulary and 90/10 split of Tiny Shakespeare, as ids: (vocab, train, val).
    The quick profile keeps the first ``train_chars`` training characters and a tenth as many for
    validation."""
    from pipeline.data.chars import CharVocab, char_split

    vocab = CharVocab.fit(text)
    train, val = char_split(text, 0.1)
    limit = LM_SETTINGS[profile].train_chars
    if limit is not None:
        train, val = train[:limit], val[: limit // 10]
    return vocab, vocab.encode(train), vocab.encode(val)


def train_char_models(text: str, profile: str, seed: int, budget_s: float | None = None) -> dict[str, LMRun]:
    """The decoder-only Transformer and a `CharLSTM` of about its size, each trained for the same
    seconds of training on the same batches (`pipeline.training.lm`), scored on the same
    validation text; by name."""
    from pipeline.models.rnn import CharLSTM
    from pipeline.training.lm import LanguageModelStep, evaluate_lm, lm_batches, sample

    settings = LM_SETTINGS[profile]
    budget = settings.budget_s if budget_s is None else budget_s
    vocab, train_ids, val_ids = char_lm_data(text, profile)
    batches = lm_batches(train_ids, settings.batch_size, settings.seq_len)
    curve = lm_batches(val_ids[: settings.curve_chars], settings.batch_size, settings.seq_len)
    models = {
        LM_TRANSFORMER: (lambda: TransformerLM(vocab.size, **settings.transformer), settings.transformer_config),
        LM_LSTM: (lambda: CharLSTM(vocab.size, **settings.lstm), settings.lstm_config),
    }
    runs = {}
    for name, (build, config) in models.items():
        torch.manual_seed(seed)
        module = build()
        config = replace(config, seed=seed)
        clock = TrainingClock(budget)
        trainer = Trainer(module, config, LanguageModelStep(), [clock, *default_callbacks(config)])
        with one_thread():
            result = trainer.fit(BatchCycle(batches, settings.eval_every), X_val=curve)
            module = trainer.model.cpu().eval()
            runs[name] = LMRun(
                name, module, n_parameters(module), result.history, clock.total, clock.steps,
                evaluate_lm(module, val_ids, settings.batch_size, settings.seq_len),
                sample(module, vocab, SAMPLE_PROMPT, settings.sample_chars, SAMPLE_TEMPERATURE, seed))
    return runs


def lm_table(runs: dict[str, LMRun]) -> pd.DataFrame:
    """The comparison: parameters, training seconds and updates, validation nats and bits per char."""
    rows = [{"model": r.name, "parameters": r.parameters, "train_seconds": r.train_seconds, "steps": r.steps,
             "val_nats_per_char": r.val_loss, "val_bits_per_char": r.val_loss / math.log(2)} for r in runs.values()]
    return pd.DataFrame(rows).set_index("model")


def lm_metrics(runs: dict[str, LMRun]) -> dict[str, float]:
    """``lm_transformer_val_loss``, ``lm_lstm_val_loss`` (nats/char) and their parameter counts."""
    metrics = {}
    for name, run in runs.items():
        key = SHORT_NAMES[name]
        metrics |= {f"{key}_val_loss": run.val_loss, f"{key}_parameters": float(run.parameters),
                    f"{key}_train_seconds": run.train_seconds}
    return metrics


# --- figures and the report -------------------------------------------------------------------


def seq2seq_figure(history: list[dict[str, float]]):
    """Loss and validation exact match per epoch."""
    from matplotlib.figure import Figure

    frame = pd.DataFrame(history)
    fig = Figure(figsize=(10, 3.6))
    (left, right) = fig.subplots(1, 2)
    left.plot(frame["epoch"], frame["train_loss"], label="train")
    left.plot(frame["epoch"], frame["val_loss"], label="validation")
    left.set(xlabel="epoch", ylabel="label-smoothed cross-entropy", title="Loss")
    left.legend()
    right.plot(frame["epoch"], frame["val_exact_match"], color="tab:green")
    right.set(xlabel="epoch", ylabel="exact match", ylim=(0, 1.02), title="Validation exact match")
    fig.tight_layout()
    return fig


def learning_rate_figure(lrs: list[float]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    ax.plot(np.arange(1, len(lrs) + 1), lrs)
    ax.set(xlabel="update", ylabel="learning rate", title="Warm-up, then 1/√step")
    fig.tight_layout()
    return fig


def lm_figure(runs: dict[str, LMRun]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    for run in runs.values():
        frame = pd.DataFrame(run.history)
        ax.plot(frame["train_seconds"], frame["val_loss"], marker=".", label=f"{run.name}, {run.parameters:,} params")
    ax.set(xlabel="seconds of training (one process)", ylabel="validation loss (nats/char)",
           title="Character language models on Tiny Shakespeare")
    ax.legend()
    fig.tight_layout()
    return fig


def figures(seq: Seq2SeqRun, runs: dict[str, LMRun]) -> dict[str, bytes]:
    from pipeline.plots import figure_to_png

    return {"seq2seq_training": figure_to_png(seq2seq_figure(seq.history)),
            "learning_rate": figure_to_png(learning_rate_figure(seq.lrs)),
            "lm_val_loss_vs_time": figure_to_png(lm_figure(runs))}


def _markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A Markdown table with whole numbers as such and fractions to 4 places."""
    def cell(value):
        if isinstance(value, bool | np.bool_):
            return str(value)
        if isinstance(value, int | np.integer):
            return f"{value:,}"
        return f"{value:.4f}" if isinstance(value, float | np.floating) else value

    return frame.map(cell).to_markdown(index=index, disable_numparse=True)


def report_document(profile: str, metrics: dict[str, float], seq: Seq2SeqRun, by_length: pd.DataFrame,
                    examples: pd.DataFrame, runs: dict[str, LMRun]) -> str:
    """The unit's report: the question, both experiments' results with figures, samples, conclusion."""
    table = lm_table(runs)
    transformer, lstm = runs[LM_TRANSFORMER], runs[LM_LSTM]
    better = transformer.name if transformer.val_loss < lstm.val_loss else lstm.name
    samples = "\n\n".join(f"**{r.name}** (temperature {SAMPLE_TEMPERATURE}):\n\n```text\n{r.sample}\n```"
                          for r in runs.values())
    epochs = len(seq.history)
    return f"""# Attention Is All You Need, small ({profile} profile)

**Question.** Does a Transformer built from our own modules, trained with the paper's recipe
(warm-up learning rate, label smoothing, Adam with β₂ = 0.98), solve a sequence-to-sequence task
exactly on sequences it never saw? And as a decoder-only character model, how does it compare with
Unit 9's LSTM of about the same size, given the same seconds of training?

## 1. Reversing digit strings (encoder–decoder)

{epochs} epochs in {seq.seconds:.0f} s. Greedy decoding on {int(metrics['test_sequences'])} held-out
strings: **exact match {metrics['test_exact_match']:.4f}**, character accuracy
{metrics['test_char_accuracy']:.4f}, right length {metrics['test_length_accuracy']:.4f}.

![Training curves](figures/seq2seq_training.png)

![Learning rate](figures/learning_rate.png)

Exact match by source length:

{_markdown(by_length)}

Examples (wrong ones first, if any):

{_markdown(examples, index=False)}

## 2. Character language models (decoder-only Transformer vs LSTM)

Same 90/10 split, same batches ({LM_SETTINGS[profile].batch_size} × {LM_SETTINGS[profile].seq_len}
characters), same budget of training seconds; validation loss on the whole held-out tenth.

{_markdown(table)}

![Validation loss against training time](figures/lm_val_loss_vs_time.png)

{samples}

For scale: nanoGPT's character-level Shakespeare model (10.7M parameters, 6 layers, context 256)
reaches a validation loss of {NANOGPT_VAL_LOSS} after about 3 minutes on an A100; ours are about a
tenth of its size and trained on one CPU thread.

## Conclusion

Greedy decoding reverses {metrics['test_exact_match']:.1%} of the held-out strings exactly
({'at or above' if metrics['test_exact_match'] >= 0.99 else 'below'} the 99 % target). In the
language-model race the lower validation loss at the end of the budget is the **{better}**'s.
"""
