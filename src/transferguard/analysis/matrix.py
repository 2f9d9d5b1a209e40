"""The cross-domain generalisation matrix (methods reference section 9).

Train one model per domain with one fixed recipe, test it on every domain:

    A[i][j] = accuracy on domain j's test split of the model trained on domain i

and three views of it:

- **row-relative** (the pruning poster's table, "relative change against the in-domain
  accuracy"): (A[i][j] − A[i][i]) / A[i][i] × 100 %. A positive cell means domain j's test
  set is *easier* for model i than its own, not that transfer helped;
- **column-relative**: (A[i][j] − A[j][j]) / A[j][j] × 100 %, model i against the in-domain
  model of j: the NTG-like view (how far from training on j itself);
- **percent drop** per row (Torralba & Efros 2011): (A[i][i] − mean_{j≠i} A[i][j]) / A[i][i].

Each domain is split once per seed, stratified, into a training pool (labeled, of which a
validation split selects the model) and a test split (``test_fraction``), exactly as a
target domain of a :class:`~transferguard.data.TransferTask`; the model of domain i is the
target-only recipe on that pool, and every test split is the held-out half of its domain,
so the in-domain cell is a held-out accuracy too. All domains must share one label space.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import Domain, InputSpec, TransferTask, load_domain
from ..engine import Trainer
from ..errors import DataError

VIEWS = ("raw", "row", "column")


@dataclass
class CrossDomainMatrix:
    """Accuracies (%) per training domain i, test domain j and seed: ``accuracy[i][j]``."""

    domains: list[str]
    seeds: list[int]
    accuracy: list[list[list[float]]] = field(default_factory=list)

    def raw(self) -> list[list[float]]:
        """Mean accuracy over seeds."""
        return [[statistics.fmean(cell) for cell in row] for row in self.accuracy]

    def sd(self) -> list[list[float | None]]:
        return [[statistics.stdev(c) if len(c) > 1 else None for c in row]
                for row in self.accuracy]

    def relative(self, by: str = "row") -> list[list[float]]:
        """Relative change in % against the in-domain accuracy of the row's model
        (``by="row"``) or of the column's domain (``by="column"``)."""
        if by not in ("row", "column"):
            raise DataError(f"by must be 'row' or 'column', got {by!r}.")
        a = self.raw()
        n = len(a)
        return [[(a[i][j] - a[k][k]) / a[k][k] * 100 if a[k][k] > 0 else float("nan")
                 for j in range(n) for k in [i if by == "row" else j]] for i in range(n)]

    def view(self, name: str) -> list[list[float]]:
        if name not in VIEWS:
            raise DataError(f"view must be one of {VIEWS}, got {name!r}.")
        return self.raw() if name == "raw" else self.relative(name)

    def percent_drop(self) -> list[float]:
        """Per training domain: (in-domain − mean of the others) / in-domain, in %."""
        a = self.raw()
        out = []
        for i, row in enumerate(a):
            others = [v for j, v in enumerate(row) if j != i]
            out.append((row[i] - statistics.fmean(others)) / row[i] * 100 if others else 0.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"domains": self.domains, "seeds": self.seeds, "accuracy": self.accuracy,
                "raw": self.raw(), "row_relative": self.relative("row"),
                "column_relative": self.relative("column"), "percent_drop": self.percent_drop()}


def _name(d: str | Domain) -> str:
    return d if isinstance(d, str) else d.name


def check_label_spaces(domains: Sequence[str | Domain], spec: InputSpec,
                       options: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str, ...]:
    """The common class names of ``domains``; differing label spaces stop with a message."""
    names = [_name(d) for d in domains]
    if len(names) < 2:
        raise DataError(f"a cross-domain matrix needs at least two domains, got {names}.")
    if len(set(names)) != len(names):
        raise DataError(f"domains are listed twice: {names}; give each once.")
    classes = {}
    for name, dom in zip(names, domains):
        d = load_domain(dom, size=spec.size, **dict((options or {}).get(name, {})))
        classes[name] = tuple(d.classes)
    first = names[0]
    bad = [n for n in names if classes[n] != classes[first]]
    if bad:
        detail = "; ".join(f"{n}: {list(classes[n])[:12]}" for n in [first, *bad])
        raise DataError(f"the domains do not share one label space ({detail}). A matrix "
                        "compares models on the same classes: give domains with the same "
                        "class names.")
    return classes[first]


def domain_task(name: str | Domain, spec: InputSpec, seed: int, num_classes: int, *,
                test_fraction: float = 0.5, options: Mapping[str, Any] | None = None
                ) -> TransferTask:
    """The task whose target is ``name`` split for the matrix (all of its pool labeled).

    The model trained on it is source-free, so its source is never read: a tiny slice of the
    same domain stands there (the test split only depends on the target and the seed).
    """
    opts = dict(options or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "source and target are the same domain"
        return TransferTask(name, name, labeled_percent=100, test_fraction=test_fraction,
                            seed=seed, spec=spec, source_size=num_classes,
                            source_options=opts, target_options=opts)


#: run(method, task of domain i, seed, {domain j: task of j}) -> {domain j: accuracy}
MatrixRunFn = Callable[[Any, TransferTask, int, dict[str, TransferTask]], dict[str, float]]


def train_and_test(trainer: Trainer) -> MatrixRunFn:
    """The in-memory run: train on task i, evaluate the selected model on every test split."""

    def run(method: Any, task: TransferTask, seed: int,
            tests: dict[str, TransferTask]) -> dict[str, float]:
        tr = trainer.with_options(seed=seed)
        tr.run(method, task)
        return {name: tr.evaluate(method.model_, t.test_split(), t.spec).accuracy
                for name, t in tests.items()}

    return run


def cross_domain_matrix(domains: Sequence[str | Domain], *, spec: InputSpec | None = None,
                        model: str = "lenet", model_options: dict | None = None,
                        trainer: Trainer | None = None, seeds: Sequence[int] = (0,),
                        test_fraction: float = 0.5,
                        domain_options: Mapping[str, Mapping[str, Any]] | None = None,
                        run: MatrixRunFn | None = None) -> CrossDomainMatrix:
    """Train on each domain, test on every domain, for every seed."""
    from ..methods import create_method

    spec = spec or InputSpec()
    classes = check_label_spaces(domains, spec, domain_options)
    names = [_name(d) for d in domains]
    run = run or train_and_test(trainer or Trainer())
    result = CrossDomainMatrix(names, list(seeds), [[[] for _ in names] for _ in names])
    opts = domain_options or {}
    for seed in seeds:
        tasks = {n: domain_task(d, spec, seed, len(classes), test_fraction=test_fraction,
                                options=opts.get(n)) for n, d in zip(names, domains)}
        for i, d in enumerate(names):
            method = create_method("target_only", model=model, model_options=model_options,
                                   source_free=True)
            accs = run(method, tasks[d], seed, tasks)
            for j, e in enumerate(names):
                result.accuracy[i][j].append(float(accs[e]))
    return result
