#!/usr/bin/env python
"""Helpers of ``tools/gpu_check.sh`` (one subcommand per job; each exits non-zero on failure).

Usage::

    python tools/gpu_check.py run --stats S.json tools/bench_train.py ARGS...      # + wall time, memory peaks
    python tools/gpu_check.py methods neuralannot neuralannot_fit smplify          # the ones bench_annot knows
    python tools/gpu_check.py versions                                             # packages, GPU
    python tools/gpu_check.py render --frames 20 --body-model FILE                 # offscreen GL frames/s
    python tools/gpu_check.py synth --json F.json BENCH_ANNOT_ARGS...              # the bench's synthetic split
    python tools/gpu_check.py collect --work DIR --out DIR                         # gpu_check.{json,md}

``run`` executes a Python script in this process (``runpy``), so the peaks it writes are the script's own:
``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` (MiB) when CUDA was used, and the maximum
resident set size. ``collect`` reads what the parts left in the work folder (``status.tsv``, ``*.stats.json``,
the benchmarks' JSON files and ``*.smi`` samples of nvidia-smi) and writes one JSON and one Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import sys
import time
from pathlib import Path
from typing import Any

MIB = 2 ** 20
#: modules of the wheelhouse (tools/gpu_wheels.txt) and of the machine that the check imports
MODULES = ("torch", "pytorch_lightning", "torchmetrics", "cv2", "numpy", "scipy", "yaml", "matplotlib", "tqdm", "smplx",
           "omegaconf", "albumentations", "pycocotools", "roma", "trimesh", "pyrender", "OpenGL", "pybvh", "pydantic")


# --------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    script, argv = args.script, list(args.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    sys.argv = [script, *argv]
    sys.path.insert(0, str(Path(script).resolve().parent))
    start, code = time.perf_counter(), 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    except BaseException as ex:  # noqa: BLE001 - reported, then the exit status says it failed
        import traceback

        traceback.print_exc()
        print(f"error: {script} raised {type(ex).__name__}: {ex}", file=sys.stderr)
        code = 1
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    stats: dict[str, Any] = {"exit": code, "wall_s": time.perf_counter() - start, "max_rss_mib": own.ru_maxrss / 1024,
                             "cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        stats["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
        stats["cuda_peak_reserved_mib"] = torch.cuda.max_memory_reserved() / MIB
    Path(args.stats).write_text(json.dumps(stats, indent=1))
    return code


# --------------------------------------------------------------------------- methods
def cmd_methods(args: argparse.Namespace) -> int:
    """Print the requested methods that this checkout's bench_annot knows; one line per unknown one."""
    from annot.benchmarks.quality import LABELS

    known = [m for m in args.methods if m in LABELS]
    for m in args.methods:
        if m not in LABELS:
            print(f"gpu-check: method {m!r} is not in this checkout's bench_annot (known: {', '.join(LABELS)}); "
                  "its row is skipped", file=sys.stderr)
    print(" ".join(known))
    return 0 if known else 1


# --------------------------------------------------------------------------- versions
def cmd_versions(args: argparse.Namespace) -> int:
    import importlib
    import platform

    print(f"python {platform.python_version()} ({sys.executable})")
    missing = []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
            where = Path(getattr(mod, "__file__", "") or "?").parent
            print(f"  {name:18s} {getattr(mod, '__version__', '?'):14s} {where}")
        except Exception as err:  # noqa: BLE001 - any import failure is the finding
            missing.append(name)
            print(f"  {name:18s} MISSING ({type(err).__name__}: {err})")
    import torch

    print(f"torch cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}, "
          f"available {torch.cuda.is_available()}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        print(f"GPU: {p.name}, {p.total_memory / 2 ** 30:.0f} GiB, {p.multi_processor_count} SMs, "
              f"bf16 {torch.cuda.is_bf16_supported()}")
    print(f"PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')}")
    if missing:
        print(f"error: missing modules: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0


# --------------------------------------------------------------------------- render
def cmd_render(args: argparse.Namespace) -> int:
    """Offscreen renders of the free body model (PYOPENGL_PLATFORM decides EGL / OSMesa): frames/s."""
    import numpy as np
    import torch

    from annot.body_models import BodyModel
    from annot.render import MeshRenderer

    body = BodyModel("free", path=args.body_model) if args.body_model else BodyModel("free")
    with torch.no_grad():
        verts = body(torch.zeros(1, 3), torch.zeros(1, 69), torch.zeros(1, 10),
                     torch.tensor([[0.0, 0.0, 3.0]])).vertices_m[0].numpy()
    hw = (args.size, args.size)
    with MeshRenderer() as renderer:
        rgb, _, mask = renderer.render(verts, body.faces, (args.size, args.size), (args.size / 2, args.size / 2), hw)
        start = time.perf_counter()
        for _ in range(args.frames):
            renderer.render(verts, body.faces, (args.size, args.size), (args.size / 2, args.size / 2), hw)
        seconds = time.perf_counter() - start
    covered = float(np.mean(mask))
    print(f"render: PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')}, {verts.shape[0]} vertices, "
          f"{args.size}x{args.size}: {args.frames / seconds:.1f} frames/s, person covers {100 * covered:.0f} %")
    Path(args.json).write_text(json.dumps({"frames_per_s": args.frames / seconds, "frames": args.frames,
                                           "coverage": covered, "platform": os.environ.get("PYOPENGL_PLATFORM")}))
    if not 0.01 < covered < 0.99:
        print("error: the render is empty or full: the GL context does not draw", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- synth
def cmd_synth(argv: list[str]) -> int:
    """``synth --json FILE BENCH_ANNOT_ARGS...``: generate the bench's synthetic split as
    ``tools/bench_annot.py BENCH_ANNOT_ARGS`` would (same generator values, so the bench then finds it),
    timed on its own: images/s of the EGL / OSMesa generator."""
    import importlib.util

    if argv[:1] != ["--json"] or len(argv) < 2:
        print("usage: gpu_check.py synth --json FILE BENCH_ANNOT_ARGS...", file=sys.stderr)
        return 2
    json_path, argv = Path(argv[1]), argv[2:]

    from annot.benchmarks.quality import BenchConfig, ensure_split

    spec = importlib.util.spec_from_file_location("bench_annot_cli", Path(__file__).with_name("bench_annot.py"))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    a = cli._parser().parse_args(argv)
    fields = {k: getattr(a, k) for k in ("size", "mocap_size", "cmu_root", "photos_dir", "cmu_frames", "cmu_fit_iters",
                                         "clean_2d")
              if hasattr(a, k)}
    if str(fields.get("photos_dir")).lower() == "none":
        fields["photos_dir"] = None
    seed = int(a.seeds[0])  # the bench generates each seed's split under <out>/seed<k>
    fields.update(seed=seed, out=str(Path(a.out) / f"seed{seed}"))
    cfg = BenchConfig(image_hw=tuple(a.image_hw), **fields)
    start = time.perf_counter()
    root = ensure_split(cfg)
    seconds = time.perf_counter() - start
    images = cfg.size + cfg.mocap_size
    print(f"synthetic: {images} images ({cfg.size} itw + {cfg.mocap_size} mocap, {cfg.image_hw[1]}x{cfg.image_hw[0]}) "
          f"in {seconds:.1f} s = {images / seconds:.1f} images/s (CMU retargeting included) -> {root}")
    json_path.write_text(json.dumps({"images": images, "seconds": seconds, "images_per_s": images / seconds,
                                     "platform": os.environ.get("PYOPENGL_PLATFORM")}))
    return 0


# --------------------------------------------------------------------------- collect
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _smi_peak(path: Path) -> float | None:
    """Largest memory.used (MiB) among nvidia-smi samples (one number per line)."""
    try:
        values = [float(v) for v in path.read_text().split() if v.replace(".", "", 1).isdigit()]
    except OSError:
        return None
    return max(values) if values else None


def _throughput_rows(name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in data.get("results", []):
        s = r["settings"]
        rows.append({"part": name, "task": r["task"], "precision": s["precision"],
                     "channels_last": s["channels_last"], "compile": s["compile"], "batch": s["batch_size"],
                     "depth": s.get("depth"),
                     "annotator_samples_per_s": r["annotator_samples_per_s"],
                     "bare_resnet_samples_per_s": r["bare_resnet_samples_per_s"], "ratio": r["ratio"],
                     "goal": 0.6 if r["task"] == "train" else 0.7})
    return rows


def cmd_collect(args: argparse.Namespace) -> int:
    work, out = Path(args.work), Path(args.out)
    parts: list[dict[str, Any]] = []
    status_file = work / "status.tsv"
    lines = status_file.read_text().splitlines() if status_file.is_file() else []
    for line in lines:
        name, status, rc, wall, budget = line.split("\t")[:5]
        part: dict[str, Any] = {"part": name, "status": status, "rc": int(rc), "wall_s": float(wall),
                                "budget_s": int(budget)}
        stats = _read_json(work / f"{name}.stats.json") or {}
        part.update({k: v for k, v in stats.items() if k.endswith("_mib") or k == "cpu_s"})
        smi = _smi_peak(work / f"{name}.smi")
        if smi is not None:
            part["nvidia_smi_peak_mib"] = smi
        parts.append(part)
    throughput, bench, extra = [], {}, {}
    for part in parts:
        name = part["part"]
        data = _read_json(work / f"{name}.json")
        if data is None:
            continue
        if name.startswith(("train", "annotate")):
            throughput += _throughput_rows(name, data)
            best = max((r["annotator_samples_per_s"] for r in _throughput_rows(name, data)), default=None)
            part["samples_per_s"] = best
        elif name.startswith("bench"):
            bench[name] = {"rows": data.get("rows", {}), "num_samples": data.get("num_samples"),
                           "total_s": data.get("total_s"), "config": data.get("config")}
            n = data.get("num_samples") or 0
            part["samples_per_s"] = n / data["total_s"] if data.get("total_s") else None
        else:
            extra[name] = data
            if "frames_per_s" in data:
                part["samples_per_s"] = data["frames_per_s"]
            if "images_per_s" in data:
                part["samples_per_s"] = data["images_per_s"]
    machine = _read_json(work / "machine.json") or {}
    result = {"machine": machine, "parts": parts, "throughput": throughput, "bench_annot": bench, "extra": extra}
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (out / "gpu_check.md").write_text(md)
    print(md)
    return 0


def _f(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# gpu-check ({m.get('mode', '?')}) {m.get('date', '')}", "",
             f"Machine: {m.get('gpu') or 'no GPU'}; {m.get('cpus', '?')} CPUs, load average {m.get('loadavg', '?')}; "
             f"commit {m.get('commit', '?')}.", "",
             "| part | status | wall (s) | budget (s) | CPU (s) | samples/s | CUDA peak alloc (MiB) "
             "| nvidia-smi peak (MiB) | max RSS (MiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for p in result["parts"]:
        lines.append(f"| {p['part']} | {p['status']} | {p['wall_s']:.0f} | {p['budget_s']} | "
                     f"{_f(p.get('cpu_s'), '.0f')} | {_f(p.get('samples_per_s'), '.3g')} | "
                     f"{_f(p.get('cuda_peak_allocated_mib'), '.0f')} | "
                     f"{_f(p.get('nvidia_smi_peak_mib'), '.0f')} | {_f(p.get('max_rss_mib'), '.0f')} |")
    if result["throughput"]:
        lines += ["", "Throughput: annotator / bare ResNet (goals on the GPU, ResNet-50: training >= 0.60, "
                  "annotation >= 0.70).", "",
                  "| task | precision | layout | compile | batch | depth | annotator samples/s | bare samples/s "
                  "| ratio "
                  "| goal |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["throughput"]:
            ok = "met" if r["ratio"] >= r["goal"] else "**missed**"
            lines.append(f"| {r['task']} | {r['precision']} | {'NHWC' if r['channels_last'] else 'NCHW'} | "
                         f"{'on' if r['compile'] else 'off'} | {r['batch']} | {r['depth']} | "
                         f"{r['annotator_samples_per_s']:.1f} | "
                         f"{r['bare_resnet_samples_per_s']:.1f} | {r['ratio']:.3f} | {r['goal']:.2f} {ok} |")
    for name, b in result["bench_annot"].items():
        lines += ["", f"bench-annot ({name}): {b['num_samples']} ITW people, total {_f(b['total_s'], '.0f')} s.", "",
                  "| method | MPJPE (mm) | PA-MPJPE (mm) | MPVPE (mm) | 2D err (px) | s / sample | samples/s |",
                  "|---|---|---|---|---|---|---|"]
        for key, r in b["rows"].items():
            sps = r.get("seconds_per_sample")
            lines.append(f"| {r.get('label', key)} | {_f(r.get('mpjpe_mm'))} | {_f(r.get('pa_mpjpe_mm'))} | "
                         f"{_f(r.get('mpvpe_mm'))} | {_f(r.get('kp2d_err_px'))} | {_f(sps, '.3f')} | "
                         f"{_f(1 / sps if sps else None, '.3g')} |")
    failed = [p["part"] for p in result["parts"] if p["status"] != "ok"]
    lines += ["", f"{len(result['parts']) - len(failed)}/{len(result['parts'])} parts ok"
              + (f"; not ok: {', '.join(failed)}" if failed else "") + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["synth"]:  # bench_annot's own flags follow
        return cmd_synth(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--stats", required=True)
    r.add_argument("script")
    r.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("methods").add_argument("methods", nargs="+")
    sub.add_parser("versions")
    rd = sub.add_parser("render")
    rd.add_argument("--frames", type=int, default=20)
    rd.add_argument("--size", type=int, default=256)
    rd.add_argument("--body-model", default=None)
    rd.add_argument("--json", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--work", required=True)
    c.add_argument("--out", required=True)
    a = p.parse_args(argv)
    return {"run": cmd_run, "methods": cmd_methods, "versions": cmd_versions, "render": cmd_render,
            "collect": cmd_collect}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
