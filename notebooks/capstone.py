# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Capstone — the sentiment system end to end, in miniature
#
# `mlpath run capstone` runs Unit 11's fine-tuning flow, registers `mlpath-sentiment`, serves the
# registry's champion on a loopback port, sends a smoke batch through `POST /predict` and
# `/monitoring/drift`, evaluates the served model through the API, and registers the outcome. This
# notebook walks the same path in a minute: the data check, a model saved the way the registry
# stores it (a tiny random BERT instead of the fine-tuned MiniLM, so it runs in seconds), the API
# loading it from that folder, the smoke test and the system audit. `docs/capstone.md` has the
# architecture and the results.

# %%
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import pandas as pd
from IPython.display import display

from pipeline.data import load_dataset
from pipeline.lessons import capstone as system
from pipeline.lessons import serving
from pipeline.models.sentiment import tiny_model
from pipeline.serving.app import load_model
from pipeline.serving.monitoring import reference_statistics
from pipeline.validation import validate_frame, validation_frame

# %% [markdown]
# ## 1. Data: checksummed, then validated
#
# The catalog reads SST-2 from the mirror and checks its sha256 (`DataRef`); the Great
# Expectations suite `expectations/sst2.json` must pass before anything trains.

# %%
sst2 = load_dataset("sst2", profile="quick")
print(sst2.ref)
report = validate_frame(validation_frame("sst2", sst2.splits), "sst2")
print(f"{report.n_expectations} expectations passed")

# %% [markdown]
# ## 2. A model as the registry stores it
#
# Unit 11 saves the classifier with `SentimentModel.save` (safetensors weights, tokenizer files,
# `mlpath_sentiment.json`, and `reference.json`: the monitoring reference statistics of the dev
# sentences) and logs that folder as the MLflow model. Here a tiny random BERT stands in.

# %%
dev = sst2.splits["dev"]
model = tiny_model(seed=0)
model.reference = reference_statistics(dev["sentence"].tolist(), model.predict_proba(dev["sentence"].tolist()),
                                       model.tokenizer)
folder = model.save(Path(tempfile.mkdtemp()) / "mlpath-sentiment")
print(sorted(p.name for p in folder.iterdir()))

# %% [markdown]
# ## 3. Serve it, smoke-test it, audit the system
#
# The API loads the folder as it would load `models:/mlpath-sentiment@champion`, on a free loopback
# port. The smoke test reads `/ready`, sends 64 dev sentences in one request, then reads
# `/monitoring/drift` and `/metrics`.

# %%
served = load_model(str(folder))
texts, labels = serving.dev_texts(sst2.splits, 64, seed=0)
with serving.served(served, str(folder)) as api:
    smoke = system.smoke(api.url, texts)
    served_score = serving.ServedClassifier(api.url).predict_proba(texts)[:, 1]
print("ready:", smoke.ready)
print(f"{len(smoke.predictions)} predictions in {smoke.latency_ms:.0f} ms; drift status {smoke.drift['status']}, "
      f"drifted {smoke.drift['drifted']}")
display(pd.DataFrame(smoke.predictions[:5]))
print("\n".join(line for line in smoke.metrics_text.splitlines() if line.startswith("mlpath_predictions_total")))

# %% [markdown]
# The system audit of the capstone, with a stand-in for Unit 11's registration outcome (the real
# run passes what Unit 11's register task returned). The tiny model is untrained, so its accuracy is
# chance; every check is about the system, not the model.

# %%
unit11 = {"status": "succeeded", "model_name": "mlpath-sentiment", "version": "1", "alias": "champion",
          "reason": "first version (stand-in)", "value": float("nan")}
audit = system.audit_system(unit11, {"version": "1", "run_id": None}, smoke, len(texts), served_score,
                            served.predict_proba(texts)[:, 1])
display(audit.table())
print("accuracy through the API:", round(float(((served_score >= 0.5) == labels).mean()), 3))
