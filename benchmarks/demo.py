"""The demo's table and run time, recorded for the README (``make demo`` runs the same code).

    python benchmarks/demo.py

Runs ``transferguard demo`` in a fresh run store (nothing resumed) and writes
docs/results/demo.md.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from transferguard.experiments.demo import demo_table, run_demo

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="tg-demo-"))
    try:
        t0 = time.perf_counter()
        results = run_demo(out)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    text = "\n".join([
        "# The demo", "",
        "Command: `python benchmarks/demo.py` (the same code as `make demo` / "
        "`transferguard demo`, in a fresh run store).", "",
        demo_table(results, markdown=True), "",
        f"Run time: {seconds:.0f} s on {torch.get_num_threads()} CPU threads (15 trainings "
        "of 600 iterations, plus loading the domains).", "",
        "NTG = acc(twin) − acc(method) in points, with its 95% Student-t interval over 3 "
        "seeds (each seed draws its own perturbation and splits); the twin DANN_T is shared "
        "by DANN and DANN+gate.", "",
    ])
    write_result("demo", text)


if __name__ == "__main__":
    main()
