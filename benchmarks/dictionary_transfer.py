"""Shared-dictionary linear parameter transfer (methods reference 7.1) with related and
unrelated sources.

    python benchmarks/dictionary_transfer.py [--seeds 0 1 2 3 4 5 6 7 8 9]

Two settings, each over seeds (accuracy in %, mean with a 95% Student-t interval; NTG =
acc(target-only twin) − acc(method), > 0 is negative transfer):

1. **planted basis** (synthetic): d = 40 features, c = 5 classes, a planted basis of 6
   directions. Six *related* source tasks use 3 of its atoms each; six *unrelated* ones have
   random weights of the same scale. Every source model is a ridge probe fitted on 300
   samples of its own task, exactly as the target's would be; the target has n_L labeled
   samples (and its own 3 atoms).
2. **digit probes** (built-in domains): pixels at 1x16x16, standardised. Related sources:
   ridge probes trained on mnist, syndigits and mnist-m (2000 samples each); unrelated
   sources: probes trained on the same images with labels drawn at random (nothing to
   teach). One more row fits the dictionary to probes trained with the classes *permuted*
   (same images, another labelling): their column space is the related probes' own, so the
   dictionary, which transfers a subspace, should treat them as related.
   Target: uci-digits with 50 labeled samples, tested on the rest; ``--digit-seeds``.

Methods: the target-only twin (the same objective without sources, α = 0: ridge with ρ = 1),
a ridge tuned by cross-validation (scikit-learn's RidgeClassifierCV, the strongest simple
target-only model), the naive average of the source models, and the dictionary (k and β by
cross-validation) with related, related + unrelated and unrelated sources only; "reference
k" is the dictionary with the reference's default k = min(d, 2c·m).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import RidgeClassifierCV

import transferguard as tg
from transferguard.methods.shallow import SharedDictionaryTransfer

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

METHODS = ("target-only twin (α = 0)", "ridge, λ by CV", "naive average: related",
           "naive average: related + unrelated", "dictionary: related",
           "dictionary: related + unrelated",
           "dictionary: unrelated only", "dictionary: related + unrelated, reference k")


PERMUTED = "dictionary: label-permuted sources only"


def ridge_probe(x: np.ndarray, y: np.ndarray, c: int, lam: float = 1.0) -> np.ndarray:
    onehot = np.eye(c)[y]
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ onehot)


def accuracy(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(((x @ w).argmax(1) == y).mean() * 100)


def evaluate(x: np.ndarray, y: np.ndarray, x_te: np.ndarray, y_te: np.ndarray,
             related: list[np.ndarray], unrelated: list[np.ndarray], c: int
             ) -> dict[str, float]:
    classes = range(c)
    everything = related + unrelated
    out = {}
    twin = SharedDictionaryTransfer(alpha=0.0, beta=1.0, n_atoms=1).fit(
        x, y, source_models=related, classes=classes)
    out[METHODS[0]] = twin.score(x_te, y_te) * 100
    out[METHODS[1]] = RidgeClassifierCV(alphas=np.logspace(-2, 3, 11)).fit(x, y).score(
        x_te, y_te) * 100
    out[METHODS[2]] = accuracy(np.mean(related, 0), x_te, y_te)
    out[METHODS[3]] = accuracy(np.mean(everything, 0), x_te, y_te)
    for name, sources in ((METHODS[4], related), (METHODS[5], everything),
                          (METHODS[6], unrelated)):
        est = SharedDictionaryTransfer().fit(x, y, source_models=sources, classes=classes)
        out[name] = est.score(x_te, y_te) * 100
    dim = x.shape[1]
    ref = SharedDictionaryTransfer(n_atoms=min(dim, 2 * c * len(everything))).fit(
        x, y, source_models=everything, classes=classes)
    out[METHODS[7]] = ref.score(x_te, y_te) * 100
    return out


def planted(seed: int, n_labeled: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    d, c, k = 40, 5, 6
    basis = np.linalg.qr(rng.normal(size=(d, k)))[0]

    def code() -> np.ndarray:
        v = np.zeros((k, c))
        v[rng.choice(k, 3, replace=False)] = rng.normal(size=(3, c)) * 3
        return basis @ v

    def draw(w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, d))
        return x, (x @ w + 0.5 * rng.normal(size=(n, c))).argmax(1)

    truths = [code() for _ in range(6)]
    related = [ridge_probe(*draw(w, 300), c) for w in truths]
    norm = float(np.mean([np.linalg.norm(w) for w in truths]))
    unrelated = []
    for _ in range(6):
        g = rng.normal(size=(d, c))  # a random model of the same size: another task
        unrelated.append(ridge_probe(*draw(g / np.linalg.norm(g) * norm, 300), c))
    w_t = code()
    x, y = draw(w_t, n_labeled)
    x_te, y_te = draw(w_t, 5000)
    return evaluate(x, y, x_te, y_te, related, unrelated, c)


def digit_features(name: str, spec: tg.InputSpec) -> tuple[np.ndarray, np.ndarray]:
    dom = tg.load_domain(name, size=spec.size).convert(spec)
    x = spec.normalize(dom.images).reshape(len(dom), -1).double().numpy()
    return x, dom.labels.numpy()


def digits(seed: int, cache: dict) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    spec = tg.InputSpec(1, 16)
    if not cache:
        for name in ("mnist", "syndigits", "mnist-m", "uci-digits"):
            cache[name] = digit_features(name, spec)
        allx = np.concatenate([cache[n][0] for n in cache])
        cache["_mean"], cache["_std"] = allx.mean(0), allx.std(0) + 1e-6
    z = lambda a: (a - cache["_mean"]) / cache["_std"]  # noqa: E731
    related, unrelated, permuted = [], [], []
    for name in ("mnist", "syndigits", "mnist-m"):
        x, y = cache[name]
        idx = rng.choice(len(x), 2000, replace=False)
        related.append(ridge_probe(z(x[idx]), y[idx], 10, lam=10.0))
        unrelated.append(ridge_probe(z(x[idx]), rng.integers(0, 10, len(idx)), 10, lam=10.0))
        permuted.append(ridge_probe(z(x[idx]), rng.permutation(10)[y[idx]], 10, lam=10.0))
    x, y = cache["uci-digits"]
    order = rng.permutation(len(x))
    lab = order[:50]
    while len(np.unique(y[lab])) < 10:  # every class labeled once at least
        order = rng.permutation(len(x))
        lab = order[:50]
    test = order[50:]
    out = evaluate(z(x[lab]), y[lab], z(x[test]), y[test], related, unrelated, 10)
    est = SharedDictionaryTransfer().fit(z(x[lab]), y[lab], source_models=permuted,
                                         classes=range(10))
    out[PERMUTED] = est.score(z(x[test]), y[test]) * 100
    return out


def summarise(rows: list[dict[str, float]]) -> tuple[list[str], dict]:
    twin = [r[METHODS[0]] for r in rows]
    lines = ["| method | accuracy | NTG vs the twin |", "|---|---:|---:|"]
    raw = {}
    for m in rows[0]:
        acc = [r[m] for r in rows]
        mean, lo, hi = tg.confidence_interval(acc)
        gaps = [t - a for t, a in zip(twin, acc)]
        g, glo, ghi = tg.confidence_interval(gaps)
        ntg = "" if m == METHODS[0] else f"{g:+.1f} [{glo:+.1f}, {ghi:+.1f}]"
        lines.append(f"| {m} | {mean:.1f} [{lo:.1f}, {hi:.1f}] | {ntg} |")
        raw[m] = {"accuracy": acc, "ntg": gaps}
    return lines, raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--digit-seeds", type=int, nargs="+", default=list(range(5)))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sections, raw = [], {}
    for n_l in (20, 40, 80):
        rows = [planted(s, n_l) for s in args.seeds]
        lines, r = summarise(rows)
        sections += [f"### Planted basis, n_L = {n_l} labeled target samples", ""] + lines + [""]
        raw[f"planted-{n_l}"] = r
        print("\n".join(lines), flush=True)
    cache: dict = {}
    rows = [digits(s, cache) for s in args.digit_seeds]
    lines, r = summarise(rows)
    sections += ["### Digit probes: mnist, syndigits, mnist-m -> uci-digits (50 labels)", ""] \
        + lines + [""]
    raw["digits"] = r
    print("\n".join(lines), flush=True)
    cmd = "python benchmarks/dictionary_transfer.py " + " ".join(sys.argv[1:])
    head = ["# Shared-dictionary parameter transfer", "", f"Command: `{cmd.strip()}`", "",
            f"Seeds {args.seeds} (digit probes: {args.digit_seeds}); accuracy in % on the "
            "target test samples, mean and 95% interval over seeds; NTG = acc(twin) − "
            f"acc(method) per seed (> 0: negative transfer). "
            f"{time.perf_counter() - t0:.0f} s in all. See the script's docstring for the "
            "settings.", ""]
    write_result("dictionary", "\n".join(head + sections), json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
