"""Capstone — the sentiment service end to end: fine-tune, register, serve, smoke-test, monitor."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, PathOverrides, Schedule, UnitSpec


class CapstoneParams(UnitParams):
    cv_folds: int = Field(0, ge=0, le=10, description="unused (the served model is evaluated on dev sentences)")
    train_size: int | None = Field(None, ge=16, description="fine-tuning phrases passed to Unit 11 (None: its "
                                                            "profile's)")
    epochs: int | None = Field(None, ge=1, le=10, description="fine-tuning epochs passed to Unit 11 (None: its "
                                                              "profile's)")
    smoke_texts: int = Field(64, ge=8, le=64, description="dev sentences in the smoke batch (one POST /predict)")
    fine_tune: bool = Field(True, description="run Unit 11's flow first; false: serve the champion already "
                                              "registered (the whole path does, right after Unit 11)")


SPEC = UnitSpec(
    id="capstone",
    number=17,
    title="Capstone: an end-to-end ML system",
    phase=4,
    topics=(
        "an end-to-end ML system",
        "validation, training, registry, serving",
        "monitoring and retraining",
    ),
    challenge=("One system from raw data to a monitored, retrained model in production shape."),
    params=CapstoneParams,
    flow="flows.capstone:capstone",
    datasets=("sst2",),
    # What the system delivers: the accuracy of the registry's champion as the running API answers it
    # (through POST /predict, on SST-2 dev sentences). The capstone registers a run; the model it
    # serves is Unit 11's `mlpath-sentiment`, whose champion Unit 11's own rule chose.
    primary_metric="test_accuracy",
    schedule=Schedule("0 8 * * 1", why="the whole system's smoke run: train, register, serve, check"),
    notes="docs/capstone.md",
    notebook="notebooks/capstone.ipynb",
    quick="Unit 11's quick fine-tuning (256 phrases, one epoch) and a smoke batch of 64 dev sentences",
    try_next=(
        Experiment(("train_size=1024",), "four times the quick sample: does the new model beat the champion, and "
                                         "does the API then serve it (the champion version in the report)?"),
        Experiment(("epochs=2",), "a second epoch on the quick sample: a better dev accuracy is promoted, a worse "
                                  "one stays @challenger and the served model does not change"),
        Experiment(("smoke_texts=16",), "a smaller smoke batch: the served accuracy on 16 sentences moves by "
                                        "several points with the seed, and the drift PSIs on 16 texts are mostly "
                                        "noise"),
    ),
    learned=(
        "A model is one stage of a system: data checked on the way in, a registry that decides what is "
        "served, an API that refuses bad input, and a monitor that can send the system back to training.",
        "The served model is the registry's champion, not the latest run: a run that does not beat the "
        "champion changes nothing in production.",
        "Every stage leaves evidence: a validated data version, an MLflow run with the git commit, a model "
        "version with its alias, the API's metrics and its drift report.",
    ),
    # In the whole path Unit 11 has just fine-tuned and registered: serve its champion, don't train twice.
    in_path=PathOverrides(after=("unit11",), overrides=(("fine_tune", False),)),
    sources=("flows/capstone.py", "src/pipeline/lessons/capstone.py", "src/pipeline/serving/app.py",
             "flows/unit11_finetuning.py", "flows/monitoring.py"),
)
