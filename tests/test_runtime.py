"""annot.app.runtime: the one place that sets CPU threads (issue #19). Logic only: the speed is measured by
``tools/bench_threads.py`` (BENCHMARKS.md), never in a timed test.

Each environment case runs in a fresh interpreter, because libgomp reads its variables when torch is
first imported and ``configure_threads`` runs once per process.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from annot.app import runtime

ROOT = Path(__file__).resolve().parent.parent
THREAD_VARS = ("OMP_", "GOMP_", "KMP_", "MKL_", "NEURAL_ANNOT_", "PL_SEED_WORKERS")

PROBE = """
import json, os, sys
from annot.app.runtime import configure_threads, current_settings
first = configure_threads({arg})
import torch, cv2
second = configure_threads()
print(json.dumps({{"torch_threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                  "cv2": cv2.getNumThreads(), "source": first.source, "env_set": first.env_set,
                  "env_effective": first.env_effective, "same": second is first,
                  "reported": first.torch_threads, "wait": os.environ.get("OMP_WAIT_POLICY"),
                  "blocktime": os.environ.get("KMP_BLOCKTIME")}}))
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(THREAD_VARS)}
    clean.update(env)
    clean["PYTHONPATH"] = str(ROOT) + os.pathsep + clean.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def _probe(arg: str = "", **env: str) -> dict:
    proc = _run(PROBE.format(arg=arg), **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_defaults_in_a_clean_process():
    out = _probe()
    assert out["wait"] == "PASSIVE" and out["blocktime"] == "0"
    assert out["env_set"] == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
    assert out["env_effective"] is True
    assert out["source"] == "default"
    plain = _run("import torch; print(torch.get_num_threads())")  # PyTorch's own default, no configure
    assert out["torch_threads"] == out["reported"] == int(plain.stdout.split()[-1])
    assert out["interop"] == 1 and out["cv2"] == 1
    assert out["same"] is True  # idempotent: the second call returns the first call's settings


def test_user_variables_are_respected():
    out = _probe(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    assert out["torch_threads"] == 1 and out["source"] == "OMP_NUM_THREADS"
    assert out["wait"] == "ACTIVE" and out["env_set"] == {}  # nothing of ours overrides the user's policy
    out = _probe(GOMP_SPINCOUNT="1000", NEURAL_ANNOT_NUM_THREADS="1")
    assert out["wait"] is None and out["env_set"] == {}  # a spin count is a wait policy too
    assert out["torch_threads"] == 1 and out["source"] == "NEURAL_ANNOT_NUM_THREADS"


def test_explicit_argument_wins():
    out = _probe(arg="num_threads=1", OMP_NUM_THREADS="2")
    assert out["torch_threads"] == 1 and out["source"] == "argument"


def test_late_call_is_reported():
    code = ("import logging, json; logging.basicConfig()\nimport torch\n"
            "from annot.app.runtime import configure_threads\n"
            "s = configure_threads(); print(json.dumps([s.env_effective, s.env_set]))")
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, {"OMP_WAIT_POLICY": "PASSIVE",
                                                                        "KMP_BLOCKTIME": "0"}]
    assert "after `import torch`" in proc.stderr


def test_bad_thread_counts_raise():
    with pytest.raises(ValueError, match="num_threads"):
        runtime.configure_threads(0)
    proc = _run("from annot.app.runtime import configure_threads; configure_threads()", NEURAL_ANNOT_NUM_THREADS="two")
    assert proc.returncode != 0 and "NEURAL_ANNOT_NUM_THREADS must be a positive integer" in proc.stderr


def test_the_test_suite_is_configured_before_torch():
    settings = runtime.current_settings()
    assert settings is not None, "tests/conftest.py must call configure_threads() first"
    assert settings.env_effective


def _module_level_calls_first(path: Path) -> bool:
    """True when ``configure_threads()`` is called at module level before any import other than
    ``__future__`` and ``annot.app.runtime`` (so before torch can load)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module in ("__future__", "annot.app.runtime"):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # docstring
            continue
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "configure_threads"):
            return True
        return False
    return False


#: helpers that are not entry points of the package: ``wheelhouse_gpu.py`` runs with the system Python before
#: set-up (no torch, no package); ``gpu_check.py`` is the plumbing of ``tools/gpu_check.sh``, whose parts are tools.
NOT_ENTRY_POINTS = ("gpu_check.py", "wheelhouse_gpu.py")
TOOLS = sorted(p for p in (ROOT / "tools").glob("*.py") if p.name not in NOT_ENTRY_POINTS)


@pytest.mark.parametrize("path", TOOLS, ids=lambda p: p.name)
def test_every_tool_configures_threads_before_importing_torch(path):
    assert _module_level_calls_first(path), f"{path.name}: call configure_threads() before other imports"


def test_conftest_configures_threads_first():
    assert _module_level_calls_first(ROOT / "tests" / "conftest.py")


def test_worker_init_fn_sets_worker_threads_and_keeps_lightning_seeding():
    code = """
import json, os
from annot.app.runtime import configure_threads, worker_init_fn
configure_threads()
import numpy as np, torch, cv2
from lightning_fabric.utilities.seed import pl_worker_init_function, seed_everything
from torch.utils.data import DataLoader, Dataset

class Probe(Dataset):
    def __len__(self): return 2
    def __getitem__(self, i):
        return torch.tensor([torch.get_num_threads(), cv2.getNumThreads(), np.random.randint(1 << 30)])

def draws(fn):
    seed_everything(7, workers=True)
    return torch.cat(list(DataLoader(Probe(), batch_size=1, num_workers=2, worker_init_fn=fn))).tolist()

print(json.dumps({"ours": draws(worker_init_fn), "lightning": draws(pl_worker_init_function)}))
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(row[0] == 1 and row[1] == 1 for row in out["ours"])  # 1 torch and 1 OpenCV thread per worker
    assert [r[2] for r in out["ours"]] == [r[2] for r in out["lightning"]]  # same worker seeds as Lightning's

