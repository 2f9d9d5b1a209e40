"""The example HTML report of the docs: a small ε x L% NTG grid on the built-in digits.

Trains DANN+gate and its target-only twin (LeNet at 3x24x24, mnist -> uci-digits, a
1,000-image source) over ε ∈ {0, 0.4, 0.8} x L ∈ {10, 30}% and two seeds, records every run
in a run store, writes ``transferguard report`` of it and, when Chromium is installed,
a screenshot of the page to ``docs/images/report.png``.

    OMP_NUM_THREADS=1 python benchmarks/report_example.py [--iterations 150]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import torch

import transferguard as tg
from transferguard.experiments import Runner, RunStore, write_report

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--out", default="/tmp/tg-report-example")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    trainer = tg.Trainer(iterations=args.iterations, batch_size=32, eval_every=25,
                         log_every=25, progress=False)
    runner = Runner(RunStore(out / "digits"), trainer, experiment="digits eps x L",
                    resume=True, echo=print)
    for eps in (0.0, 0.4, 0.8):
        for lp in (10, 30):
            task = tg.TransferTask("mnist", "uci-digits", eps=eps, labeled_percent=lp,
                                   source_size=1000, spec=tg.InputSpec(3, 24))
            tg.negative_transfer_gap(task, tg.create_method("dann", gate=True), seeds=[0, 1],
                                     run=runner)
    page = write_report(out, out / "report.html", "transferguard report: digits ε x L%")
    print(f"written: {page}")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        DOCS.mkdir(parents=True, exist_ok=True)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--window-size=1280,1500",
                        f"--screenshot={DOCS / 'report.png'}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
        print(f"written: {DOCS / 'report.png'}")


if __name__ == "__main__":
    main()
