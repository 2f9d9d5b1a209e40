"""Why gradsim's defaults are what they are (issue 10): the cosine between the labeled target's
gradient and the source's, and Du et al.'s rule against the smoothed, scaled one on a helpful
and a harmful source.

    OMP_NUM_THREADS=1 python benchmarks/gradsim_probe.py

Two parts, written to docs/results/gradsim_probe.md:

- **traces**: plain DANN (200 iterations, seed 0) on five settings, with the cosine
  cos(g_T, g_R) over the whole model, the head and the backbone measured every step (observed
  only; the step is DANN's own), averaged over blocks of 25 steps;
- **rules**: the demo's two scenarios (helpful: mnist -> mnist-m, clean, L = 5%; harmful:
  syndigits -> mnist, every label pair-flipped, L = 10%; 400 iterations, seeds 0-2), DANN, its
  twin, Du et al.'s rule (``every=1, scale=1, momentum=0``) and the default rule.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import torch

import transferguard as tg
from transferguard.engine.types import StepOutput

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

SPEC = tg.InputSpec(3, 24)
HELPFUL = ("mnist", "mnist-m", {"eps": 0.0, "labeled_percent": 5})
HARMFUL = ("syndigits", "mnist",
           {"eps_x": 0.0, "eps_y": 1.0, "label_noise": "pairflip", "labeled_percent": 10})
TRACES = {
    "helpful (demo)": HELPFUL,
    "harmful (demo)": HARMFUL,
    "syndigits -> mnist, pair-flip ε 0.7, L 10%": (
        "syndigits", "mnist", {"eps": 0.7, "label_noise": "pairflip", "labeled_percent": 10}),
    "syndigits -> mnist, clean, L 10%": ("syndigits", "mnist",
                                        {"eps": 0.0, "labeled_percent": 10}),
    "mnist -> uci-digits, pair-flip ε 0.7, L 10%": (
        "mnist", "uci-digits", {"eps": 0.7, "label_noise": "pairflip", "labeled_percent": 10}),
}
RULES = {"Du et al. (every 1, κ 1, m 0)": {"every": 1, "scale": 1.0, "momentum": 0.0},
         "default (every 4, κ 0.1, m 0.9)": {}}
BLOCK = 25


def _cos(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    fa, fb = torch.cat([x.flatten() for x in a]), torch.cat([x.flatten() for x in b])
    return float(fa @ fb / (fa.norm() * fb.norm() + 1e-12))


class Observer:
    """A combiner that measures the cosines and steps on DANN's own gradient."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float]] = []

    def backward(self, out: StepOutput, method: Any) -> None:
        model = [p for p in method.model_.parameters() if p.requires_grad]
        head = {id(p) for p in method.model_.head.parameters()}
        g_t = torch.autograd.grad(out.empirical, model, retain_graph=True)
        out.loss.backward()
        g_r = [p.grad - g for p, g in zip(model, g_t)]
        hi = [i for i, p in enumerate(model) if id(p) in head]
        bi = [i for i, p in enumerate(model) if id(p) not in head]
        self.rows.append((_cos(g_t, g_r), _cos([g_t[i] for i in hi], [g_r[i] for i in hi]),
                          _cos([g_t[i] for i in bi], [g_r[i] for i in bi])))

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ObservedDANN(tg.methods.alignment.dann.DANN):
    def build(self, data: Any, trainer: Any) -> None:
        super().build(data, trainer)
        self.observer_ = Observer()

    @property
    def gradient_combiner(self) -> Observer:
        return self.observer_


def traces() -> list[str]:
    out = ["## Cosines under plain DANN (seed 0, 200 iterations, mean per block of "
           f"{BLOCK} steps)", "",
           "| setting | part | test acc | " + " | ".join(f"{i * BLOCK}-{(i + 1) * BLOCK}"
                                                       for i in range(8)) + " |",
           "|---|---|---:|" + "---:|" * 8]
    for name, (s, t, kw) in TRACES.items():
        task = tg.TransferTask(s, t, spec=SPEC, seed=0, **kw)
        m = ObservedDANN()
        r = tg.Trainer(iterations=200, batch_size=32, seed=0, progress=False).run(m, task)
        rows = m.observer_.rows
        for j, part in enumerate(("model", "head", "backbone")):
            blocks = [statistics.fmean(x[j] for x in rows[i:i + BLOCK])
                      for i in range(0, len(rows), BLOCK)]
            out.append(f"| {name} | {part} | {r.test_accuracy:.1f} | "
                       + " | ".join(f"{b:+.3f}" for b in blocks) + " |")
        print(name, flush=True)
    return out + [""]


def rules(seeds: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    out = ["## Du et al.'s rule against the default, on the demo's scenarios "
           f"(400 iterations, seeds {list(seeds)})", "",
           "| scenario | method | acc per seed | mean | NTG (twin − acc) | source shut "
           "(cos <= 0) | mean cos |", "|---|---|---|---:|---:|---:|---:|"]
    for name, (s, t, kw) in (("helpful", HELPFUL), ("harmful", HARMFUL)):
        accs: dict[str, list[float]] = {}
        extra: dict[str, tuple[float, float]] = {}
        variants = {"DANN_T": None, "DANN": {}, **{k: {"combine": "gradsim",
                                                       "combine_options": v}
                                                   for k, v in RULES.items()}}
        for label, kwargs in variants.items():
            shut, cos = [], []
            for seed in seeds:
                task = tg.TransferTask(s, t, spec=SPEC, seed=seed, **kw)
                m = tg.create_method("dann").twin() if kwargs is None else \
                    tg.create_method("dann", **kwargs)
                r = tg.Trainer(iterations=400, batch_size=32, seed=seed,
                               progress=False).run(m, task)
                accs.setdefault(label, []).append(r.test_accuracy)
                c = m.gradient_combiner
                if c is not None:
                    shut.append(c.shut_rate)
                    cos.append(c.mean_cosine)
            if shut:
                extra[label] = (statistics.fmean(shut), statistics.fmean(cos))
            print(name, label, accs[label], flush=True)
        twin = statistics.fmean(accs["DANN_T"])
        for label, a in accs.items():
            sh, co = extra.get(label, (float("nan"), float("nan")))
            out.append(f"| {name} | {label} | {', '.join(f'{x:.1f}' for x in a)} | "
                       f"{statistics.fmean(a):.1f} | {twin - statistics.fmean(a):+.1f} | "
                       + (f"{sh:.2f} | {co:+.3f} |" if label in extra else "– | – |"))
    return out + [""]


def main() -> None:
    torch.set_num_threads(1)
    text = ["# Gradient-similarity gating: the cosines, and why the defaults", "",
            "Command: `OMP_NUM_THREADS=1 python benchmarks/gradsim_probe.py` (LeNet at 24x24, "
            "CPU). cos = cos(g_T, g_R) with g_T the gradient of the labeled target's loss and "
            "g_R that of everything else (the source's loss and the alignment term).", ""]
    text += traces()
    text += rules()
    write_result("gradsim_probe", "\n".join(text))


if __name__ == "__main__":
    main()
