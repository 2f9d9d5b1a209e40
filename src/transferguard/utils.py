"""Small helpers used by every layer: cache location, atomic writes, seeding, devices."""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


def cache_dir() -> Path:
    """Where generated domains and decoded image folders are cached.

    ``$TRANSFERGUARD_CACHE`` wins, then ``$XDG_CACHE_HOME/transferguard``, then
    ``~/.cache/transferguard``. Deleting it is always safe: everything in it is rebuilt.
    """
    env = os.environ.get("TRANSFERGUARD_CACHE")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "transferguard"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it into place.

    A crash half-way leaves the old file (or nothing) instead of a truncated one, because
    ``os.replace`` is atomic on POSIX and Windows when both names are on one file system. A
    hard kill can leave the temporary file (``.NAME.PID.XXXX.tmp``): its name carries the
    writer's pid, so :func:`clean_stale_tmp` removes it once that process is gone. The file
    gets the permissions a plain ``open`` would (0666 less the umask), like ``runs.sqlite``,
    not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with contextlib.suppress(AttributeError, NotImplementedError):  # no fchmod: Windows
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def clean_stale_tmp(folder: str | os.PathLike[str], older_than: float = 3600.0) -> int:
    """Delete temporary files of :func:`atomic_write` under ``folder`` whose writer is dead
    (or, without a pid in the name, older than ``older_than`` seconds); return how many."""
    import time

    removed = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    for f in root.rglob(".*.tmp"):
        parts = f.name[:-4].rsplit(".", 2)
        pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        if pid is not None:
            stale = pid != os.getpid() and not _pid_alive(pid)
        else:
            stale = time.time() - f.stat().st_mtime > older_than
        if stale and f.is_file():
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def atomic_save(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> None:
    """Call ``writer(fh)`` on a temporary file and rename it to ``path`` when it succeeded."""
    with atomic_write(path, "wb") as fh:
        writer(fh)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so one seed gives one result."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts (independent of PYTHONHASHSEED)."""
    import hashlib

    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
                 markdown: bool = False) -> str:
    """Align columns; numbers right-aligned. ``markdown=True`` gives a GitHub table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(_is_num(r[i]) or r[i] in ("", None) for r in rows)
               and any(_is_num(r[i]) for r in rows) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in
                 enumerate(zip(r, widths))]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    out = [line(cells[0])]
    if markdown:
        out.append("|" + "|".join(("-" * (w + 1) + ":") if numeric[i] else "-" * (w + 2)
                                  for i, w in enumerate(widths)) + "|")
    else:
        out.append("  ".join("-" * w for w in widths))
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        text = f"{v:.1f}"
        return "0.0" if text == "-0.0" else text  # no signed zero in tables
    return "" if v is None else str(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_seeds(seeds: Any) -> list[int]:
    """Seeds as distinct integers, at least one (ValueError otherwise).

    A repeated seed repeats a run, which makes a confidence interval over seeds falsely narrow.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must list at least one seed.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat ({seeds}); a repeated seed repeats a run and makes the "
                         "confidence interval falsely narrow. List distinct seeds.")
    return seeds
