"""A new user's data: image folders, tiny targets, label maps, overlap and polarity checks,
labels, verdict margins (issue 11). Everything on folders of a few dozen generated images."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import transferguard as tg
from transferguard.cli import main
from transferguard.errors import DataError, TransferGuardError

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_digits(root, per_class=6, start=0, size=20, invert=False, names=None, rename=False):
    """``per_class`` mnist digits of each class as ``size``-pixel grey PNGs under root/<class>/
    (class folders named by ``names`` when given; ``rename`` gives other file names)."""
    m = tg.load_domain("mnist")
    count = dict.fromkeys(range(10), 0)
    for i in range(start, len(m)):
        y = int(m.labels[i])
        if count[y] >= per_class:
            continue
        count[y] += 1
        d = root / (names[y] if names else str(y))
        d.mkdir(parents=True, exist_ok=True)
        a = m.images[i, 0].numpy()
        im = Image.fromarray(255 - a if invert else a)
        if size != 28:
            im = im.resize((size, size), Image.BILINEAR)
        im.save(d / (f"z{10_000 - i}.png" if rename else f"{i:05d}.png"))
        if all(c >= per_class for c in count.values()):
            break
    return root


def build(task):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task.summary()
    return [str(w.message) for w in caught]


# ------------------------------------------------------------------ 1. label map on the CLI
def test_label_map_flag_pairs_and_yaml_file(tmp_path):
    from transferguard.cli._common import parse_label_map

    assert parse_label_map(["zero=0,one=1", "two=2"]) == {"zero": "0", "one": "1", "two": "2"}
    f = tmp_path / "map.yaml"
    f.write_text('label_map:\n  "zero": "0"\n  "1": "one"\n')
    assert parse_label_map([str(f)]) == {"zero": "0", "1": "one"}
    with pytest.raises(TransferGuardError, match="SRC=TGT"):
        parse_label_map(["zero"])
    with pytest.raises(TransferGuardError, match="twice"):
        parse_label_map(["zero=0", "zero=1"])


def test_label_map_on_the_command_line_and_yaml_in_the_error(tmp_path, capsys):
    target = write_digits(tmp_path / "pen", per_class=4, names=NAMES)
    flags = ["ntg", "--source", "mnist", "--target", f"folder:{target}", "--method",
             "target_only", "--iterations", "2", "--seeds", "0", "--input-size", "16",
             "--batch-size", "8", "--out", str(tmp_path / "out")]
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert "YAML:" in err and "label_map:" in err and "--label-map" in err
    mapping = ",".join(f"{i}={n}" for i, n in enumerate(NAMES))
    assert main([*flags, "--label-map", mapping]) == 0
    assert "NTG" in capsys.readouterr().out


# ------------------------------------------------------------------ 2. domains folder:PATH
def test_domains_describes_a_folder_with_counts_and_grid(tmp_path, capsys):
    target = write_digits(tmp_path / "sheet", per_class=3)
    png = tmp_path / "grid.png"
    assert main(["domains", f"folder:{target}", "--grid", str(png)]) == 0
    out = capsys.readouterr().out
    assert "folder:" in out and "1x20x20" in out and "30" in out
    assert "images per class" in out and out.count("\n9 ") + out.count(" 3\n") >= 1
    assert png.exists() and png.stat().st_size > 0


# ------------------------------------------------------------------ 3. native size, cache bound
def test_folder_defaults_to_native_size_and_channels(tmp_path):
    grey = write_digits(tmp_path / "grey", per_class=2)
    d = tg.load_domain(f"folder:{grey}")
    assert d.shape == (1, 20, 20) and len(d) == 20
    assert tg.load_domain(f"folder:{grey}", size=12).shape == (1, 12, 12)
    assert tg.load_domain(f"folder:{grey}", grey=False).shape == (3, 20, 20)


def test_folder_warns_before_writing_a_large_cache(tmp_path, monkeypatch):
    grey = write_digits(tmp_path / "grey", per_class=2)
    monkeypatch.setenv("TRANSFERGUARD_CACHE_WARN_MB", "0.001")  # about 1 kB
    with pytest.warns(UserWarning, match=r"decodes to .* MB .*smaller size"):
        tg.load_domain(f"folder:{grey}", size=24)


# ------------------------------------------------------------------ 4. tiny targets
def test_tiny_target_reports_effective_L_and_empty_validation(tmp_path):
    target = write_digits(tmp_path / "tiny", per_class=6)
    task = tg.TransferTask("uci-digits", f"folder:{target}", labeled_percent=1,
                           spec=tg.InputSpec(1, 16))
    notes = build(task)
    assert any("1% of a pool of 30" in n and "33.3% effective" in n for n in notes), notes
    assert any("validation split is empty" in n for n in notes)
    assert "L=1% (effective 33.3%)" in repr(task)
    # the user's choice: an exact count per class, one of two held out for validation
    chosen = tg.TransferTask("uci-digits", f"folder:{target}", labeled_per_class=2,
                             val_fraction=0.5, spec=tg.InputSpec(1, 16))
    notes = build(chosen)
    s = chosen.summary()
    assert s["target_labeled"] == 10 and s["target_val"] == 10 and not any(
        "validation" in n for n in notes)
    assert chosen.config()["labeled_per_class"] == 2
    # knowingly without validation: no warning
    quiet = tg.TransferTask("uci-digits", f"folder:{target}", labeled_per_class=1,
                            val_fraction=0.0, spec=tg.InputSpec(1, 16))
    assert not any("validation" in n for n in build(quiet))


def test_labeled_per_class_is_validated():
    with pytest.raises(DataError, match="labeled_per_class"):
        tg.TaskSpec(labeled_per_class=0)


# ------------------------------------------------------------------ 5. labels
def test_labels_show_non_default_parameters():
    assert tg.create_method("l2sp").label == "l2sp"
    assert tg.create_method("l2sp", alpha=1).label == "l2sp(alpha=1)"
    assert tg.create_method("l2sp", alpha_decay=0.99).label == "l2sp(alpha_decay=0.99)"
    assert tg.create_method("l2sp", alpha=1, dtnh=True).label == "l2sp(alpha=1)+dtnh"
    m = tg.create_method("dann", trade_off=0.5, gate=True)
    assert m.label == "dann(trade_off=0.5)+gate" and m.twin().label == "dann(trade_off=0.5)_T"
    assert tg.create_method("finetune", pretrained="/x/y/src.pt").label == \
        "finetune(pretrained=src.pt)"


# ------------------------------------------------------------------ 7. L2-SP default
def test_l2sp_default_alpha_is_the_measured_one():
    from transferguard.methods.finetuning import l2sp

    m = tg.create_method("l2sp")
    assert m.alpha == 0.1 and m.beta == 0.01
    assert "l2sp_alpha" in (l2sp.__doc__ or "")


# ------------------------------------------------------------------ 8. overlap
def _reencode(images: torch.Tensor) -> torch.Tensor:
    out = []
    for a in images[:, 0].numpy():
        im = Image.fromarray(a).resize((20, 20), Image.BILINEAR)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=75)
        x = np.asarray(Image.open(buf).convert("L"), dtype=np.float32) * 0.8 + 30
        out.append(np.clip(x, 0, 255).astype(np.uint8)[None])
    return torch.from_numpy(np.stack(out))


def test_near_duplicates_find_reencoded_copies_only():
    from transferguard.data.checks import near_duplicates

    m = tg.load_domain("mnist")
    source, copies = m.images[:400], _reencode(m.images[:40])
    found = near_duplicates(source, copies)
    assert found.num_target == 40
    assert (found.source_nearest == torch.arange(40)).float().mean() > 0.9
    other = near_duplicates(tg.load_domain("uci-digits").images[:400], copies)
    assert other.num_target == 0


def test_task_warns_about_and_drops_the_overlap(tmp_path):
    target = write_digits(tmp_path / "sheet", per_class=6)  # copies of mnist digits
    task = tg.TransferTask("mnist", f"folder:{target}", spec=tg.InputSpec(1, 16))
    notes = build(task)
    hit = [n for n in notes if "near-duplicate" in n]
    assert hit and "30 of 30 target test images" in hit[0] and "overlap='drop'" in hit[0]
    assert ".png" in hit[0]  # examples name the files
    dropped = tg.TransferTask("mnist", f"folder:{target}", spec=tg.InputSpec(1, 16),
                              overlap="drop")
    notes = build(dropped)
    assert any("dropped from the source" in n for n in notes)
    assert dropped.summary()["source"] < task.summary()["source"]
    assert dropped.config()["overlap"] == "drop" and "overlap" not in task.config()
    off = tg.TransferTask("mnist", f"folder:{target}", spec=tg.InputSpec(1, 16), overlap="off")
    assert not any("near-duplicate" in n for n in build(off))


# ------------------------------------------------------------------ 9. order, thin margin
def test_folder_task_does_not_depend_on_file_or_folder_names(tmp_path):
    a = write_digits(tmp_path / "a", per_class=5, start=100)
    b = write_digits(tmp_path / "b", per_class=5, start=100, names=NAMES, rename=True)
    common = {"eps": 0.3, "spec": tg.InputSpec(1, 16), "overlap": "off", "labeled_per_class": 3,
              "val_fraction": 0.4}
    ta = tg.TransferTask(f"folder:{a}", "uci-digits", **common)
    tb = tg.TransferTask(f"folder:{b}", "uci-digits",
                         label_map={n: str(i) for i, n in enumerate(NAMES)}, **common)
    sa, sb = ta.train_data().source, tb.train_data().source
    assert torch.equal(sa.images, sb.images) and torch.equal(sa.labels, sb.labels)
    # as a target, the class names are the label space; other file names change nothing
    c = write_digits(tmp_path / "c", per_class=5, start=100, rename=True)
    ua = tg.TransferTask("uci-digits", f"folder:{a}", **common)
    ub = tg.TransferTask("uci-digits", f"folder:{c}", **common)
    assert torch.equal(ua.test_split().images, ub.test_split().images)
    assert torch.equal(ua.train_data().target_labeled.images,
                       ub.train_data().target_labeled.images)


def test_thin_margin_verdicts_are_flagged():
    # gaps 2, 3, 4: the 95% interval [+0.5, +5.5] barely excludes 0 -> thin; 5, 5.5, 6 not
    thin = tg.NTGResult("a", "a_T", [0, 1, 2], [80.0, 80.0, 80.0], [82.0, 83.0, 84.0])
    assert thin.thin_margin and any("thin margin" in w and "more seeds" in w
                                    for w in thin.warnings)
    clear = tg.NTGResult("a", "a_T", [0, 1, 2], [80.0, 80.0, 80.0], [85.0, 85.5, 86.0])
    assert not clear.thin_margin and not any("thin" in w for w in clear.warnings)
    from transferguard.report.tables import ntg_table

    assert "(thin margin)" in ntg_table([thin])


# ------------------------------------------------------------------ 10. small ones
def test_labeled_fraction_looking_value_warns():
    with pytest.warns(UserWarning, match="pass 10"):
        tg.TaskSpec(labeled_percent=0.1)


def test_no_negative_zero_in_intervals():
    from transferguard.report.tables import interval_text, ntg_cell, signed

    assert signed(-0.04) == "+0.0" and signed(-0.06) == "-0.1"
    r = tg.NTGResult("a", "a_T", [0, 1], [80.0, 80.02], [79.98, 79.96])
    assert "-0.0" not in interval_text(r) and "-0.0" not in ntg_cell(r)
    from transferguard.utils import format_table

    assert "-0.0" not in format_table([[-0.01]], ["x"])


def test_inverted_polarity_gets_a_hint_and_invert_fixes_it(tmp_path):
    target = write_digits(tmp_path / "pen", per_class=3, invert=True)
    task = tg.TransferTask("mnist", f"folder:{target}", spec=tg.InputSpec(1, 16),
                           overlap="off")
    assert any("mean intensity" in n and "invert" in n for n in build(task))
    fixed = tg.TransferTask("mnist", f"folder:{target}", spec=tg.InputSpec(1, 16),
                            overlap="off", target_options={"invert": True})
    assert not any("mean intensity" in n for n in build(fixed))
