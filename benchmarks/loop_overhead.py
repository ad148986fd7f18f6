"""The training loop's own cost: `pipeline.training.Trainer` against the loop before the refactor.

Model A and Model B at width 16 train with the Unit 8 quick profile's settings (Model B "fast":
channels-last, bf16 autocast where the CPU has it, amp on CUDA) for a fixed number of steps on
random CIFAR-shaped uint8 images, augmented, through the new loop and through
``benchmarks/baseline_trainer.py`` (the pre-refactor loop, frozen), in alternating rounds of the
same process. Prints the best images/s of each; the ratio new/old (1.00 = no overhead) of the best
runs and the median ratio of the runs side by side; and whether both ended with identical weights
(same seeds, same batches, same random streams: they should). On CUDA a third row streams the
batches from pinned CPU memory instead of keeping the data on the GPU.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from benchmarks import baseline_trainer
from pipeline.augment import cifar_eval_transform, cifar_train_transform
from pipeline.lessons.cifar_cnn import RESNET, SETTINGS, SIMPLE
from pipeline.training import ClassificationStep, Trainer, cpu_has_native_bf16, pick_device, seed_everything
from pipeline.training import data as training_data

ROUNDS = 7  # old and new in turns: other processes on a shared machine make single runs noisy


def train(loop: str, factory, config, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.nn.Module]:
    """Seconds for one epoch of ``images`` through ``loop`` ("old", "new" or "new, streamed"), and the model."""
    seed_everything(config.seed)
    model = factory()
    augment = cifar_train_transform(torch.Generator().manual_seed(config.seed), normalize=False)
    if loop == "old":
        trainer = baseline_trainer.Trainer(model, config, train_transform=augment,
                                           input_transform=cifar_eval_transform())
    else:
        trainer = Trainer(model, config, ClassificationStep(train_transform=augment,
                                                            input_transform=cifar_eval_transform()))
    resident_fraction = training_data.RESIDENT_FRACTION
    training_data.RESIDENT_FRACTION = 0.0 if loop == "new, streamed" else resident_fraction
    try:
        _synchronize()
        start = time.perf_counter()
        trainer.fit(images, labels)
        _synchronize()
        return time.perf_counter() - start, trainer.model
    finally:
        training_data.RESIDENT_FRACTION = resident_fraction


def compare(name: str, factory, config, steps: int, loops: list[str]) -> None:
    n = steps * config.batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=generator)  # (n, H, W, C)
    labels = torch.randint(0, 10, (n,), generator=generator)
    config = replace(config, epochs=1, label=name)
    for loop in loops:  # warm-up: allocations, kernel selection
        train(loop, factory, config, images[: 4 * config.batch_size], labels[: 4 * config.batch_size])
    speeds, models = {loop: [] for loop in loops}, {}
    for round_ in range(ROUNDS):
        for loop in loops if round_ % 2 == 0 else loops[::-1]:  # neither loop always runs first
            seconds, models[loop] = train(loop, factory, config, images, labels)
            speeds[loop].append(n / seconds)
    same = all(torch.equal(a, b) for a, b in zip(models["old"].state_dict().values(),
                                                  models["new"].state_dict().values(), strict=True))
    for loop in loops:
        # Ratios of runs side by side, then their median: steadier than the best of each under shifting load.
        ratios = sorted(new / old for new, old in zip(speeds[loop], speeds["old"], strict=True))
        ratio = "" if loop == "old" else f"{max(speeds[loop]) / max(speeds['old']):.3f}x {ratios[ROUNDS // 2]:.3f}x"
        print(f"  {name:30s} {loop:14s} {max(speeds[loop]):9.0f}  {ratio}")
    print(f"  {'':30s} identical weights, new vs old: {'yes' if same else 'NO'}")


def main() -> None:
    device = pick_device()
    steps = 200 if device.type == "cuda" else 100
    loops = ["old", "new"] + (["new, streamed"] if device.type == "cuda" else [])
    detail = (torch.cuda.get_device_name() if device.type == "cuda"
              else f"{torch.get_num_threads()} threads, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}")
    print(f"\nTraining loop overhead — images/second over {steps} steps, best of {ROUNDS}, {device.type} ({detail})")
    print(f"  {'model':30s} {'loop':14s} {'images/s':>9s}  new/old: best vs best, median of pairs")
    for name in (SIMPLE, RESNET):
        factory, config = SETTINGS["quick"][name]
        compare(name, factory, config, steps, loops)


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
