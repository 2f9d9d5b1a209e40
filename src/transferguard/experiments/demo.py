"""The demo: transfer helping, a source that clearly hurts, and safe mode telling them apart.

Two scenarios, LeNet at 24x24, 5 seeds (:data:`SEEDS`), each method against its target-only
twin (DANN_T):

- **helpful source** (mnist -> mnist-m, clean, 5% of the target labeled): the target alone
  is weak and DANN shows clear positive transfer;
- **harmful source** (:data:`HARMFUL`: syndigits -> mnist, clean images, every source label
  moved by pair-flip noise at ε_y = 1, 10% of the target labeled): each digit of the source
  carries the *next* class's label (in a seeded cyclic order), as when two data sets disagree
  on their label maps, so the source teaches a wrong rule the target labels must undo. DANN
  shows clear negative transfer.

In the harmful scenario DANN with gradient-similarity gating (``combine="gradsim"``: the
source's gradient enters in proportion to its smoothed cosine with the labeled target's) is
trained too: the defence that shuts the harmful source out by training. That it keeps the
helpful source's gain is checked by ``benchmarks/demo.py`` (``scenarios(extended=True)``);
five more trainings would take ``make demo`` past 5 minutes on 2 cores.

In the harmful scenario, safe mode around DANN (the method, its twin or a blend, chosen on
the labeled target's validation split with Holm-corrected McNemar tests; it reuses the two
runs, no extra training) keeps the twin: NTG exactly 0. It is not shown in the helpful
scenario because there it pays its price: with 5% of a small target labeled, the validation
split holds a few dozen images, too few for the test to prove a 20-point gain, and safe mode
kept the twin in 2 of 3 seeds (64.5 against DANN's 76.9; measured with this code, the row
added to the helpful scenario).

Only rows whose verdict holds with margin are shown. The demo runs 5 seeds: with 3, the
harmful DANN row's interval was +9.2 [+3.0, +15.3] on one thread and +9.0 [-1.6, +19.5] on two
(CPU kernels differ with the thread count, and one seed of this scenario swings by 9 points),
so its verdict depended on the machine; with 5 seeds it clears 0 by several points
(docs/results/demo.md gives the 5- and a 7-seed table). The source weighters (the paper's
gate, Gold Loss Correction) narrow this gap by 4 to 6 points but do not close it, and their
rows changed verdict between 3 and 5 seeds (+3.3 [+1.8, +4.7] and +3.8 [+0.1, +7.5] with 5
seeds), so they are measured in docs/results/prevention_grid.md instead. Every run is recorded in
``OUT/runs.sqlite``; ``--resume`` skips finished runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.ntg import NTGResult, negative_transfer_gap
from ..analysis.safe import SafeMode, safe_ntg
from ..data import InputSpec, TransferTask
from ..engine import Trainer
from ..methods import create_method
from ..report.tables import collapse_flag, format_table, interval_text
from ..utils import atomic_write
from .runner import Runner
from .store import RunStore

#: the demo's seeds (3 were not enough for a verdict that holds on every machine)
SEEDS = (0, 1, 2, 3, 4)
#: iterations per run (``make demo`` stays under 5 minutes on 2 cores)
ITERATIONS = 400


@dataclass(frozen=True)
class Scenario:
    title: str
    source: str
    target: str
    task: dict[str, Any]
    #: (method name, parameters, with safe mode around it)
    methods: tuple[tuple[str, dict, bool], ...]


@dataclass
class DemoRow:
    """One row of the demo table: an NTG and, for safe mode, what it kept per seed."""

    scenario: str
    result: NTGResult
    kept: list[str] = field(default_factory=list)


def scenarios(extended: bool = False) -> tuple[Scenario, ...]:
    """The demo's scenarios; ``extended`` adds DANN+gradsim to the helpful one (what
    ``benchmarks/demo.py`` checks: 5 more trainings would take the demo past 5 minutes)."""
    helpful: tuple[tuple[str, dict, bool], ...] = (("dann", {}, False),)
    if extended:
        helpful += (("dann", GRADSIM, False),)
    return (
        Scenario("helpful source, L=5%", "mnist", "mnist-m",
                 {"eps": 0.0, "labeled_percent": 5}, helpful),
        Scenario("harmful source, L=10%", *HARMFUL,
                 (("dann", {}, True), ("dann", GRADSIM, False))),
    )


#: the defence trained in both scenarios: gradient-similarity gating of the source
GRADSIM: dict[str, Any] = {"combine": "gradsim"}

#: the harmful scenario: source, target, task settings
HARMFUL = ("syndigits", "mnist",
           {"eps_x": 0.0, "eps_y": 1.0, "label_noise": "pairflip", "labeled_percent": 10})


def run_demo(out_dir: str | Path = "runs/demo", *, seeds: Sequence[int] = SEEDS,
             iterations: int = ITERATIONS, resume: bool = False,
             echo: Callable[[str], None] = print, extended: bool = False) -> list[DemoRow]:
    t0 = time.perf_counter()
    out = Path(out_dir)
    trainer = Trainer(iterations=iterations, batch_size=32, progress=False)
    runner = Runner(RunStore(out), trainer, "demo", resume, echo)
    spec = InputSpec(channels=3, size=24)
    rows: list[DemoRow] = []
    rule = SafeMode()
    for sc in scenarios(extended):
        task = TransferTask(sc.source, sc.target, spec=spec, **sc.task)
        echo(f"\n== {sc.title}: {sc.source} -> {sc.target}")
        task.summary()  # load and split once, outside the timed runs
        # safe mode reads the predictions of its method and of the twin, which the first
        # DANN row trains: keep them for every run of a scenario that has safe mode
        runner.predictions = any(with_safe for *_, with_safe in sc.methods)
        for name, params, with_safe in sc.methods:
            method = create_method(name, **params)
            rows.append(DemoRow(sc.title, negative_transfer_gap(task, method, seeds,
                                                                run=runner)))
            if with_safe:
                twin = method.twin()
                preds = [(runner.predictions_of(method, task.with_seed(s), s),
                          runner.predictions_of(twin, task.with_seed(s), s)) for s in seeds]
                r, choices = safe_ntg(method.label, twin.label, seeds, preds, rule)
                rows.append(DemoRow(sc.title, r, [
                    c.choice if c.choice != "blend" else f"blend w={c.weight:g}"
                    for c in choices]))
    table = demo_table(rows)
    seconds = time.perf_counter() - t0
    echo("\n" + table)
    echo(f"\n{runner.trained} runs trained, {runner.reused} resumed, in {seconds:.0f} s "
         f"({len(seeds)} seeds, {iterations} iterations each). NTG = acc(twin) - acc(method), "
         "in points: > 0 means the source hurt.")
    with atomic_write(out / "demo.md", "w") as fh:
        fh.write(demo_table(rows, markdown=True) + f"\n\nTime: {seconds:.0f} s\n")
    return rows


def kept_text(kept: Sequence[str]) -> str:
    """``twin x3`` / ``twin x2, method x1``: what safe mode kept over the seeds."""
    counts: dict[str, int] = {}
    for k in kept:
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in counts.items())


def demo_table(rows: Sequence[DemoRow | tuple[str, NTGResult]], markdown: bool = False) -> str:
    out = []
    for row in rows:
        if not isinstance(row, DemoRow):
            row = DemoRow(*row)
        r = row.result
        verdict = r.verdict + collapse_flag(r) + (" (thin margin)" if r.thin_margin else "")
        if row.kept:
            verdict += f"; kept {kept_text(row.kept)}"
        out.append([row.scenario, r.method, r.mean_accuracy, r.twin, r.mean_twin_accuracy,
                    interval_text(r), verdict])
    headers = ["scenario", "method", "acc", "twin", "twin acc", "NTG [95% CI]", "verdict"]
    return format_table(out, headers, markdown)
