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
# # Unit 13 — Serving the sentiment model: API, micro-batching, drift
#
# A model in a registry helps no one until something answers requests with it. This notebook builds
# the sentiment API of `pipeline.serving`, sends it good and bad requests, puts concurrent load on it
# with and without micro-batching, and compares its recent traffic with the reference statistics
# saved at registration. It serves the base MiniLM with an untrained head (the champion's compute,
# chance accuracy) so that it runs without a registered model; `mlpath serve` serves the champion.
# The notes, `docs/unit13_serving.md`, explain each part.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

import pandas as pd
from fastapi.testclient import TestClient
from IPython.display import Image, display

from pipeline.data import load_dataset
from pipeline.lessons import serving as lesson
from pipeline.serving.app import create_app
from pipeline.serving.config import ServingConfig
from pipeline.serving.monitoring import TrafficWindow, drift_report, reference_statistics, text_statistics

# %% [markdown]
# ## The model and its reference statistics
#
# Unit 11 saves `reference_statistics` of the dev sentences with the model: text length in words
# (decile bins), the share of words the tokenizer keeps whole, and the prediction mix. Here we
# compute them the same way for the model we serve.

# %%
sst2 = load_dataset("sst2", profile="quick").splits
dev = sst2["dev"]["sentence"].tolist()[:300]  # 300 of the 872 dev sentences keep the notebook quick
model = lesson.base_untrained(seed=0)
model.reference = reference_statistics(dev, model.predict_proba(dev), model.tokenizer)
print({k: v for k, v in model.reference["length"].items() if k != "shares"})
print("vocabulary coverage", round(model.reference["vocabulary"]["coverage"], 3),
      "| share positive", round(model.reference["prediction"]["share_positive"], 3))

# %% [markdown]
# ## Requests, good and bad
#
# `create_app` builds the FastAPI app; `TestClient` calls it in process. One text or a list of
# texts come back with a label and probabilities. Every bad request is a 4xx with a reason: a body
# over the size limit is refused before parsing (413); the schema (`oneOf` two closed objects, texts
# 1 to 2,000 characters and not blank, at most 64 of them) refuses the rest (422).

# %%
with TestClient(create_app(ServingConfig(), model=model)) as client:
    print(client.post("/predict", json={"texts": ["a gorgeous, witty, seductive movie.", "a dull mess."]}).json())
    rows = []
    for name, body in lesson.BAD_REQUESTS.items():
        content = body if isinstance(body, bytes) else None
        response = (client.post("/predict", content=content, headers={"content-type": "application/json"})
                    if content is not None else client.post("/predict", json=body))
        detail = response.json()["detail"]
        reason = detail if isinstance(detail, str) else detail[0]["msg"]
        rows.append({"request": name, "status": response.status_code, "reason": reason[:70]})
    print(client.get("/ready").json())
display(pd.DataFrame(rows))

# %% [markdown]
# ## Micro-batching under load
#
# Two servers on loopback ports, one per mode; a load generator in a separate process keeps 1, 8
# and 32 clients busy with one-text requests. Without batching each request is its own forward
# pass; with it, concurrent requests share one. `mean_batch` is the texts per forward pass the
# server saw. (Few requests per level here, so the numbers are noisy; `make bench` runs more.)

# %%
texts = dev[:150]
served = lesson.ServedModel(model, "base MiniLM, untrained head", False)
load = lesson.load_test(served, texts, "quick", n_requests=24)
display(load[["mode", "concurrency", "rps", "p50_ms", "p99_ms", "mean_batch"]].round(1))

# %% [markdown]
# ## Drift: the service's window against the reference
#
# The service keeps the last 1,000 texts' statistics; `/monitoring/drift` compares them with the
# reference: PSI on the length and probability histograms (over 0.2 is a shift), and the change in
# vocabulary coverage (a fall of more than 0.05 is a shift). Dev-like traffic is steady; SST-2's
# training *phrases* (fragments, much shorter) and dev sentences *with typos* are not.

# %%
with lesson.served(model) as api:
    lesson.ServedClassifier(api.url).predict_proba(texts)  # traffic through the API fills its window
    check = lesson.drift_checks(model, lesson.served_drift(api.url), api.app.state.window.snapshot(), sst2, 150)
display(lesson.drift_table(check).round(3))

# %%
figures = lesson.figures(load, check)
display(Image(figures["drift_histograms"]))
print(lesson.CAPTIONS["drift_histograms"])

# %%
display(Image(figures["throughput_latency"]))
print(lesson.CAPTIONS["throughput_latency"])

# %% [markdown]
# ## The same statistics, by hand
#
# `drift_report` is a pure function of the reference and a window; the service calls it on its
# deque. Here on 100 very long texts of invented words:

# %%
odd = ["qzx vbnrt kplmw " * 10] * 100
window = TrafficWindow(100)
window.add(text_statistics(odd, model.tokenizer), model.predict_proba(odd)[:, 1])
report = drift_report(model.reference, window.snapshot())
print(report["drifted"], report["reasons"])
