"""The HTML report: built from a real run store, checked as text and in a real headless browser.

The browser tests need Chromium (Debian: ``apt-get install chromium``); they skip, saying so,
when no Chromium binary is found.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import transferguard as tg
from transferguard.cli import main
from transferguard.errors import DataError
from transferguard.experiments import Runner, RunStore, ntg_table_rows, write_report
from transferguard.report.html import render_report

EVIL = "<script>alert(1)</script>"
ERROR = "RuntimeError: <img src=x onerror=alert(2)>"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """Two experiments: a 2 x 1 (ε, L%) NTG grid of DANN+gate over two seeds, and one run of
    an experiment whose name is markup; plus an analysis plot file."""
    root = tmp_path_factory.mktemp("runs")
    trainer = tg.Trainer(iterations=6, batch_size=8, eval_every=3, log_every=3, progress=False)
    runner = Runner(RunStore(root / "grid"), trainer, experiment="digits grid")
    for eps in (0.0, 0.6):
        for lp in (20,):
            task = tg.TransferTask("mnist", "uci-digits", eps=eps, labeled_percent=lp,
                                   source_size=200, spec=tg.InputSpec(3, 16))
            tg.negative_transfer_gap(task, tg.create_method("dann", gate=True), seeds=[0, 1],
                                     run=runner)
    evil = Runner(RunStore(root / "evil"), trainer, experiment=EVIL)
    evil(tg.create_method("source_only"), task, 0)
    store = RunStore(root / "evil")  # a failed run whose error text is markup
    store.start("k-failed", EVIL, "<b>label</b>", {"task": {"source": "<i>x</i>"}})
    store.fail("k-failed", ERROR, 1.0)
    store.start("k-running", EVIL, "killed", {"method": {"name": "dann"}})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    (root / "plots").mkdir()
    fig.savefig(root / "plots" / "cka.png")
    plt.close(fig)
    return root


@pytest.fixture(scope="module")
def report(runs_dir, tmp_path_factory) -> Path:
    return write_report(runs_dir, tmp_path_factory.mktemp("report") / "report.html")


def _expected_cells(root: Path) -> list[str]:
    """Mean accuracies of each method and twin, computed here straight from the stores."""
    recs = RunStore(root / "grid").records()
    assert recs and all(r.status == "finished" for r in recs)
    out = []
    for r in recs:
        if r.config["method"]["source_free"] or r.config["trainer"]["seed"] != 0:
            continue
        other = [o for o in recs if o.config["task"] == {**r.config["task"], "seed": 1}
                 and o.label == r.label and o.config["trainer"]["seed"] == 1]
        accs = [r.metrics["test_accuracy"]] + [o.metrics["test_accuracy"] for o in other]
        out.append(f"{sum(accs) / len(accs):.1f}")
    return out


def test_ntg_pairs_every_method_run_with_its_twin(runs_dir):
    rows = ntg_table_rows(RunStore(runs_dir / "grid").records())
    assert len(rows) == 2  # 2 eps x 1 L
    for r in rows:
        assert r.result.method == "dann+gate" and r.result.twin == "dann_T"  # no gate
        assert r.result.seeds == [0, 1]
    by_cell = {(r.eps, r.labeled): r for r in rows}
    # the twin is source-free: the same runs for both ε at one L%
    assert (by_cell[("0", 20.0)].result.twin_accuracy
            == by_cell[("0.6", 20.0)].result.twin_accuracy)


def test_page_holds_the_store_numbers_and_escapes_every_string(runs_dir, report):
    page = report.read_text()
    assert "<script" not in page.replace(html.escape(EVIL), "")  # no script element at all
    assert html.escape(EVIL) in page
    assert html.escape(ERROR) in page and "<img src=x" not in page
    assert "&lt;b&gt;label&lt;/b&gt;" in page and "&lt;i&gt;x&lt;/i&gt;" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    for cell in _expected_cells(runs_dir):
        assert f">{cell}<" in page
    assert page.count("data:image/png;base64,") >= 4  # curves, harmful grid, the plot file
    assert "plots/cka.png" in page
    assert "most_harmful" not in page and "AUROC wrong labels" in page


def test_report_command_and_bad_directory(runs_dir, tmp_path, capsys):
    assert main(["report", str(runs_dir / "evil"), "-o", str(tmp_path / "r.html")]) == 0
    assert html.escape(EVIL) in (tmp_path / "r.html").read_text()
    assert main(["report", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "x.html")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no run store"):
        write_report(tmp_path / "empty", tmp_path / "y.html")


def test_a_store_without_twins_renders_with_a_note():
    page = render_report([], "empty")
    assert "No method run is paired" in page and "<table" in page


@pytest.mark.skipif(_chromium() is None,
                    reason="no Chromium binary found (Debian: apt-get install chromium)")
def test_page_in_a_headless_browser(runs_dir, report, tmp_path):
    out = report
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={tmp_path / 'profile'}"]
    proc = subprocess.run([*browser, "--virtual-time-budget=3000", "--dump-dom",
                           out.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console  # no console message at all: no error, no CSP violation
    dom = proc.stdout
    assert "<script" not in dom.replace(html.escape(EVIL), "")  # parsed DOM: no script element
    assert html.escape(EVIL) in dom  # the name is there, as text
    assert 'src="x"' not in dom and "onerror=alert(2)" in dom  # the error text too
    text = re.sub(r"<[^>]+>", " ", dom)
    for cell in _expected_cells(runs_dir):
        assert f" {cell} " in text
    assert "negative transfer gap" in text.lower()
    shot = tmp_path / "shot.png"
    proc = subprocess.run([*browser, "--window-size=1280,900", "--hide-scrollbars",
                           f"--screenshot={shot}", out.as_uri()], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and shot.stat().st_size > 10_000


# ------------------------------------------------------------------ safe mode


def test_safe_rows_from_a_run_store_in_the_page(tmp_path):
    """``run --safe`` records its decisions in the store; the page shows safe(METHOD) in the
    NTG table (scored against the same twin) and what was kept in each seed, and why."""
    from transferguard.experiments import config_from_dict, run_experiment

    cfg = {"name": "safe-exp", "ntg": True, "seeds": [0, 1],
           "task": {"source": "mnist", "target": "uci-digits", "eps": 0.3,
                    "labeled_percent": 20, "input_size": 16, "source_size": 200},
           "method": {"name": "dann", "safe": True},
           "trainer": {"iterations": 4, "batch_size": 8, "progress": False}}
    res = run_experiment(config_from_dict(cfg), tmp_path)
    plain, safe = res.ntg
    assert len(RunStore(tmp_path).safe_records()) == 2  # one decision per seed
    page = write_report(tmp_path, tmp_path / "r.html").read_text()
    ntg = page[page.index("id='ntg'"):page.index("id='heatmaps'")]
    row = ntg[ntg.index(">safe(dann)<"):]
    row = row[:row.index("</tr>")]
    assert f">{safe.mean_accuracy:.1f}<" in row and f">{safe.mean_twin_accuracy:.1f}<" in row
    assert safe.mean_twin_accuracy == pytest.approx(plain.mean_twin_accuracy, abs=1e-4)
    assert f">{safe.ntg:+.1f}<" in row
    section = page[page.index("id='safe'"):page.index("id='curves'")]
    assert section.count("<tr>") == 3  # the header and one row per seed
    for c in res.safe[0]["choices"]:
        kept = f"blend w = {c['weight']:g}" if c["choice"] == "blend" else c["choice"]
        assert f">{kept}<" in section and html.escape(c["reason"]) in section


def test_a_safe_blend_and_its_reason_are_shown_escaped():
    from transferguard.analysis import NTGResult
    from transferguard.report.html import SafeRow

    choice = {"choice": "blend", "weight": 0.25, "n_val": 40, "reason": EVIL}
    task = {"source": "mnist", "target": "usps", "eps_x": 0.2, "eps_y": 0.2,
            "labeled_percent": 10}
    row = SafeRow("exp", task, NTGResult("safe(dann)", "dann_T", [3], [71.0], [70.0]), [],
                  [{"seed": 3, "method": "dann", "test_accuracy": 71.0,
                    "twin_test_accuracy": 70.0, "method_test_accuracy": 66.0,
                    "choice": choice}])
    page = render_report([], "t", safe=[row])
    section = page[page.index("id='safe'"):page.index("id='curves'")]
    assert ">blend w = 0.25<" in section and ">66.0<" in section and ">40<" in section
    assert html.escape(EVIL) in section and EVIL not in page
    assert ">safe(dann)<" in page[page.index("id='ntg'"):page.index("id='safe'")]
    assert "No safe-mode decision" in render_report([], "t")
