"""L2-SP's default α: target accuracy and how far the backbone moves, against α.

    OMP_NUM_THREADS=1 python benchmarks/l2sp_alpha.py [--seeds 0 1 2] [--iterations 600]

On syndigits -> mnist (LeNet at InputSpec(3, 24), L = 10%), from a source network the toolkit
pre-trains on the source (one per seed, cached under runs/bench-l2sp/pretrained/): plain
fine-tuning and L2-SP with α in {0.01, 0.1, 1, 10} (β = 0.01, no decay), from the clean
source network and from an inappropriate one (pre-trained on the source with ε = 0.9).
For each cell: test accuracy (mean over seeds) and the backbone's relative drift
‖w − w⁰‖ / ‖w⁰‖ at the selected state, which shows whether Ω does anything at all.
Li et al. (2018) use α = 0.1 (and 0.01) with β = 0.01; Transfer-Learning-Library's default
trade-off is 0.01. Output: docs/results/l2sp_alpha.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import transferguard as tg
from transferguard.experiments import pretrained_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

SPEC = tg.InputSpec(3, 24)
PAIR = ("syndigits", "mnist")
ALPHAS = (0.01, 0.1, 1.0, 10.0)
PRETRAIN_ITERATIONS = 1000
READING = (
    'Reading: with the backbone at a tenth of the learning rate, plain fine-tuning moves it'
    ' by only 4% (clean source) to 9% (inappropriate source) of its norm, so α = 0.01 and α'
    ' = 0.1 restrain it little and land within 0.1 points of fine-tuning. An α that visibly'
    ' holds the backbone back (1: drift about halved; 10: cut five- to eight-fold) costs 1 '
    'point at α = 1 and 3 (clean) to 11 (inappropriate source) points at α = 10. The '
    "default stays at Li et al.'s α = 0.1: a larger one would make L2-SP visible only by "
    'making it worse here.'
)


def drift(method: tg.Method, start: list[torch.Tensor]) -> float:
    now = [p.detach().cpu() for p in method.model_.backbone.parameters()]
    num = sum(float((a - b).pow(2).sum()) for a, b in zip(now, start))
    den = sum(float(b.pow(2).sum()) for b in start)
    return (num / den) ** 0.5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--labeled", type=float, default=10.0)
    ap.add_argument("--out", default="runs/bench-l2sp")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    trainer = tg.Trainer(tg.TrainerConfig(iterations=args.iterations, batch_size=32, lr=0.01,
                                          device="cpu"))
    t0 = time.perf_counter()
    methods = [("finetune", {})] + [("l2sp", {"alpha": a}) for a in ALPHAS]
    raw: dict[str, dict] = {}
    lines = []
    for title, eps in (("clean source network", 0.0),
                       ("inappropriate source network (ε = 0.9)", 0.9)):
        cells: dict[str, dict[str, list[float]]] = {}
        for s in args.seeds:
            ptask = tg.TransferTask(*PAIR, eps=eps, labeled_percent=args.labeled, spec=SPEC,
                                    seed=s)
            path = pretrained_checkpoint(ptask, trainer, out / "pretrained",
                                         iterations=PRETRAIN_ITERATIONS)
            task = tg.TransferTask(*PAIR, labeled_percent=args.labeled, spec=SPEC, seed=s)
            twin = tg.create_method("finetune", pretrained=path).twin()
            twin_acc = trainer.with_options(seed=s).run(twin, task).test_accuracy
            cells.setdefault("finetune_T", {"acc": [], "drift": []})["acc"].append(twin_acc)
            for name, params in methods:
                m = tg.create_method(name, pretrained=path, **params)
                res = trainer.with_options(seed=s).run(m, task)
                state = m.source_model_state_
                start = [state[f"backbone.{n}"].cpu()
                         for n, _ in m.model_.backbone.named_parameters()]
                key = name if not params else f"l2sp(alpha={params['alpha']:g})"
                c = cells.setdefault(key, {"acc": [], "drift": []})
                c["acc"].append(res.test_accuracy)
                c["drift"].append(drift(m, start))
                print(f"eps={eps} seed={s} {key:18s} acc {res.test_accuracy:5.1f} "
                      f"drift {c['drift'][-1]:.4f}", flush=True)
        base = statistics.fmean(cells["finetune"]["acc"])
        twin = statistics.fmean(cells["finetune_T"]["acc"])
        lines += [f"### {title}", "",
                  "| method | test acc (mean) | sd | vs finetune | NTG vs finetune_T | "
                  "backbone drift ‖w−w⁰‖/‖w⁰‖ |", "|---|---:|---:|---:|---:|---:|"]
        for key, c in cells.items():
            if key == "finetune_T":
                continue
            acc = statistics.fmean(c["acc"])
            sd = statistics.stdev(c["acc"]) if len(c["acc"]) > 1 else 0.0
            lines.append(f"| {key} | {acc:.1f} | {sd:.1f} | {acc - base + 0.0:+.1f} | "
                         f"{twin - acc + 0.0:+.1f} | {statistics.fmean(c['drift']):.4f} |")
        lines += ["", f"finetune_T (from scratch): {twin:.1f}", ""]
        raw[str(eps)] = cells
    secs = time.perf_counter() - t0
    md = "\n".join([
        "# L2-SP: the default α", "",
        f"syndigits -> mnist, LeNet at 3x24x24, L = {args.labeled:g}%, "
        f"{args.iterations} iterations (batch 32, lr 0.01, backbone lr x0.1), "
        f"seeds {args.seeds}; β = 0.01, no α decay. {secs:.0f} s on the CPU.", "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/l2sp_alpha.py "
        + " ".join(f"--{k} {v if not isinstance(v, list) else ' '.join(map(str, v))}"
                   for k, v in (("seeds", args.seeds), ("iterations", args.iterations)))
        + "`", "", *lines, READING])
    write_result("l2sp_alpha", md + "\n", json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
