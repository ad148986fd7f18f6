"""Unit 7 — a neural network from scratch in NumPy (MNIST)."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit07Params(UnitParams):
    cv_folds: int = Field(0, ge=0, le=10, description="cross-validation folds (0: test metrics only, "
                                                     "CV of a network on 60k images is costly)")
    epochs: int | None = Field(None, ge=1, description="training epochs (None: the profile's setting)")


SPEC = UnitSpec(
    id="unit07",
    number=7,
    title="A neural network from scratch in NumPy (MNIST)",
    phase=3,
    topics=("dense layers and activations", "softmax cross-entropy", "backpropagation",
            "He/Xavier initialisation", "mini-batch SGD with momentum, learning-rate schedules"),
    challenge="A NumPy neural network on MNIST with backward() equal to torch.autograd (1e-6, float64): "
              ">= 98.0 % test accuracy on the full profile.",
    params=Unit07Params,
    flow="flows.unit07_mlp:unit07_mlp",
    datasets=("mnist",),
    primary_metric="test_accuracy",
    schedule=Schedule("0 4 * * 1"),
    references=(
        Reference("MNIST test accuracy of an MLP (784-512-512-10, dropout, RMSprop, 20 epochs)", "0.9840",
                  "Keras examples, mnist_mlp.py: “Gets to 98.40% test accuracy after 20 epochs”",
                  "test_accuracy"),
    ),
    notes="docs/unit07_mlp.md",
    notebook="notebooks/unit07_mlp.ipynb",
    try_next=(
        Experiment(("epochs=2",), "under-fitting: the learning curves stop while still falling"),
        Experiment(("epochs=30",), "the gap between training and test accuracy widening once the "
                                   "training loss nears zero"),
    ),
    learned=(
        "A dense network is matrix products and non-linearities; softmax cross-entropy turns its "
        "last layer's scores into a loss.",
        "Backpropagation is the chain rule run backwards, layer by layer; ours equals "
        "torch.autograd to 1e-6 in float64.",
        "He initialisation keeps ReLU activations from shrinking or exploding with depth; Xavier "
        "does the same for tanh and sigmoid.",
        "Mini-batch SGD with momentum and a cosine learning-rate schedule trains it; small random "
        "shifts of the images are an augmentation a dense network needs.",
        "Training and held-out curves drawn together show when the network starts to fit the "
        "training images better than new ones.",
    ),
    sources=("src/pipeline/scratch/mlp.py", "src/pipeline/lessons/mnist_mlp.py", "flows/unit07_mlp.py"),
    quick="10 epochs instead of 20",
)
