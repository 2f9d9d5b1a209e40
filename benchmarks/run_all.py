"""Run every benchmark in turn (``make bench``). Each one writes docs/results/NAME.md.

    python benchmarks/run_all.py            # all of them
    python benchmarks/run_all.py domains    # only those whose file name contains a word
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["domains", "trainer_overhead", "demo", "gate_tables", "finetune_tables", "pruning",
         "diagnose", "what_is_transferred", "l2sp_alpha"]


def main() -> int:
    wanted = sys.argv[1:]
    scripts = [HERE / f"{n}.py" for n in ORDER if not wanted or any(w in n for w in wanted)]
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        code = subprocess.call([sys.executable, str(script)])
        if code:
            print(f"{script.name} failed with exit code {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
