"""The layering of DESIGN.md: no module imports a layer above its own (lazy imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

import transferguard

ROOT = Path(transferguard.__file__).parent
CORE = {"identity", "registry", "typed", "errors", "utils", "_version"}
#: what each package may import from transferguard (core modules always)
ALLOWED = {
    "data": set(),
    "models": set(),
    "engine": {"data", "models"},
    "methods": {"data", "models", "engine"},
    "analysis": {"data", "models", "engine", "methods"},
    "report": {"data", "models", "engine", "methods", "analysis"},
    "experiments": {"data", "models", "engine", "methods", "analysis", "report"},
    "cli": {"data", "models", "engine", "methods", "analysis", "report", "experiments"},
}


def _imported_packages(path: Path) -> set[str]:
    """Top-level transferguard packages a module imports (absolute or relative)."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-node.level]) if node.level <= len(rel) else []
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts] if node.module else [base + [a.name] for a in node.names]
            elif node.module and node.module.startswith("transferguard"):
                names = [node.module.split(".")[1:]]
            else:
                continue
            out |= {n[0] for n in names if n}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names
                    if a.name.startswith("transferguard.")}
    return out


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if len(parts) == 1:  # top-level modules: core, or the package's public API
            if path.stem in CORE:
                extra = _imported_packages(path) - CORE
                bad += [f"{path.name} imports {p}" for p in extra]
            continue
        layer = parts[0]
        allowed = ALLOWED[layer] | {layer} | CORE
        bad += [f"{'/'.join(parts)} imports {p}" for p in _imported_packages(path) - allowed]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)
