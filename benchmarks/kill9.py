"""Crash safety under kill -9: a multi-run experiment (with one run that always fails) killed
again and again with SIGKILL at random moments, each time restarted with ``--resume``.

After the last kill the experiment is run to completion and compared with the same experiment
run without interruption. Counted:

- lost: runs the uninterrupted experiment finished that the killed one did not;
- duplicated: runs trained again after they had finished (a finished row's time changes);
- stale: rows left ``running``, ``.tmp`` files and training checkpoints left behind, and
  finished results that differ from the uninterrupted ones (resuming from a checkpoint is
  meant to be exact);
- the failing run: recorded ``failed`` and, once failed, never retried by ``--resume``.

Command (about 10 minutes on 2 busy cores; a process needs ~5-10 s to start there)::

    OMP_NUM_THREADS=1 python benchmarks/kill9.py --kills 12
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import store_rows, write_result

ROOT = Path(__file__).resolve().parent.parent
NAME = "kill9"


def config(bad_checkpoint: Path, iterations: int) -> dict:
    return {
        "name": NAME,
        "task": {"source": "mnist", "target": "uci-digits", "eps": 0.3, "labeled_percent": 20,
                 "input_size": 24, "source_size": 300},
        "methods": ["joint", "dann", {"name": "finetune", "pretrained": str(bad_checkpoint)}],
        "trainer": {"iterations": iterations, "batch_size": 16, "eval_every": 20,
                    "progress": False},
        "seeds": [0, 1],
        "ntg": True,
    }


def cli(cfg: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "transferguard", "run", str(cfg), "--out",
                             str(out), "--resume", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rows(out: Path) -> dict[str, dict]:
    return store_rows(out, "error")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=120)
    ap.add_argument("--min-wait", type=float, default=8.0)
    ap.add_argument("--max-wait", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="tg-kill9-"))
    bad = work / "corrupt.pt"
    bad.write_bytes(b"this is not a checkpoint")
    cfg = work / "kill9.yaml"
    cfg.write_text(yaml.safe_dump(config(bad, args.iterations)))

    t0 = time.perf_counter()
    ref_out, out = work / "reference", work / "killed"
    cli(cfg, ref_out).wait()
    ref_seconds = time.perf_counter() - t0
    ref = rows(ref_out)

    kills, landed, finished_times, duplicated = [], 0, {}, set()
    failed_started = None
    for i in range(args.kills):
        proc = cli(cfg, out)
        wait = rng.uniform(args.min_wait, args.max_wait)
        time.sleep(wait)
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = rows(out)
        running = sum(r["status"] == "running" for r in now.values())
        tmp = len(list(out.rglob(".*.tmp"))) if out.exists() else 0
        landed += running > 0
        for key, r in now.items():
            if r["status"] == "finished":
                old = finished_times.setdefault(key, r["finished_at"])
                if old != r["finished_at"]:
                    duplicated.add(key)
            if r["status"] == "failed" and r["label"] == "finetune":
                failed_started = failed_started or r["started_at"]
        kills.append({"kill": i + 1, "after_s": round(wait, 1), "killed": alive,
                      "finished": sum(r["status"] == "finished" for r in now.values()),
                      "running": running, "tmp_files": tmp,
                      "checkpoints": len(list((out / "checkpoints").rglob("*.pt")))
                      if (out / "checkpoints").exists() else 0})
        print(kills[-1], flush=True)
    proc = cli(cfg, out)
    final_rc = proc.wait()
    final = rows(out)
    for key, r in final.items():
        if r["status"] == "finished" and key in finished_times and \
                finished_times[key] != r["finished_at"]:
            duplicated.add(key)

    ref_done = {k for k, r in ref.items() if r["status"] == "finished"}
    lost = sorted(ref_done - {k for k, r in final.items() if r["status"] == "finished"})
    differ = sorted(k for k in ref_done & set(final)
                    if final[k]["metrics"] and final[k]["metrics"]["test_accuracy"]
                    != ref[k]["metrics"]["test_accuracy"])
    running_left = sum(r["status"] == "running" for r in final.values())
    tmp_left = len(list(out.rglob(".*.tmp")))
    ckpt_left = len(list((out / "checkpoints").rglob("*"))) if (out / "checkpoints").exists() \
        else 0
    failing = [r for r in final.values() if r["label"] == "finetune"]
    retried = bool(failed_started and failing and failing[0]["started_at"] != failed_started)
    summary = (out / f"results-{NAME}.md").read_text() if \
        (out / f"results-{NAME}.md").exists() else ""
    result = {
        "kills": len(kills), "kills_during_a_run": landed,
        "runs_expected": len(ref_done), "runs_finished": len(ref_done) - len(lost),
        "lost": len(lost), "duplicated": len(duplicated),
        "stale_running_rows": running_left, "stale_tmp_files": tmp_left,
        "stale_checkpoints": ckpt_left, "results_differing_from_uninterrupted": len(differ),
        "failing_run_status": failing[0]["status"] if failing else None,
        "failing_run_retried_by_resume": retried,
        "summary_lists_the_failure": "1 failed" in summary,
        "final_exit_code": final_rc, "reference_seconds": round(ref_seconds, 1),
        "total_seconds": round(time.perf_counter() - t0, 1), "work_dir": str(work),
    }
    print(json.dumps(result, indent=2))
    table = "\n".join(f"| {k['kill']} | {k['after_s']} | {k['killed']} | {k['finished']} | "
                      f"{k['running']} | {k['checkpoints']} | {k['tmp_files']} |" for k in kills)
    cmd = (f"--kills {args.kills} --iterations {args.iterations} --min-wait {args.min_wait:g} "
           f"--max-wait {args.max_wait:g} --seed {args.seed}")
    md = f"""# kill -9 during a multi-run experiment

Command: `OMP_NUM_THREADS=1 python benchmarks/kill9.py {cmd}`
(kills after a random {args.min_wait:g}-{args.max_wait:g} s each).

The experiment: mnist (ε = 0.3, 300 images) -> uci-digits, LeNet at 3x24x24, L = 20%,
{args.iterations} iterations per run, methods joint, dann and a fine-tuning run whose
`pretrained` file is corrupt (it fails every time), NTG on (each method with its twin), seeds
0 and 1: {len(ref_done)} runs that finish and 1 that fails. It was run once uninterrupted
(the reference, {ref_seconds:.0f} s) and then {len(kills)} times with `--resume`, each killed
with SIGKILL after a random wait, then once to completion.

| measure | value |
|---|---:|
| kills (SIGKILL) | {len(kills)} |
| kills that landed while a run was training | {landed} |
| runs lost | {len(lost)} |
| runs duplicated (trained again after finishing) | {len(duplicated)} |
| stale `running` rows after the final run | {running_left} |
| stale `.tmp` files after the final run | {tmp_left} |
| training checkpoints left after the final run | {ckpt_left} |
| finished results that differ from the uninterrupted run | {len(differ)} |
| the failing run | {result['failing_run_status']}, retried by `--resume`: {retried} |
| the summary (`results-{NAME}.md`) lists the failure | {result['summary_lists_the_failure']} |
| exit code of the final run (1: a run failed) | {final_rc} |

Resumed runs continue from their last training checkpoint (every tenth of the iterations), so
a result after kills equals the uninterrupted one exactly, not only in distribution.

State after each kill (rows of the run store, checkpoint and `.tmp` files on disk):

| kill | after (s) | still running when killed | finished rows | running rows | checkpoints | .tmp |
|---:|---:|---|---:|---:|---:|---:|
{table}
"""
    write_result("kill9", md, json.dumps({"summary": result, "kills": kills}, indent=2))


if __name__ == "__main__":
    main()
