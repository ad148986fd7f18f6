"""Unit 8: training and inference images/second of the CNNs, against Model A in the same run.

Batch 128 of real CIFAR-10 images, augmentation included in training, on CUDA when present and
always on the CPU. Model B at the quick profile's width (16), the full profile's (32) and the
published one (64). "fast" is how Unit 8 trains Model B: channels-last layout, and autocast as
the training loop picks it (bf16 or fp16 on CUDA; bf16 on a CPU with native bf16, else float32);
"fp32" is plain float32 in the default layout, to show what those two settings buy.
"""

from __future__ import annotations

import time
from functools import partial

import torch

from pipeline.augment import cifar_eval_transform, cifar_train_transform
from pipeline.data import load_dataset
from pipeline.models import ResNetSmall, SimpleCNN
from pipeline.training import TrainConfig, autocast_dtype, cpu_has_native_bf16

BATCH = 128
# name -> (model factory, fast settings?)
MODELS = {
    "Model A: simple CNN, fp32 (baseline)": (SimpleCNN, False),
    "Model B: width 16 (quick), fast": (partial(ResNetSmall, width=16), True),
    "Model B: width 32 (full), fp32": (partial(ResNetSmall, width=32), False),
    "Model B: width 32 (full), fast": (partial(ResNetSmall, width=32), True),
    "Model B: width 64 (published), fp32": (partial(ResNetSmall, width=64), False),
    "Model B: width 64 (published), fast": (partial(ResNetSmall, width=64), True),
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
               repeats: int, fast: bool) -> tuple[float, float]:
    """(training, inference) images per second for one model on ``device``."""
    torch.manual_seed(0)
    config = TrainConfig(amp=fast, cpu_bf16=fast, channels_last=fast)
    layout = torch.channels_last if fast else torch.contiguous_format
    model = factory().to(device, memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    augment = cifar_train_transform(torch.Generator(device=device).manual_seed(0))
    normalise = cifar_eval_transform()
    x, y = images.to(device), labels.to(device)
    dtype = autocast_dtype(device, config)  # fp16 would also need a GradScaler; its cost is small
    autocast = partial(torch.autocast, device.type, dtype=dtype, enabled=dtype is not None)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(augment(x).contiguous(memory_format=layout)), y)
        loss.backward()
        optimizer.step()

    def infer_step():
        model.eval()
        with torch.inference_mode(), autocast():
            model(normalise(x).contiguous(memory_format=layout))

    return BATCH / _seconds(train_step, repeats), BATCH / _seconds(infer_step, repeats)


def main() -> None:
    X, y = load_dataset("cifar10", "quick").splits["train"]
    images, labels = torch.from_numpy(X[:BATCH]), torch.from_numpy(y[:BATCH])
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        repeats = 20 if device.type == "cuda" else 3
        print(f"\nUnit 8 — images/second, batch {BATCH}, {device.type}"
              f" ({_describe(device)})")
        print(f"  {'model':38s} {'train':>9s} {'infer':>9s}   vs Model A (train, infer)")
        base = None
        for name, (factory, fast) in MODELS.items():
            train, infer = throughput(factory, images, labels, device, repeats, fast)
            base = base or (train, infer)
            print(f"  {name:38s} {train:9.0f} {infer:9.0f}   {train / base[0]:.3f}x, {infer / base[1]:.3f}x")


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return f"{torch.get_num_threads()} threads, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}"


if __name__ == "__main__":
    main()
