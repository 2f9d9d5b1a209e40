"""Know before you train: the negative-transfer predictor, the cost of ``diagnose`` and the
label-free validators' selection table.

    python benchmarks/diagnose.py                      # everything (resumes from the store)
    python benchmarks/diagnose.py --shard 0/2          # collect half the runs (then 1/2),
    python benchmarks/diagnose.py --part report        # and write the page from the store

Configurations: 5 source -> target pairs of the built-in digits x ε ∈ {0, 0.8} x
L ∈ {2, 30}% x method ∈ {dann, finetune} = 40, LeNet at 3x24x24.

- Labels: the sign of NTG = acc(twin) − acc(method) from one 300-iteration training of each
  (seed 0; the twin, which never reads the source, is shared by all ε of a target, L and
  method). Test accuracy is the validation-selected checkpoint's.
- Features: :func:`transferguard.experiments.measure_diagnostics` (source network 100
  steps, proxy runs of 50 steps, seed 0; no test split).
- Held-out evaluation: leave-one-pair-out (every held-out configuration is predicted by a
  predictor fitted on the other 4 pairs only). The full predictor against LogME alone (a
  logistic regression on the LogME score, same folds) and against other single features.
- Cost: diagnose's seconds over a full 3-seed NTG run of the same configuration (3 x the
  recorded seconds of the seed-0 method and twin trainings, measured in the same store).
- Validators: every training records, at each evaluation point (every 50 steps), all
  registered validators and, for reporting only, the test accuracy; the table gives the
  test accuracy of the checkpoint each rule picks.

Every training and every diagnosis is recorded in runs/bench-diagnose/runs.sqlite; a rerun
resumes. The final predictor (fitted on all 40 configurations) is written to
src/transferguard/experiments/_ntpredictor.py as the default of ``tg.diagnose``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import transferguard as tg
from transferguard.analysis import (
    NTPredictor,
    ValidatorCallback,
    auroc,
    grouped_predictions,
    list_validators,
    selection_summary,
)
from transferguard.analysis.ntpredict import brier, calibration_bins
from transferguard.experiments import RunStore, config_key, measure_diagnostics
from transferguard.experiments.diagnosis import FEATURES

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "runs" / "bench-diagnose"
PREDICTOR_FILE = ROOT / "src" / "transferguard" / "experiments" / "_ntpredictor.py"
SPEC = tg.InputSpec(3, 24)
PAIRS = (("syndigits", "mnist"), ("mnist", "uci-digits"), ("mnist-m", "mnist"),
         ("mnist", "mnist-m"), ("syndigits", "mnist-m"))
EPS = (0.0, 0.8)
LABELED = (2, 30)
METHODS = ("dann", "finetune")
ITERATIONS = 300
EVAL_EVERY = 50
SEED = 0
SOURCE_ITERATIONS = 100
PROXY_ITERATIONS = 50
VALIDATOR_SAMPLES = 500  # target / source samples the label-free validators read
SOURCE_FIELDS = ("source", "eps_x", "eps_y", "label_map", "label_noise", "corruptions",
                 "source_size", "source_options")


def configs() -> list[tuple[str, str, float, int, str]]:
    return [(s, t, e, lp, m) for s, t in PAIRS for e in EPS for lp in LABELED for m in METHODS]


def make_task(s: str, t: str, eps: float, lp: int) -> tg.TransferTask:
    return tg.TransferTask(s, t, eps=eps, labeled_percent=lp, spec=SPEC, seed=SEED)


class TestAccuracy:
    """Reporting only: the test accuracy of the current state at each evaluation point.
    Its value never reaches model selection (the Trainer selects on validation)."""

    def __init__(self, task: tg.TransferTask) -> None:
        self.split, self.spec = task.test_split(), task.spec

    def on_eval(self, trainer, method, data, step):
        if not (len(data.target_unlabeled) or len(data.target_labeled)):
            return None  # a source pre-training stage: not the run being reported
        return {"test_acc": trainer.evaluate(method.model_, self.split, self.spec).accuracy}


class Timed:
    """Runs callbacks and adds up their time (subtracted from the training's time)."""

    def __init__(self, callbacks: list) -> None:
        self.callbacks, self.seconds = callbacks, 0.0

    def on_eval(self, trainer, method, data, step):
        t0 = time.perf_counter()
        row: dict[str, float] = {}
        for cb in self.callbacks:
            row.update(cb.on_eval(trainer, method, data, step) or {})
        self.seconds += time.perf_counter() - t0
        return row


class Busy(Exception):
    """Another worker is running this record right now (``--helper`` skips it)."""


SKIP_RUNNING = False


def _check_busy(store: RunStore, config: dict) -> None:
    if SKIP_RUNNING:
        rec = store.get(config_key(config))
        if rec is not None and rec.status == "running":
            raise Busy


def train_record(store: RunStore, method: tg.Method, task: tg.TransferTask) -> dict:
    tconf = task.config()
    if method.source_free:
        tconf = {k: v for k, v in tconf.items() if k not in SOURCE_FIELDS}
    config = {"kind": "train", "task": tconf, "method": {"name": method.name,
              **method.get_params()}, "iterations": ITERATIONS, "eval_every": EVAL_EVERY,
              "seed": SEED, "validator_samples": VALIDATOR_SAMPLES}

    _check_busy(store, config)

    def fn() -> dict:
        timed = Timed([ValidatorCallback(max_samples=VALIDATOR_SAMPLES), TestAccuracy(task)])
        tr = tg.Trainer(iterations=ITERATIONS, eval_every=EVAL_EVERY, log_every=EVAL_EVERY,
                        seed=SEED, progress=False, callbacks=[timed])
        r = tr.run(method, task)
        # the training's own time: without the callbacks' evaluations (benchmark-only work)
        return {"test_accuracy": r.test_accuracy, "val_accuracy": r.val_accuracy,
                "seconds": r.seconds - timed.seconds, "callback_seconds": timed.seconds,
                "collapsed": r.collapsed, "history": r.history}

    metrics, _ = store.run(config, fn, experiment="diagnose", label=method.label, resume=True)
    return metrics


def diag_record(store: RunStore, task: tg.TransferTask, method: str) -> dict:
    config = {"kind": "diag", "task": task.config(), "method": method,
              "source_iterations": SOURCE_ITERATIONS, "proxy_iterations": PROXY_ITERATIONS,
              "seed": SEED}

    _check_busy(store, config)

    def fn() -> dict:
        d = measure_diagnostics(task, method, trainer=tg.Trainer(progress=False, seed=SEED),
                                source_iterations=SOURCE_ITERATIONS,
                                proxy_iterations=PROXY_ITERATIONS)
        return {"features": d.features(), "seconds": d.seconds}

    metrics, _ = store.run(config, fn, experiment="diagnose", label=f"diag-{method}",
                           resume=True)
    return metrics


def collect(store: RunStore, shard: int, shards: int, helper: bool = False) -> list[dict]:
    """Train / diagnose every configuration of this shard. A ``helper`` walks all of them
    backwards and skips those another worker is running (it only shortens the tail)."""
    out = []
    items = list(enumerate(configs()))
    for i, (s, t, e, lp, m) in reversed(items) if helper else items:
        if not helper and (i // 2) % shards != shard:  # both methods of a cell: one shard
            continue
        task = make_task(s, t, e, lp)
        t0 = time.perf_counter()
        method = tg.create_method(m)
        try:
            a = train_record(store, method, task)
            b = train_record(store, method.twin(), task)
            d = diag_record(store, task, m)
        except Busy:
            print(f"[{i:2d}] busy in another worker: skipped", flush=True)
            continue
        ntg = b["test_accuracy"] - a["test_accuracy"]
        print(f"[{i:2d}] {s}->{t} eps={e} L={lp} {m:8s}: acc {a['test_accuracy']:.1f} twin "
              f"{b['test_accuracy']:.1f} NTG {ntg:+.1f} proxy gap "
              f"{d['features']['proxy_acc_gap']:+.1f} logme {d['features']['logme']:.3f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
        out.append({"pair": f"{s}->{t}", "source": s, "target": t, "eps": e, "labeled": lp,
                    "method": m, "acc": a["test_accuracy"], "twin_acc": b["test_accuracy"],
                    "ntg": ntg, "features": d["features"], "diag_seconds": d["seconds"],
                    "train_seconds": a["seconds"] + b["seconds"], "history": a["history"],
                    "twin_history": b["history"]})
    return out


def fmt_prob_table(name: str, prob: np.ndarray, y: np.ndarray) -> list:
    acc = float(np.mean((prob >= 0.5) == y)) * 100
    au = auroc(torch.tensor(prob), torch.tensor(y.astype(bool)))
    return [name, f"{acc:.1f}", "n/a" if au is None else f"{au:.3f}", f"{brier(prob, y):.3f}"]


def recorded_seconds(store: RunStore) -> tuple[int, float]:
    """Records of the current grid in the store and their summed wall seconds."""
    n, total = 0, 0.0
    for rec in store.records(status="finished"):
        c = rec.config
        lp = c.get("task", {}).get("labeled_percent")
        if lp not in LABELED:
            continue
        if (c.get("kind") == "train" and c.get("validator_samples") == VALIDATOR_SAMPLES) or (
                c.get("kind") == "diag" and c.get("source_iterations") == SOURCE_ITERATIONS):
            n += 1
            total += rec.seconds or 0.0
    return n, total


def report(rows: list[dict], seconds: float, store: RunStore) -> None:
    n_rec, total = recorded_seconds(store)
    y = np.array([int(r["ntg"] > 0) for r in rows])
    groups = [r["pair"] for r in rows]
    feats = [r["features"] for r in rows]
    lines = ["# Know before you train: diagnose, the NT predictor and the validators", "",
             "Command: `python benchmarks/diagnose.py` (resumes from runs/bench-diagnose; "
             "this run: `--part collect --shard 0/2`, `--shard 1/2` and `--helper` in "
             "parallel, then `--part report`).", "",
             f"{len(rows)} configurations: pairs {', '.join(f'{s}->{t}' for s, t in PAIRS)} x "
             f"ε ∈ {list(EPS)} x L ∈ {list(LABELED)}% x methods {list(METHODS)}; LeNet at "
             f"3x24x24, labels from {ITERATIONS}-iteration trainings (seed {SEED}, one seed: the "
             "sign of a single-seed NTG is itself noisy when |NTG| is below ~1 point). "
             f"Negative transfer (NTG > 0) in {int(y.sum())} of {len(y)} configurations. "
             f"{n_rec} records (trainings, twins shared, and diagnoses) took {total / 60:.0f} "
             "minutes of wall time in 2-3 parallel single-thread workers on a machine shared "
             f"with other jobs; this page was then written in {seconds:.0f} s from the store.",
             ""]

    # ---------------------------------------------------------------- predictor
    lines += ["## Predicting the sign of NTG (leave-one-pair-out, held-out)", "",
              "Each configuration's probability comes from a predictor fitted on the other "
              "four source-target pairs only.", "",
              "| predictor | held-out accuracy (%) | AUROC | Brier |", "|---|---:|---:|---:|"]

    def cv(names: list[str]) -> np.ndarray:
        return grouped_predictions(feats, y, groups, lambda: NTPredictor(names, C=0.5))

    full = cv(list(FEATURES))
    table = [fmt_prob_table("all features (the default of `tg.diagnose`)", full, y),
             fmt_prob_table("LogME alone (logistic on LogME)", cv(["logme"]), y),
             fmt_prob_table("LogME gain over a random-init network", cv(["logme_gain"]), y),
             fmt_prob_table("proxy run alone (accuracy + loss gap)",
                            cv(["proxy_acc_gap", "proxy_loss_gap"]), y),
             fmt_prob_table("scores only (no proxy run)",
                            cv(["logme", "logme_gain", "leep", "nce", "shrinkage_h_score",
                                "a_distance", "log_labeled", "finetune"]), y)]
    base = max(y.mean(), 1 - y.mean()) * 100
    table.append(["always the majority outcome", f"{base:.1f}", "0.500", "n/a"])
    lines += ["| " + " | ".join(r) + " |" for r in table]
    raw = auroc(torch.tensor([-f["logme"] for f in feats]), torch.tensor(y.astype(bool)))
    lines += ["", f"Raw score, no fitting: AUROC of −LogME for negative transfer "
              f"{raw:.3f} (0.5 = no information)." if raw is not None else ""]
    lines += ["", "Calibration of the held-out probabilities (all features):", "",
              "| P(NT) bin | configurations | observed NT rate |", "|---|---:|---:|"]
    for lo, hi, rate, n in calibration_bins(full, y):
        lines.append(f"| {lo:.1f}-{hi:.1f} | {n} | {'' if math.isnan(rate) else f'{rate:.2f}'} |")

    final = NTPredictor(list(FEATURES), C=0.5).fit(feats, y)
    write_predictor(final)
    lines += ["", "Coefficients of the final predictor (fitted on all configurations, "
              "standardised features; > 0 pushes towards negative transfer):", "",
              "| feature | coefficient |", "|---|---:|"]
    lines += [f"| {f} | {c:+.2f} |" for f, c in zip(final.features, final.coef_)]
    lines += ["", "`label_overlap` is 1 in every configuration (the built-in digits share "
              "their label space), so the benchmark cannot measure its effect; it stays a "
              "feature for user data with a `label_map`."]

    # ---------------------------------------------------------------- per configuration
    lines += ["", "### Per configuration", "",
              "| pair | ε | L% | method | acc | twin acc | NTG | held-out P(NT) | LogME | "
              "proxy acc gap |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r, p in zip(rows, full):
        f = r["features"]
        lines.append(f"| {r['pair']} | {r['eps']} | {r['labeled']} | {r['method']} | "
                     f"{r['acc']:.1f} | {r['twin_acc']:.1f} | {r['ntg']:+.1f} | {p:.2f} | "
                     f"{f['logme']:.3f} | {f['proxy_acc_gap']:+.1f} |")

    # ---------------------------------------------------------------- cost
    lines += ["", "## Cost of `diagnose` against a full 3-seed NTG run", "",
              "Ratio = diagnose seconds / (3 x (method + twin) seconds of the seed-0 "
              f"{ITERATIONS}-iteration trainings of the same configuration), all recorded in "
              "the same run store on this machine (2 shared CPU cores, 1 thread per process; "
              "the trainings' seconds exclude the validator and test-accuracy callbacks, which "
              "only this benchmark runs).", "",
              "| method | configurations | diagnose (s, median) | 3-seed NTG run (s, median) | "
              "ratio (median) | ratio (max) |", "|---|---:|---:|---:|---:|---:|"]
    for m in METHODS:
        sel = [r for r in rows if r["method"] == m]
        ratios = [r["diag_seconds"] / (3 * r["train_seconds"]) for r in sel]
        lines.append(f"| {m} | {len(sel)} | {statistics.median(r['diag_seconds'] for r in sel):.1f}"
                     f" | {statistics.median(3 * r['train_seconds'] for r in sel):.1f} | "
                     f"{statistics.median(ratios) * 100:.1f}% | {max(ratios) * 100:.1f}% |")

    # ---------------------------------------------------------------- validators
    rules = [f"v_{v}" for v in list_validators()]
    lines += ["", "## Validators: the test accuracy of the checkpoint each rule picks", "",
              f"Checkpoints every {EVAL_EVERY} steps of each {ITERATIONS}-iteration training "
              f"({ITERATIONS // EVAL_EVERY} per run). Oracle = best test accuracy among them "
              "(reported, never used); `target_val` is the Trainer's labeled-validation rule; "
              "`last` keeps the final state. Label-free rules use the collapse guard. (The "
              "recorded runs were trained before the Trainer had callbacks, by a subclass that "
              "ran the same callbacks at the same evaluation points.)", ""]
    for title, hist_key, sel in (
            ("DANN runs", "history", [r for r in rows if r["method"] == "dann"]),
            ("fine-tuning runs", "history", [r for r in rows if r["method"] == "finetune"])):
        hists = [[h for h in r[hist_key] if "test_acc" in h] for r in sel
                 if any("v_target_val" in h for h in r[hist_key])]
        skipped = len(sel) - len(hists)  # no validation split: no labeled rule to compare
        summ = selection_summary(hists, rules)
        oracle = statistics.fmean(max(h["test_acc"] for h in hs if "test_acc" in h)
                                  for hs in hists)
        note = (f"; {skipped} runs without a validation split (2% of uci-digits) are left "
                "out" if skipped else "")
        lines += [f"### {title} ({summ.runs} runs{note})", "",
                  "| rule | mean test acc of its pick | mean loss vs oracle | worst loss | "
                  "picks the oracle's checkpoint | same pick as target_val |",
                  "|---|---:|---:|---:|---:|---:|",
                  f"| oracle (test) | {oracle:.1f} | 0.0 | 0.0 | 100% | |"]
        order = sorted(rules, key=lambda r: -summ.mean_test[r])
        for r in order:
            lines.append(f"| {r.removeprefix('v_')} | {summ.mean_test[r]:.1f} | "
                         f"{summ.mean_regret[r]:.1f} | {summ.worst_regret[r]:.1f} | "
                         f"{summ.same_as_oracle[r] * 100:.0f}% | "
                         f"{summ.same_as_val.get(r, math.nan) * 100:.0f}% |")
        lines.append(f"| last | {summ.mean_last:.1f} | {oracle - summ.mean_last:.1f} | | | |")
        lines.append("")
    lines += ["Caveat: `source_acc` and `dev` read a subsample of the *training* source "
              "(TrainData has no held-out source split), see "
              "`transferguard.analysis.validators`."]
    payload = json.dumps({"rows": [{k: v for k, v in r.items() if "history" not in k}
                                   for r in rows], "heldout_prob": full.tolist(),
                          "predictor": final.to_dict()}, indent=1)
    write_result("diagnose", "\n".join(lines) + "\n", payload)


def write_predictor(p: NTPredictor) -> None:
    d = p.to_dict()
    body = json.dumps(d, indent=4)
    text = ('"""The default negative-transfer predictor (written by ``benchmarks/diagnose.py``;\n'
            'fitted on the built-in digit configurations listed in docs/results/diagnose.md)."""'
            f"\n\nPREDICTOR = {body}\n")
    PREDICTOR_FILE.write_text(text)
    print(f"written: {PREDICTOR_FILE}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "collect", "report"), default="all")
    ap.add_argument("--shard", default="0/1", help="i/n: collect every n-th configuration")
    ap.add_argument("--helper", action="store_true",
                    help="collect backwards, skipping what another worker is running")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    i, n = (int(v) for v in args.shard.split("/"))
    store = RunStore(STORE)
    t0 = time.perf_counter()
    if args.part == "collect":
        global SKIP_RUNNING
        SKIP_RUNNING = args.helper
        collect(store, i, n, helper=args.helper)
        return 0
    rows = collect(store, 0, 1) if args.part in ("all", "report") else []
    report(rows, time.perf_counter() - t0, store)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
