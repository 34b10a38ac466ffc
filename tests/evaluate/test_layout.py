"""The layout of instdecay.evaluate holds: the statistics import nothing but numpy/scipy, and the submission path
reads in one direction (files -> checks -> assemble, driven by load)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EVALUATE = Path(__file__).resolve().parents[2] / "evaluate"


def _imports(path: Path) -> set[str]:
    """Absolute names of the instdecay modules ``path`` imports (relative imports resolved)."""
    package = ["instdecay", *path.relative_to(EVALUATE.parent).with_suffix("").parts[:-1]]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            out.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("instdecay"):
            out.add(node.module)
    return out


def test_statistics_import_only_themselves():
    for path in (EVALUATE / "stats").glob("*.py"):
        outside = {m for m in _imports(path) if not m.startswith("instdecay.evaluate.stats")}
        assert not outside, f"{path.name} imports {outside}"


@pytest.mark.parametrize("module, forbidden", [
    ("problems", {"files", "checks", "assemble", "load"}),
    ("files", {"checks", "assemble", "load"}),
    ("checks", {"files", "assemble", "load"}),
    ("assemble", {"files", "load"}),
])
def test_submission_path_reads_in_one_direction(module, forbidden):
    imported = {m.rsplit(".", 1)[-1] for m in _imports(EVALUATE / "submissions" / f"{module}.py")
                if m.startswith("instdecay.evaluate.submissions.")}
    assert not imported & forbidden, f"submissions/{module}.py imports {imported & forbidden}"


def test_submissions_never_import_the_reports():
    for path in (EVALUATE / "submissions").glob("*.py"):
        assert not any(m.startswith("instdecay.evaluate.reports") for m in _imports(path)), path.name


def test_statistics_run_without_pandas_pyarrow_yaml_matplotlib_or_loaders():
    code = """
import importlib.abc, sys
BLOCKED = ("pandas", "pyarrow", "yaml", "matplotlib", "instdecay.loaders", "datasets", "huggingface_hub")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(BLOCKED):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import numpy as np
from instdecay.evaluate import (bh_decay_bound, decay_bounds, decompose, ensemble_by_pretrain, momentum,
                                paired_bootstrap, seed_disagreement, simulate)
sim = simulate(200, sizes=("a", "b", "c"), n_pretrain=4, n_finetune=2, seed=0)
a, b, c = (sim.scores[k] for k in "abc")
decay_bounds(a, c, n_boot=20); decompose(a); momentum(a, b, c, noise_correction=True); paired_bootstrap(a, c)
seed_disagreement(a); bh_decay_bound(a[:, :, 0], c[:, :, 0])
ensemble_by_pretrain(np.full((3, 2, 2, 2), 0.5), [0, 1, 0])
print("ok", sorted(m for m in sys.modules if m.startswith(("pandas", "pyarrow", "yaml", "matplotlib"))))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok []"
