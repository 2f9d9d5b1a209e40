"""A self-contained HTML page of run-store records (``transferguard report RUNS_DIR -o FILE``;
reading the stores is :func:`transferguard.experiments.write_report`'s part).

One file that opens anywhere with no network: the CSS is inline, every figure is a base64
``data:`` URI, and there is no script at all. A Content-Security-Policy in the page forbids
scripts and any fetch but ``data:`` images, so even a string that escaped escaping could not
run or call out. Every string that comes from the store or the file system (experiment names,
method labels, domain names, error texts, file names) goes through :func:`html.escape`.

What it shows, from the records of every run store (``runs.sqlite``) under the directory:

1. a summary (runs finished, failed, still running);
2. the NTG tables: each finished run of a method is paired with the finished run of its
   target-only twin on the same task, seed and trainer settings (the twin's store key is
   computed exactly as the runner computes it), and the gaps over seeds give the mean NTG,
   its 95% Student-t interval and the verdict (:class:`~transferguard.analysis.NTGResult`);
3. an ε x L% heat-map of the mean NTG per method and transfer pair (red: negative transfer);
4. training curves (training loss and validation accuracy against the step) from the history
   the runner records with each run;
5. harmful-sample grids: the lowest-weight source samples of gated runs, drawn from the
   source rebuilt from the run's task config (the perturbation is seeded, so it is the same
   source), with their harmful-sample detection scores;
6. every image file (PNG, JPEG, SVG) found under the directory, e.g. analysis plots;
7. the table of all runs, with the error text of failed ones.

Safe mode's decisions (recorded in the stores by ``transferguard run --safe`` and by sweeps
with ``safe:``) join the NTG tables and heat-maps as rows of their own, ``safe(METHOD)``
against the same twin, and a section lists what safe mode kept in every seed (the method,
the twin or a blend with its weight) and why.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the most figures of each kind one page carries (a big sweep would otherwise be 100s of MB)
MAX_CURVES, MAX_GRIDS, MAX_FILES = 24, 12, 40
MAX_FILE_BYTES = 5 * 2**20
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".svg": "image/svg+xml"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


# --------------------------------------------------------------------------------------------
# NTG from the records
# --------------------------------------------------------------------------------------------


@dataclass
class NTGRow:
    """One method on one scenario (task without its seed, trainer settings) over seeds."""

    experiment: str
    task: dict[str, Any]
    result: Any  # NTGResult
    runs: list[Any] = field(default_factory=list)

    @property
    def pair(self) -> str:
        return f"{self.task.get('source')} → {self.task.get('target')}"

    @property
    def eps(self) -> str:
        ex, ey = self.task.get("eps_x"), self.task.get("eps_y")
        return f"{ex:g}" if ex == ey else f"{ex:g} / {ey:g}"

    @property
    def labeled(self) -> float:
        return float(self.task.get("labeled_percent", math.nan))


@dataclass
class SafeRow(NTGRow):
    """Safe mode around one method on one scenario: its NTG over seeds (``result``, named
    ``safe(METHOD)``) and the recorded decision of each seed (``decisions``: dicts with
    ``seed``, ``chose``, ``test_accuracy``, ``twin_test_accuracy``, ``method_test_accuracy``
    and ``choice``, a :class:`~transferguard.analysis.safe.SafeChoice` as a dict)."""

    decisions: list[dict[str, Any]] = field(default_factory=list)


def _sort_key(r: NTGRow) -> tuple:
    return (r.experiment, r.pair, r.task.get("eps_x", 0), r.task.get("eps_y", 0), r.labeled,
            r.result.method)


def ntg_rows(records: Iterable[Any], twin_key: Callable[[dict[str, Any]], str | None]
             ) -> list[NTGRow]:
    """Pair every finished run with its finished twin and group the gaps over seeds.

    ``twin_key(config)`` gives the store key of the twin of the run with ``config`` (the
    run store's business: :func:`transferguard.experiments.twin_key`)."""
    from ..analysis import NTGResult

    finished = {r.key: r for r in records if r.status == "finished" and r.metrics}
    groups: dict[tuple[str, str, str], list[tuple[Any, Any]]] = defaultdict(list)
    for r in finished.values():
        method = r.config.get("method", {})
        if method.get("source_free") or "task" not in r.config:
            continue
        tkey = twin_key(r.config)
        twin = finished.get(tkey) if tkey else None
        if twin is None:
            continue
        task = {k: v for k, v in r.config["task"].items() if k != "seed"}
        trainer = {k: v for k, v in r.config.get("trainer", {}).items() if k != "seed"}
        key = (r.experiment, json.dumps([task, trainer, method], sort_keys=True, default=str),
               r.label)
        groups[key].append((r, twin))
    rows = []
    for (experiment, _, label), pairs in groups.items():
        pairs.sort(key=lambda p: p[0].config.get("trainer", {}).get("seed", 0))
        seeds = [int(a.config.get("trainer", {}).get("seed", 0)) for a, _ in pairs]
        if len(set(seeds)) != len(seeds):
            continue
        res = NTGResult(
            label, pairs[0][1].label, seeds,
            [float(a.metrics["test_accuracy"]) for a, _ in pairs],
            [float(b.metrics["test_accuracy"]) for _, b in pairs],
            [bool(a.metrics.get("collapsed")) for a, _ in pairs],
            [bool(b.metrics.get("collapsed")) for _, b in pairs],
        )
        task = {k: v for k, v in pairs[0][0].config["task"].items() if k != "seed"}
        rows.append(NTGRow(experiment, task, res, [a for a, _ in pairs]))
    rows.sort(key=_sort_key)
    return rows


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def curves_figure(runs: Sequence[Any], title: str) -> str | None:
    """Training loss and validation accuracy against the step, one line per run."""
    runs = [r for r in runs if (r.metrics or {}).get("history")]
    if not runs:
        return None
    plt = _pyplot()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.2))
    for r in runs:
        hist = r.metrics["history"]
        name = _curve_label(r)
        loss = [(h["step"], h["loss"]) for h in hist if "loss" in h]
        val = [(h["step"], h["val_acc"]) for h in hist if "val_acc" in h]
        if loss:
            ax_loss.plot(*zip(*loss), label=name, lw=1.2)
        if val:
            ax_val.plot(*zip(*val), label=name, lw=1.2, marker="o", ms=2)
    ax_loss.set(xlabel="step", ylabel="training loss", title="training loss")
    ax_val.set(xlabel="step", ylabel="accuracy (%)", title="target validation accuracy")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    ax_val.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def _task_from_config(cfg: dict[str, Any]) -> Any:
    """Rebuild the TransferTask a run record describes (its perturbation is seeded)."""
    from ..data import InputSpec, TransferTask

    channels, size, mean, std = cfg["spec"]
    keys = ("eps_x", "eps_y", "labeled_percent", "val_fraction", "test_fraction", "seed",
            "label_map", "label_noise", "source_size", "source_options", "target_options")
    kw = {k: cfg[k] for k in keys if k in cfg}
    if "corruptions" in cfg:
        kw["corruptions"] = tuple(cfg["corruptions"])
    if "unlabeled" in cfg:
        kw["unlabeled"] = cfg["unlabeled"]
    spec = InputSpec(channels, size, mean, std)
    if "stream" in cfg:  # a folder streamed from disk: rebuild it streamed, not in memory
        from ..data import LoaderOptions, StreamingTask

        kw.pop("source_options", None)
        kw.pop("target_options", None)
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["stream"].items()}
        return StreamingTask(cfg["source"], cfg["target"], spec=spec,
                             loader=LoaderOptions(num_workers=0, **opts), **kw)
    return TransferTask(cfg["source"], cfg["target"], spec=spec, **kw)


def _source_image(task: Any, index: int) -> Any:
    """One source image as uint8 (C, H, W): indexed in memory, or decoded (evaluation view)."""
    source = task.train_data().source
    if hasattr(source, "dataset"):
        return source.dataset(train=False)[(index, None)][0]
    return task.perturbation.images[index]


def harmful_figure(record: Any, items: Sequence[dict[str, Any]]) -> str:
    """The lowest-weight source samples, titled observed→clean label and ω (red: wrong)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = _task_from_config(record.config["task"])
    classes = task.classes
    plt = _pyplot()
    cols = 8
    rows = max(1, (len(items) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.15, rows * 1.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items):
        img = _source_image(task, int(item["index"]))
        img = img.expand(3, -1, -1) if img.shape[0] == 1 else img
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        wrong = bool(item.get("label_wrong"))
        ax.set_title(f"{classes[item['label']]}→{classes[item['clean_label']]} "
                     f"ω={item['weight']:.2f}", fontsize=6, color="red" if wrong else "black")
    return _png(fig)


def _file_uri(path: Path) -> str | None:
    kind = IMAGE_TYPES.get(path.suffix.lower())
    if kind is None or path.stat().st_size > MAX_FILE_BYTES:
        return None
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c5cbd6}header a{color:#9cc3ff}
main{padding:8px 32px 48px;max-width:1400px}
h2{margin:28px 0 8px;font-size:18px;border-bottom:2px solid #dfe3ea;padding-bottom:4px}
h3{margin:18px 0 6px;font-size:15px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #dfe3ea;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.neg{color:#b3261e;font-weight:600}.pos{color:#1b6e3a;font-weight:600}.inc{color:#6b7280}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #dfe3ea;
border-radius:6px;padding:8px 14px}.card b{display:block;font-size:20px}
.heat td.num{min-width:64px;text-align:center}.heat th{text-align:center}
figure{background:#fff;border:1px solid #dfe3ea;border-radius:6px;margin:8px 0 14px;
padding:8px;display:inline-block;max-width:100%}figure img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#4b5563;margin-top:4px}.note{color:#6b7280;font-size:13px}
.err{color:#b3261e;font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap}
"""


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return esc(v)


def _verdict_class(verdict: str) -> str:
    return {"negative transfer": "neg", "positive transfer": "pos"}.get(verdict, "inc")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(v: Any, digits: int = 1, cls: str = "") -> str:
    numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
    classes = " ".join(c for c in (("num" if numeric else ""), cls) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{_fmt(v, digits) if numeric or v is None else esc(v)}</td>"


def _ntg_section(rows: list[NTGRow]) -> str:
    if not rows:
        return ("<p class='note'>No method run is paired with a finished target-only twin "
                "yet, so there is no NTG to show (run with <code>ntg: true</code>).</p>")
    out = []
    by_exp: dict[str, list[NTGRow]] = defaultdict(list)
    for r in rows:
        by_exp[r.experiment].append(r)
    headers = ["transfer", "ε", "L%", "method", "seeds", "acc (A)", "twin", "acc (A_T)",
               "NTG = A_T − A", "95% CI", "verdict"]
    for exp, items in by_exp.items():
        body = []
        for r in items:
            res = r.result
            mean, low, high = res.interval
            ci = "—" if math.isnan(low) else f"[{low:+.1f}, {high:+.1f}]"
            verdict = res.verdict + (" (collapsed)" if any(res.collapsed) else "")
            body.append([
                _td(r.pair), _td(r.eps), _td(r.labeled, 0), _td(res.method),
                _td(len(res.seeds)), _td(res.mean_accuracy), _td(res.twin),
                _td(res.mean_twin_accuracy), f"<td class='num'>{mean:+.1f}</td>",
                f"<td class='num'>{esc(ci)}</td>",
                f"<td class='{_verdict_class(res.verdict)}'>{esc(verdict)}</td>",
            ])
        out.append(f"<h3>experiment {esc(exp)}</h3>" + _table(headers, body, "ntg"))
    return "".join(out)


def _heat_colour(v: float, scale: float) -> str:
    t = min(1.0, abs(v) / scale) if scale > 0 else 0.0
    if v > 0:  # negative transfer: red
        r, g, b = 255, round(255 - 140 * t), round(255 - 150 * t)
    else:
        r, g, b = round(255 - 150 * t), round(255 - 90 * t), 255
    return f"rgb({r},{g},{b})"


def _heatmap_section(rows: list[NTGRow]) -> str:
    panels: dict[tuple[str, str, str], list[NTGRow]] = defaultdict(list)
    for r in rows:
        panels[(r.experiment, r.pair, r.result.method)].append(r)
    if not panels:
        return "<p class='note'>No NTG yet.</p>"
    out = []
    for (exp, pair, method), items in panels.items():
        eps = sorted({r.eps for r in items}, key=lambda e: [float(x) for x in e.split(" / ")])
        ls = sorted({r.labeled for r in items})
        cell = {(r.eps, r.labeled): r.result for r in items}
        scale = max((abs(c.ntg) for c in cell.values()), default=1.0) or 1.0
        body = []
        for e in eps:
            tds = [f"<th>{esc(e)}</th>"]
            for L in ls:
                res = cell.get((e, L))
                if res is None:
                    tds.append("<td class='num'>·</td>")
                else:
                    tip = esc(f"{res.method}: acc {res.mean_accuracy:.1f}, twin "
                              f"{res.mean_twin_accuracy:.1f}, {len(res.seeds)} seed(s), "
                              f"{res.verdict}")
                    tds.append(f"<td class='num' style='background:{_heat_colour(res.ntg, scale)}'"
                               f" title='{tip}'>{res.ntg:+.1f}</td>")
            body.append(tds)
        headers = ["ε \\ L%"] + [f"{L:g}" for L in ls]
        out.append(f"<figure><figcaption>NTG of <b>{esc(method)}</b>, {esc(pair)} "
                   f"(experiment {esc(exp)}); red = negative transfer</figcaption>"
                   f"{_table(headers, body, 'heat')}</figure> ")
    return "".join(out)


def _curve_label(r: Any) -> str:
    t = r.config.get("task", {})
    if "source" not in t:
        return f"{r.label} (target only)"
    eps = (f"ε {t.get('eps_x'):g}" if t.get("eps_x") == t.get("eps_y")
           else f"ε {t.get('eps_x'):g}/{t.get('eps_y'):g}")
    return f"{r.label} ({t['source']}, {eps})"


def _curves_section(records: list[Any]) -> str:
    """One figure per target, L% and seed: every source, ε and method on it, and the twin."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in records:
        if r.status != "finished" or not (r.metrics or {}).get("history"):
            continue
        t = r.config.get("task", {})
        scen = f"target {t.get('target')}, L {t.get('labeled_percent')}%, seed {t.get('seed')}"
        groups[(r.experiment, scen)].append(r)
    if not groups:
        return ("<p class='note'>No run recorded a training history (runs recorded before "
                "the history was stored have none).</p>")
    out = []
    for i, ((exp, scen), runs) in enumerate(sorted(groups.items())):
        if i >= MAX_CURVES:
            out.append(f"<p class='note'>{len(groups) - MAX_CURVES} more scenarios not "
                       "drawn.</p>")
            break
        uri = curves_figure(sorted(runs, key=_curve_label), "")
        if uri:
            out.append(f"<figure><img alt='training curves' src='{uri}'><figcaption>"
                       f"{esc(exp)}: {esc(scen)}</figcaption></figure> ")
    return "".join(out)


def _harmful_section(records: list[Any]) -> str:
    gated = [r for r in records if r.status == "finished"
             and isinstance(((r.metrics or {}).get("extra") or {}).get("harmful"), dict)]
    if not gated:
        return ("<p class='note'>No gated run on a perturbed source (harmful-sample scores "
                "come from methods with <code>gate: true</code>).</p>")
    headers = ["experiment", "method", "transfer", "ε", "L%", "seed", "AUROC wrong labels",
               "AUROC corrupted images", "AUROC either", "small-loss AUROC",
               "precision at rate"]
    body = []
    for r in gated:
        h, t = r.metrics["extra"]["harmful"], r.config["task"]
        body.append([_td(r.experiment), _td(r.label), _td(f"{t['source']} → {t['target']}"),
                     _td(f"{t['eps_x']:g} / {t['eps_y']:g}"), _td(t["labeled_percent"], 0),
                     _td(t["seed"]), _td(h.get("label_auroc"), 3),
                     _td(h.get("image_auroc"), 3), _td(h.get("any_auroc"), 3),
                     _td(h.get("small_loss_label_auroc"), 3),
                     _td(h.get("label_precision_at_rate"), 3)])
    out = [_table(headers, body)]
    drawn = 0
    cache: dict[str, str] = {}
    for r in gated:
        items = r.metrics["extra"]["harmful"].get("most_harmful")
        if not items or drawn >= MAX_GRIDS:
            continue
        t = r.config["task"]
        cap = (f"{r.experiment}: {r.label}, {t['source']} → {t['target']}, ε "
               f"{t['eps_x']:g}/{t['eps_y']:g}, L {t['labeled_percent']:g}%, seed {t['seed']}: "
               f"the {len(items)} lowest-weight source samples (observed → clean label; red: "
               "the label is wrong)")
        try:
            uri = cache.get(r.key) or harmful_figure(r, items)
        except Exception as exc:  # missing data on this machine: say so, keep the report
            out.append(f"<p class='note'>{esc(cap)}: source images not available here "
                       f"({esc(type(exc).__name__)}: {esc(exc)}).</p>")
            continue
        cache[r.key] = uri
        drawn += 1
        out.append(f"<figure><img alt='harmful samples' src='{uri}'><figcaption>{esc(cap)}"
                   "</figcaption></figure>")
    return "".join(out)


def _files_section(root: Path) -> str:
    if not root.is_dir():
        return ""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_TYPES and p.is_file())
    if not files:
        return "<p class='note'>No plot files under the runs directory.</p>"
    out = []
    for p in files[:MAX_FILES]:
        uri = _file_uri(p)
        name = esc(p.relative_to(root))
        if uri is None:
            out.append(f"<p class='note'>{name}: larger than {MAX_FILE_BYTES >> 20} MiB, "
                       "not embedded.</p>")
        else:
            out.append(f"<figure><img alt='{name}' src='{uri}'><figcaption>{name}"
                       "</figcaption></figure> ")
    if len(files) > MAX_FILES:
        out.append(f"<p class='note'>{len(files) - MAX_FILES} more image files not "
                   "embedded.</p>")
    return "".join(out)


def _kept(choice: dict[str, Any]) -> str:
    if choice["choice"] == "blend":
        return f"blend w = {choice['weight']:g}"
    return {"method": "method", "twin": "twin"}.get(choice["choice"], str(choice["choice"]))


def _safe_section(rows: Sequence[SafeRow]) -> str:
    if not rows:
        return ("<p class='note'>No safe-mode decision recorded (run with <code>--safe</code>, "
                "or <code>safe: true</code> on a method of an NTG experiment or sweep).</p>")
    headers = ["experiment", "transfer", "ε", "L%", "safe mode of", "seed", "kept",
               "acc (kept)", "acc (A)", "acc (A_T)", "validation n", "why"]
    body = []
    for r in rows:
        for d in r.decisions:
            c = d["choice"]
            cls = "inc" if c["choice"] == "twin" else "pos"
            body.append([
                _td(r.experiment), _td(r.pair), _td(r.eps), _td(r.labeled, 0),
                _td(d.get("method")), _td(d.get("seed")),
                f"<td class='{cls}'>{esc(_kept(c))}</td>", _td(d.get("test_accuracy")),
                _td(d.get("method_test_accuracy")), _td(d.get("twin_test_accuracy")),
                _td(c.get("n_val")), _td(c.get("reason")),
            ])
    return ("<p class='note'>Safe mode keeps the method, its target-only twin or a blend of "
            "their probabilities (w × method + (1 − w) × twin) only when the labeled target's "
            "validation split shows it better than the twin (one-sided McNemar, "
            "Holm-corrected); the test split is read after the choice.</p>"
            + _table(headers, body, "safe"))


def _runs_section(records: list[Any]) -> str:
    headers = ["experiment", "method", "transfer", "ε_x", "ε_y", "L%", "seed", "status",
               "test acc", "last-iterate acc", "seconds", "error"]
    body = []
    for r in sorted(records, key=lambda r: (r.experiment, r.started_at)):
        t, m = r.config.get("task", {}), r.metrics or {}
        src = t.get("source", "(target only)")
        body.append([
            _td(r.experiment), _td(r.label), _td(f"{src} → {t.get('target')}"),
            _td(t.get("eps_x")), _td(t.get("eps_y")), _td(t.get("labeled_percent")),
            _td(t.get("seed")), _td(r.status), _td(m.get("test_accuracy")),
            _td(m.get("test_accuracy_last")), _td(r.seconds),
            f"<td class='err'>{esc(r.error or '')}</td>",
        ])
    return _table(headers, body, "runs")


def render_report(records: list[Any], title: str, root: Path | None = None,
                  twin_key: Callable[[dict[str, Any]], str | None] = lambda c: None,
                  safe: Sequence[SafeRow] = ()) -> str:
    """The page for ``records`` (run-store records) and the image files under ``root``, as one
    HTML string; ``twin_key`` pairs runs with their twins (see :func:`ntg_rows`); ``safe``:
    safe mode's rows (shown with the NTG rows and in a section of their own)."""
    status = defaultdict(int)
    for r in records:
        status[r.status] += 1
    rows = sorted([*ntg_rows(records, twin_key), *safe], key=_sort_key)
    cards = "".join(f"<div class='card'><b>{n}</b>{esc(label)}</div>" for label, n in (
        ("runs", len(records)), ("finished", status["finished"]), ("failed", status["failed"]),
        ("running or killed", status["running"]), ("NTG rows", len(rows)),
        ("experiments", len({r.experiment for r in records}))))
    sections = [
        ("summary", "Summary", f"<div class='cards'>{cards}</div>"),
        ("ntg", "Negative transfer gap",
         "<p class='note'>NTG = acc(A_T) − acc(A) in accuracy points, over the seeds each "
         "method and its target-only twin share; positive = negative transfer. The verdict "
         "needs the whole 95% interval on one side of 0.</p>" + _ntg_section(rows)),
        ("heatmaps", "NTG over ε and L%", _heatmap_section(rows)),
        ("safe", "Safe mode", _safe_section(safe)),
        ("curves", "Training curves", _curves_section(records)),
        ("harmful", "Harmful source samples", _harmful_section(records)),
        ("plots", "Plots in the runs directory", _files_section(root) if root else ""),
        ("runs", "All runs", _runs_section(records)),
    ]
    nav = " · ".join(f"<a href='#{sid}'>{esc(name)}</a>" for sid, name, _ in sections)
    body = "".join(f"<section id='{sid}'><h2>{esc(name)}</h2>{content}</section>"
                   for sid, name, content in sections)
    from .._version import __version__

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>transferguard {esc(__version__)} · generated "
        f"{esc(stamp)} · {nav}</p></header><main>{body}</main></body></html>\n"
    )


__all__ = ["NTGRow", "SafeRow", "esc", "ntg_rows", "render_report"]
