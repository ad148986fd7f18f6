"""Unit 8: training and inference images/second of the CNNs, against Model A in the same run.

Batch 128 of real CIFAR-10 images, augmentation included in training, on CUDA when present and
always on the CPU. Model B at its published width (64) and at the quick profile's width (16).
"""

from __future__ import annotations

import time
from functools import partial

import torch

from pipeline.augment import cifar_eval_transform, cifar_train_transform
from pipeline.data import load_dataset
from pipeline.models import ResNetSmall, SimpleCNN

BATCH = 128
MODELS = {
    "Model A: simple CNN (baseline)": SimpleCNN,
    "Model B: ResNet width 16 (quick)": partial(ResNetSmall, width=16),
    "Model B: ResNet width 64 (full)": ResNetSmall,
}


def _seconds(step, repeats: int) -> float:
    step()  # warm-up: allocations, kernel selection
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def throughput(factory, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
               repeats: int) -> tuple[float, float]:
    """(training, inference) images per second for one model on ``device``."""
    torch.manual_seed(0)
    model = factory().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    augment = cifar_train_transform(torch.Generator(device=device).manual_seed(0))
    normalise = cifar_eval_transform()
    x, y = images.to(device), labels.to(device)

    # As the training loop runs: bf16 autocast on CUDA (where supported), full precision on the CPU.
    amp = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(augment(x)), y)
        loss.backward()
        optimizer.step()

    def infer_step():
        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(normalise(x))

    return BATCH / _seconds(train_step, repeats), BATCH / _seconds(infer_step, repeats)


def main() -> None:
    X, y = load_dataset("cifar10", "quick").splits["train"]
    images, labels = torch.from_numpy(X[:BATCH]), torch.from_numpy(y[:BATCH])
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        repeats = 20 if device.type == "cuda" else 3
        print(f"\nUnit 8 — images/second, batch {BATCH}, {device.type}"
              f" ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})")
        print(f"  {'model':36s} {'train':>9s} {'infer':>9s}   vs Model A (train, infer)")
        base = None
        for name, factory in MODELS.items():
            train, infer = throughput(factory, images, labels, device, repeats)
            base = base or (train, infer)
            print(f"  {name:36s} {train:9.0f} {infer:9.0f}   {train / base[0]:.3f}x, {infer / base[1]:.3f}x")


if __name__ == "__main__":
    main()
