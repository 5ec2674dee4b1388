"""Step rate of an annotate-like training loop alone and beside identical copies (issue #19).

``tools/bench_threads.py`` is the command line; this module holds the measurement. It is how the
"threads on a shared machine" numbers of ``BENCHMARKS.md`` are made.

What one *job* is: a fresh Python process (so that the OpenMP environment variables of the setting are
in place before ``torch`` loads ``libgomp``) that builds the stage-(b) annotator of
``make annotate-body`` (:class:`annot.annotator.module.AnnotatorModule`, in-the-wild mode, VPoser prior with random
weights, ResNet-``depth`` backbone, the free body model, 256x192 crops, batch 12), runs ``warmup``
untimed training steps (forward, 2D L1 + L2 losses, backward, Adam), reports *ready*, waits for the
parent's *go*, then runs training steps for ``seconds`` of wall time and reports
``steps / time to the end of the last step`` (steps/s). Inputs are synthetic and already in memory (the
data loader is not measured: stage (b) of ``body_free.yaml`` loads in-process, ``num_workers=0``).

What one *measurement* is: ``copies`` jobs with the same setting started together (the parent releases
them at the same instant after all warmed up, so their timed windows overlap completely); the rate of
each job is recorded. ``copies=1`` is "alone"; ``copies=2`` is "beside one identical job". Alone and
beside runs of every setting are interleaved (A-B-A-B) over ``repeats`` rounds, and ``/proc/loadavg``
is recorded before and after each, so a change in background load shows up rather than hiding in a
mean.

A setting is a name and an environment: ``before`` is the old behaviour (no thread configuration at all:
PyTorch's defaults, ``libgomp``'s default wait policy); ``after`` calls
:func:`annot.app.runtime.configure_threads` first, as every entry point now does; the others are explicit
variants (threads, ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``) run *without* ``configure_threads`` so
that each shows the effect of one knob. Settings are given as ``name:VAR=value,VAR=value``; the
pseudo-variables ``TORCH_THREADS`` / ``INTEROP_THREADS`` call ``torch.set_num_threads`` /
``torch.set_num_interop_threads`` after import, and ``CONFIGURE=1`` calls ``configure_threads``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Setting", "parse_setting", "DEFAULT_SETTINGS", "run_group", "run_bench", "format_table",
           "child_main", "loadavg"]

#: Settings measured by default: the old behaviour and the new default, plus the single-knob variants.
DEFAULT_SETTINGS = (
    "before:",
    "after:CONFIGURE=1",
)


@dataclass(frozen=True)
class Setting:
    """One thread setting: a ``name`` and the environment variables its jobs start with.

    ``env`` may hold real variables (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``OMP_NUM_THREADS``...)
    and the pseudo-variables ``TORCH_THREADS``, ``INTEROP_THREADS``, ``CONFIGURE`` (module docstring).
    """

    name: str
    env: dict[str, str] = field(default_factory=dict)


def parse_setting(text: str) -> Setting:
    """Parse ``name:VAR=value,VAR=value`` (``name:`` alone = no variables) into a :class:`Setting`.

    Raises:
        ValueError: no ``:`` after the name, an empty name, or an item without ``=``.
    """
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"a setting is 'name:VAR=value,...' (or 'name:'), got {text!r}")
    env: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"setting {name!r}: {item!r} is not VAR=value")
        env[key.strip()] = value.strip()
    return Setting(name.strip(), env)


def loadavg() -> str:
    """The first three fields of ``/proc/loadavg`` (1, 5, 15 min run-queue averages), or ``"n/a"``."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- one job (child process)
_PSEUDO = ("TORCH_THREADS", "INTEROP_THREADS", "CONFIGURE")


def child_main(argv: list[str]) -> int:
    """Entry of one job: ``--depth D --batch B --warmup W --seconds S`` (module docstring for the protocol).

    Prints ``ready`` after warm-up, waits for one line on stdin, then prints one JSON line with
    ``steps``, ``elapsed_s``, ``rate`` (steps/s), ``torch_threads``, ``interop_threads``, ``pid``.
    """
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args(argv)
    if os.environ.get("CONFIGURE") == "1":
        from annot.app.runtime import configure_threads
        configure_threads()
    import tempfile

    import torch

    if os.environ.get("TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["TORCH_THREADS"]))
    if os.environ.get("INTEROP_THREADS"):
        torch.set_num_interop_threads(int(os.environ["INTEROP_THREADS"]))
    from annot.benchmarks.throughput import BenchSettings, build_annotator, make_random_vposer, synthetic_batch

    torch.manual_seed(0)
    settings = BenchSettings(batch_size=args.batch, depth=args.depth)
    with tempfile.TemporaryDirectory() as tmp:
        module = build_annotator(settings, make_random_vposer(tmp), None).train()
    opt = torch.optim.Adam([p for p in module.net.parameters() if p.requires_grad], lr=1e-4)
    batch = synthetic_batch(settings.batch_size, settings.input_hw)

    def step() -> None:
        loss = module._losses(module.predict_batch(batch), batch)["total"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    steps, last = 0, start
    while last - start < args.seconds:
        step()
        steps += 1
        last = time.perf_counter()
    print(json.dumps({"steps": steps, "elapsed_s": last - start, "rate": steps / (last - start),
                      "torch_threads": torch.get_num_threads(),
                      "interop_threads": torch.get_num_interop_threads(), "pid": os.getpid()}), flush=True)
    return 0


# --------------------------------------------------------------------------- one measurement
def _job_env(setting: Setting) -> dict[str, str]:
    """The environment of a job: ours minus every thread variable, plus the setting's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "NEURAL_ANNOT_"))
           and k not in _PSEUDO}
    env.update(setting.env)
    root = str(Path(__file__).resolve().parents[2])  # the checkout: <root>/annot/benchmarks/threads.py
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_group(setting: Setting, copies: int, seconds: float, depth: int = 18, batch: int = 12,
              warmup: int = 3, python: str = sys.executable, timeout_s: float = 900.0) -> dict[str, Any]:
    """Start ``copies`` identical jobs, release them together, and collect their step rates.

    Returns ``{"setting", "copies", "rates" (steps/s per job), "threads" (torch, inter-op of job 0),
    "load_before", "load_after"}``.

    Raises:
        RuntimeError: a job exited without reporting (its stderr tail is in the message).
        ValueError: ``copies < 1`` or ``seconds <= 0``.
    """
    if copies < 1 or seconds <= 0:
        raise ValueError(f"copies must be >= 1 and seconds > 0, got {copies}, {seconds}")
    cmd = [python, "-c", "import sys; from annot.benchmarks.threads import child_main; "
           "sys.exit(child_main(sys.argv[1:]))", "--depth", str(depth), "--batch", str(batch),
           "--warmup", str(warmup), "--seconds", str(seconds)]
    env = _job_env(setting)
    load_before = loadavg()
    procs = [subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(copies)]
    try:
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"job of {setting.name!r} failed before warm-up ended: "
                                   f"{line!r} {p.stderr.read()[-2000:]}")
        for p in procs:  # release all jobs at (nearly) the same instant
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=timeout_s)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            if p.returncode != 0 or not lines:
                raise RuntimeError(f"job of {setting.name!r} exited {p.returncode}: {err[-2000:]}")
            results.append(json.loads(lines[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return {"setting": setting.name, "copies": copies, "rates": [r["rate"] for r in results],
            "threads": (results[0]["torch_threads"], results[0]["interop_threads"]),
            "load_before": load_before, "load_after": loadavg()}


def run_bench(settings: list[Setting], copies: list[int], repeats: int, seconds: float, depth: int = 18,
              batch: int = 12, warmup: int = 3, log=print) -> list[dict[str, Any]]:
    """Every (setting, copies) pair ``repeats`` times, interleaved: round r runs all settings and copy
    counts in order (reversed on odd rounds, A-B-B-A), so slow drifts in background load hit all alike.
    Returns the list of :func:`run_group` results in the order run."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    plan = [(s, c) for s in settings for c in copies]
    out = []
    for r in range(repeats):
        for s, c in (plan if r % 2 == 0 else plan[::-1]):
            res = run_group(s, c, seconds, depth, batch, warmup)
            res["repeat"] = r
            log(f"[{r}] {s.name:<14} copies={c} rates={[f'{x:.3f}' for x in res['rates']]} "
                f"threads={res['threads']} load {res['load_before']} -> {res['load_after']}")
            out.append(res)
    return out


def format_table(results: list[dict[str, Any]]) -> str:
    """Markdown table: per setting, median steps/s alone (copies=1) and per job beside copies, the
    ratio beside / alone, each ratio against ``before`` alone, and the load averages seen."""
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault((r["setting"], r["copies"]), []).append(r)
    names = list(dict.fromkeys(r["setting"] for r in results))
    copies = sorted({r["copies"] for r in results})
    ref_runs = by.get(("before", 1))
    ref = statistics.median(x for r in ref_runs for x in r["rates"]) if ref_runs else None
    head = ("| setting | threads (intra, inter) | copies | steps/s per job (median) | runs | x own alone "
            "| x `before` alone | load 1-min (min-max) |")
    rows = [head, "|" + "---|" * 8]
    for name in names:
        alone_runs = by.get((name, 1))
        alone = statistics.median(x for r in alone_runs for x in r["rates"]) if alone_runs else None
        for c in copies:
            runs = by.get((name, c))
            if not runs:
                continue
            rates = [x for r in runs for x in r["rates"]]
            med = statistics.median(rates)
            loads = [float(v.split()[0]) for r in runs for v in (r["load_before"], r["load_after"]) if v != "n/a"]
            load = f"{min(loads):.2f}-{max(loads):.2f}" if loads else "n/a"
            own = f"{med / alone:.2f}" if alone else "-"
            vs_ref = f"{med / ref:.2f}" if ref else "-"
            rows.append(f"| {name} | {runs[0]['threads'][0]}, {runs[0]['threads'][1]} | {c} | {med:.3f} "
                        f"({min(rates):.3f}-{max(rates):.3f}) | {len(rates)} | {own} | {vs_ref} | {load} |")
    return "\n".join(rows)
