"""Unit 8 — convolutional networks in PyTorch (CIFAR-10)."""

from pydantic import Field

from pipeline.params import UnitParams
from pipeline.units.spec import Experiment, Reference, Schedule, UnitSpec


class Unit08Params(UnitParams):
    cv_folds: int = Field(0, ge=0, le=10, description="cross-validation folds (0: test metrics only)")
    epochs_simple: int | None = Field(None, ge=1, description="Model A epochs (None: the profile's)")
    epochs_resnet: int | None = Field(None, ge=1, description="Model B epochs (None: the profile's)")


SPEC = UnitSpec(
    id="unit08",
    number=8,
    title="Convolutional networks in PyTorch (CIFAR-10)",
    phase=3,
    topics=("convolutions: kernel, stride, padding", "pooling", "batch norm and residual blocks",
            "data augmentation", "training on CPU and GPU"),
    challenge="CNNs in PyTorch on CIFAR-10: the tutorial net as a baseline and a small residual net "
              ">= 88 % test accuracy.",
    params=Unit08Params,
    flow="flows.unit08_cnn:unit08_cnn",
    datasets=("cifar10",),
    primary_metric="test_accuracy",
    schedule=Schedule("0 5 * * 0", why="the full run takes about 40 minutes on 2 CPU cores (bf16), "
                                       "a few on a GPU"),
    references=(
        Reference("CIFAR-10 test accuracy of the tutorial CNN (our Model A)", "≈ 0.54",
                  "PyTorch tutorial “Training a Classifier” (2 epochs; the printed value varies by run)",
                  "model_a_test_accuracy"),
        Reference("CIFAR-10 test accuracy of ResNet-9 (our Model B is of this kind)", "0.94",
                  "D. Page (Myrtle.ai), “How to train your ResNet”, DAWNBench CIFAR-10 entry; "
                  "official images, while ours are the mirror's JPEG re-encoding",
                  "test_accuracy"),
    ),
    notes="docs/unit08_cnn.md",
    notebook="notebooks/unit08_cnn.ipynb",
    try_next=(
        Experiment(("epochs_simple=10", "epochs_resnet=8"),
                   "how much further both nets get with twice the epochs on the same quick data"),
        Experiment(("epochs_resnet=1",), "Model B after one epoch of one-cycle SGD: the schedule "
                                         "matters as much as the architecture"),
    ),
    learned=(
        "A convolution slides one small kernel over the image: few weights, shared across "
        "positions, so a pattern is found wherever it is.",
        "Kernel, stride and padding set each layer's output size; pooling halves it and widens "
        "what each unit sees (the receptive field).",
        "Batch norm and residual connections let a deeper network train fast and stably: on the full "
        "profile the small ResNet reaches 0.89 test accuracy, the tutorial net 0.67.",
        "Random crops and flips make new training images for free; the one-cycle learning-rate "
        "schedule matters as much as the architecture.",
        "The confusion matrix shows which classes look alike to the network (cat and dog, "
        "automobile and truck).",
    ),
    sources=("src/pipeline/models/cnn.py", "src/pipeline/training/loop.py", "src/pipeline/augment.py",
             "src/pipeline/lessons/cifar_cnn.py", "flows/unit08_cnn.py"),
    quick="Model A trains 5 epochs instead of 20, Model B 4 instead of 24 at half the width",
)
