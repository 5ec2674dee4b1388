#!/usr/bin/env python
"""``make wheelhouse-gpu``: everything ``tools/gpu_check.sh`` needs on a GPU machine that has no network.

Writes three git-ignored folders that the device tool's ``run`` carries (64 MiB in all, checkout included):

* ``.whl/``: the wheels of ``tools/gpu_wheels.txt`` (pinned, ``--no-deps``) for CPython 3.12 manylinux
  x86-64, the packages the machine lacks. Checked: one version of each, and every wheel's own
  requirements met by another wheel or by a package the machine has (:data:`MACHINE_HAS`); total < 60 MiB.
* ``.gl/``: Debian's GL loaders (libEGL.so.1 ...), 0.3 MiB, for EGL rendering when the machine lacks them;
* ``.gpucheck/``: the data, compressed losslessly:
  ``FREE_ANNY_SMPL_NEUTRAL.pkl.xz`` (the baked free body model, ~40 MiB -> ~1.3 MiB: its posedirs are all
  zero; ``gpu_check.sh`` unpacks it and checks the ``.sha256`` beside it), ``mocap_cmu.tar.xz`` (the CMU
  BVH clips, 64 MB -> ~14 MiB) and ``photos/`` (the three background photos, JPEG, 5.5 MiB).

Then prints the wheel list, their count and total, and the whole carry (tracked files + ``.whl`` +
``.gpucheck`` + ``.gl`` if present) against the 64 MiB limit. Exit status 1 when a check fails.
Needs only Python and pip (no project venv); downloads from PyPI.

Usage::

    python tools/wheelhouse_gpu.py [--out .whl] [--carry .gpucheck] [--data ../shared/data]
                                   [--body-model body_models/free/FREE_ANNY_SMPL_NEUTRAL.pkl] [--no-gl]
"""
from __future__ import annotations

import argparse
import hashlib
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

MIB = 2 ** 20
WHEEL_LIMIT_MIB = 60
CARRY_LIMIT_MIB = 64
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
#: The machine's Python packages (/work/.library/device/KINDS.md, "Python packages already there",
#: read 2026-11-17). A requirement on one of these is met there without a wheel.
MACHINE_HAS = frozenset(canonicalize_name(n) for n in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split())
#: marker environment of the GPU machine (extra "" drops every optional requirement)
TARGET_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "sys_platform": "linux", "os_name": "posix",
              "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}


def read_pins(path: Path) -> list[str]:
    """``name==version`` lines of a requirements file (comments and blanks skipped)."""
    pins = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [p for p in pins if p]


def download(pins: list[str], dest: Path) -> None:
    """``pip download --no-deps`` of every pin for CPython 3.12 manylinux x86-64 into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "--disable-pip-version-check", "-d", str(dest)]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    proc = subprocess.run(cmd + pins, capture_output=True, text=True)
    noise = re.compile(r"Location 'file://.*' is ignored")  # this machine's pip.conf lists local indexes
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip() and not noise.search(line):
            print("  pip: " + line)
    if proc.returncode:
        raise SystemExit(f"error: pip download failed (exit {proc.returncode}); the network must reach PyPI")


def wheel_meta(path: Path) -> tuple[str, str, list[str]]:
    """(canonical name, version, Requires-Dist lines) from a wheel's METADATA."""
    with zipfile.ZipFile(path) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta_name).decode("utf-8", "replace")
    head = text.split("\n\n", 1)[0]
    fields = [line.split(":", 1) for line in head.splitlines() if ":" in line and not line.startswith(" ")]
    name = next(v.strip() for k, v in fields if k == "Name")
    version = next(v.strip() for k, v in fields if k == "Version")
    return canonicalize_name(name), version, [v.strip() for k, v in fields if k == "Requires-Dist"]


def check_house(wheels: list[Path]) -> list[str]:
    """Problems: a name twice, or a requirement neither in the house nor on the machine (or the wrong version)."""
    problems, house = [], {}
    metas = [wheel_meta(w) for w in wheels]
    for name, version, _ in metas:
        if name in house:
            problems.append(f"{name}: two versions ({house[name]}, {version})")
        house[name] = version
    for name, version, reqs in metas:
        for line in reqs:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(TARGET_ENV):
                continue
            dep = canonicalize_name(req.name)
            if dep in house:
                if req.specifier and not req.specifier.contains(house[dep], prereleases=True):
                    problems.append(f"{name} {version} needs {line}; the house has {dep} {house[dep]}")
            elif dep not in MACHINE_HAS:
                problems.append(f"{name} {version} needs {line}: neither in the house nor on the machine")
    return problems


def _xz(src: Path, dst: Path) -> None:
    with src.open("rb") as fin, lzma.open(dst, "wb", preset=6) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _newer(dst: Path, *srcs: Path) -> bool:
    """``dst`` exists and is newer than every file under ``srcs``."""
    if not dst.is_file():
        return False
    mtimes = [p.stat().st_mtime for s in srcs for p in ([s] if s.is_file() else s.rglob("*"))]
    return dst.stat().st_mtime >= max(mtimes, default=0.0)


def pack_data(carry: Path, data: Path, body_model: Path) -> list[str]:
    """Fill ``carry`` with the compressed body model (+ sha256), the CMU clips and the photos; problems."""
    problems = []
    carry.mkdir(parents=True, exist_ok=True)
    if body_model.is_file():
        dst = carry / (body_model.name + ".xz")
        if not _newer(dst, body_model):
            _xz(body_model, dst)
        digest = hashlib.sha256(body_model.read_bytes()).hexdigest()
        (carry / (body_model.name + ".sha256")).write_text(f"{digest}  {body_model.name}\n")
        print(f"body model: {body_model} ({body_model.stat().st_size / MIB:.1f} MiB) -> {dst} "
              f"({dst.stat().st_size / MIB:.1f} MiB, lossless xz; sha256 {digest[:12]}...)")
    else:
        problems.append(f"{body_model}: free body model missing (bake it: make setup, or "
                        "python tools/build_free_body_model.py)")
    cmu = data / "mocap_cmu"
    if cmu.is_dir():
        dst = carry / "mocap_cmu.tar.xz"
        if not _newer(dst, cmu):
            print(f"compressing {cmu} (about a minute)...", flush=True)
            tmp = dst.with_suffix(".tmp")
            with tarfile.open(tmp, "w:xz", preset=6) as tar:
                tar.add(cmu, arcname="mocap_cmu")
            tmp.replace(dst)
        print(f"CMU clips: {cmu} -> {dst} ({dst.stat().st_size / MIB:.1f} MiB)")
    else:
        problems.append(f"{cmu}: CMU clips missing (flag --data)")
    photos = data / "photos"
    if photos.is_dir():
        shutil.copytree(photos, carry / "photos", dirs_exist_ok=True, copy_function=shutil.copyfile)
        size = sum(p.stat().st_size for p in (carry / "photos").iterdir())
        print(f"photos: {photos} -> {carry / 'photos'} ({size / MIB:.1f} MiB)")
    else:
        problems.append(f"{photos}: background photos missing (flag --data)")
    return problems


GL_DEBS = ("libegl1", "libglvnd0", "libopengl0", "libgl1", "libglx0", "libgles2")


def fetch_gl(dest: Path) -> None:
    """Debian's GL loader packages (libEGL.so.1 & co., ~0.3 MiB) into ``dest`` for EGL rendering on the GPU
    machine, as /work/.library/device/README.md describes; ``gpu_check.sh`` unpacks them only when the
    machine has no ``libEGL.so.1``. A failure here is a warning (the machine may have the loaders)."""
    if len(list(dest.glob("*.deb"))) >= len(GL_DEBS):
        print(f"GL loaders: {dest}/ already holds {len(list(dest.glob('*.deb')))} .deb files")
        return
    lists = Path(tempfile.gettempdir()) / "amd64-lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    opts = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", f"-oDir::State::Lists={lists}"]
    dest.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", *opts, "update", "-qq"], capture_output=True, check=True, timeout=300)
        subprocess.run(["apt-get", *opts, "download", *GL_DEBS], cwd=dest, capture_output=True, check=True,
                       timeout=300)
        print(f"GL loaders: {len(list(dest.glob('*.deb')))} .deb files in {dest}/ "
              f"({folder_bytes(dest) / MIB:.2f} MiB)")
    except (OSError, subprocess.SubprocessError) as err:
        print(f"warning: could not download the GL loaders into {dest}/ ({err}); EGL then relies on the "
              "machine's own libEGL.so.1")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def tracked_bytes() -> int:
    """Bytes of the files git tracks (the part of the checkout that always travels)."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum(Path(n.decode()).stat().st_size for n in names if n and Path(n.decode()).is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requirements", type=Path, default=Path("tools/gpu_wheels.txt"))
    p.add_argument("--out", type=Path, default=Path(".whl"))
    p.add_argument("--carry", type=Path, default=Path(".gpucheck"))
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with mocap_cmu/ and photos/")
    p.add_argument("--body-model", type=Path, default=Path("body_models/free/FREE_ANNY_SMPL_NEUTRAL.pkl"))
    p.add_argument("--no-gl", action="store_true", help="skip the Debian GL loader download into .gl/")
    a = p.parse_args(argv)
    pins = read_pins(a.requirements)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"downloading {len(pins)} wheels (CPython 3.12, manylinux x86-64, --no-deps)...", flush=True)
        download(pins, Path(tmp))
        if a.out.exists():
            shutil.rmtree(a.out)
        shutil.copytree(tmp, a.out)
    wheels = sorted(a.out.glob("*.whl"))
    problems = check_house(wheels)
    print(f"\n{'wheel':24s} {'version':10s} {'MiB':>6s}  tag")
    for w in wheels:
        name, version, _ = wheel_meta(w)
        tag = w.name[:-4].split("-", 2)[-1]
        print(f"{name:24s} {version:10s} {w.stat().st_size / MIB:6.2f}  {tag}")
    total = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels, {total / MIB:.1f} MiB in {a.out}/ (limit {WHEEL_LIMIT_MIB} MiB)\n")
    if total >= WHEEL_LIMIT_MIB * MIB:
        problems.append(f"wheels total {total / MIB:.1f} MiB >= {WHEEL_LIMIT_MIB} MiB")
    problems += pack_data(a.carry, a.data, a.body_model)
    if not a.no_gl:
        fetch_gl(Path(".gl"))
    parts = {"tracked files": tracked_bytes(), str(a.out): total, str(a.carry): folder_bytes(a.carry),
             ".gl": folder_bytes(Path(".gl"))}
    carried = sum(parts.values())
    print("carry: " + ", ".join(f"{k} {v / MIB:.1f} MiB" for k, v in parts.items())
          + f" = {carried / MIB:.1f} MiB (limit {CARRY_LIMIT_MIB} MiB)")
    if carried >= CARRY_LIMIT_MIB * MIB:
        problems.append(f"carry {carried / MIB:.1f} MiB >= {CARRY_LIMIT_MIB} MiB")
    for line in problems:
        print("error: " + line, file=sys.stderr)
    print(f"wheelhouse-gpu: {len(wheels)} wheels, {total / MIB:.1f} MiB; carry {carried / MIB:.1f} MiB; "
          + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
