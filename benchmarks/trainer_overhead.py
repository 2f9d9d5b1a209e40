"""Trainer vs a hand-written plain PyTorch loop: same model, data, batch size and optimiser.

Both loops train LeNet on the mnist -> uci-digits labeled target pool (28x28 RGB) with SGD
(momentum 0.9, the DANN learning-rate schedule), drawing batches by indexing the in-memory
uint8 images and normalising them, exactly what the Trainer does. The plain loop has none of
the Trainer's machinery (streams, NaN checks, logging, validation, selection).

Two comparisons, each interleaved (plain, trainer, plain, trainer, ...) so that drift of a
shared machine hits both sides, and reported as a ratio of medians measured in this run:

- ``same layout``: both loops use channels_last (the Trainer's default); this isolates the
  Trainer's own overhead (target: within 5%);
- ``default vs naive``: the Trainer with its defaults against a plain loop in the default
  NCHW layout, i.e. what a user gains by switching.

    python benchmarks/trainer_overhead.py [--iterations 300] [--repeats 3]
    python benchmarks/trainer_overhead.py --device cuda                      # LeNet, batch 64
    python benchmarks/trainer_overhead.py --device cuda --model resnet18 --size 64 --batch-size 128

On CUDA (issue 16, item 3) both loops keep the uint8 images on the device, run under bf16
autocast (the Trainer's default there) and are timed between ``torch.cuda.synchronize()``
calls; the page is ``trainer_overhead_cuda.md`` (the CPU page stays). The target there is a
ratio <= 1.03: the Trainer must not synchronise the host every step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import transferguard as tg
from transferguard.engine.schedules import lr_factor

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

CPU = torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def plain_loop(data, iterations: int, batch_size: int, channels_last: bool, seed: int,
               device: torch.device = CPU, model_name: str = "lenet") -> float:
    torch.manual_seed(seed)
    split = data.target_labeled
    model = tg.create_model(model_name, data.num_classes, 3, data.spec.size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images, labels = split.images.to(device), split.labels.to(device)
    mean = torch.tensor(data.spec.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.spec.std, device=device).view(1, -1, 1, 1)
    g = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(labels), generator=g), 0
    sync(device)
    t0 = time.perf_counter()
    for step in range(iterations):
        for group in opt.param_groups:
            group["lr"] = 0.01 * lr_factor("dann", step / iterations)
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(labels), generator=g), 0
        idx = order[pos : pos + batch_size].to(device)
        pos += batch_size
        x = (images[idx].float() / 255 - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def trainer_loop(data, iterations: int, batch_size: int, channels_last: bool, seed: int,
                 device: torch.device = CPU, model_name: str = "lenet") -> float:
    trainer = tg.Trainer(iterations=iterations, batch_size=batch_size, progress=False,
                         channels_last=channels_last, select="last", seed=seed,
                         log_every=iterations, device=str(device))
    method = tg.create_method("target_only", model=model_name)
    sync(device)
    t0 = time.perf_counter()
    trainer.fit(method, data)
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--model", default="lenet", help="a registered model (e.g. resnet18)")
    ap.add_argument("--size", type=int, default=28, help="input side in pixels")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible here; run it on a GPU "
                         "machine, or drop --device for the CPU comparison.")
    torch.set_num_threads(2)
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=100, val_fraction=0.0,
                           spec=tg.InputSpec(3, args.size))
    data = task.train_data()
    results = {}
    for label, plain_cl, ours_cl in (("same layout (channels_last)", True, True),
                                     ("default vs naive NCHW loop", False, True)):
        plain, ours = [], []
        kw = {"device": device, "model_name": args.model}
        plain_loop(data, 20, args.batch_size, plain_cl, 0, **kw)  # warm-up
        for r in range(args.repeats):
            plain.append(plain_loop(data, args.iterations, args.batch_size, plain_cl, r, **kw))
            ours.append(trainer_loop(data, args.iterations, args.batch_size, ours_cl, r, **kw))
        ratio = statistics.median(ours) / statistics.median(plain)
        results[label] = {"plain_s": plain, "trainer_s": ours, "ratio": ratio}
        print(f"{label:32s} plain {statistics.median(plain):6.2f} s  trainer "
              f"{statistics.median(ours):6.2f} s  ratio trainer/plain = {ratio:.3f}")
    cmd = "python benchmarks/trainer_overhead.py " + " ".join(sys.argv[1:])
    lines = [
        "# Trainer vs a plain PyTorch loop", "",
        f"Command: `{cmd.strip()}`", "",
        f"{args.model}, mnist -> uci-digits target pool at 3x{args.size}x{args.size}, batch "
        f"{args.batch_size}, {args.iterations} iterations, median of {args.repeats} interleaved "
        f"repeats, torch {torch.__version__}, " + (
            f"{torch.cuda.get_device_name(device)} with bf16 autocast."
            if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads."), "",
        "| comparison | plain loop (s) | Trainer (s) | ratio Trainer/plain |",
        "|---|---:|---:|---:|",
    ]
    for label, r in results.items():
        if min(r["trainer_s"]) < 0.1 * min(r["plain_s"]):
            raise SystemExit(f"the Trainer did not train ({label}): check the method and data")
        lines.append(f"| {label} | {statistics.median(r['plain_s']):.2f} | "
                     f"{statistics.median(r['trainer_s']):.2f} | {r['ratio']:.3f} |")
    name = "trainer_overhead" if device.type == "cpu" else "trainer_overhead_cuda"
    write_result(name, "\n".join(lines) + "\n", json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
