"""Throughput of the annotator next to a bare ResNet-50 on the same device, in the same process.

Used by ``tools/bench_train.py`` (training: forward + backward + Adam step) and
``tools/bench_annotate.py`` (annotation: ``trainer.predict``). Each measurement is reported as
samples/s and as a *ratio* to the bare :class:`annot.nets.resnet.ResNetBackbone` at the same batch,
input size, precision, memory layout and compile setting: on a shared machine the absolute numbers move
with the load, the ratio much less (the two are interleaved, A-B-B-A, so both see the same background).

What runs:

* **annotator**: :class:`annot.annotator.module.AnnotatorModule` in in-the-wild mode with a VPoser prior (the
  target stage (b) / (c) of Algorithm 1): backbone, regressor, frozen VPoser decoder, body-model forward,
  joint regression, projection, 2D L1 + L2 regularisers. Driven by a Lightning ``Trainer`` with the
  pipeline's own switches (precision, :class:`annot.training.callbacks.ChannelsLast`,
  :class:`annot.training.callbacks.CompileModule`), so Lightning's per-step overhead is included.
* **bare ResNet**: ``ResNetBackbone(depth)`` in a plain loop; training = forward, ``mean`` of the layer4
  map as loss, backward, ``Adam.step``; prediction = forward under ``torch.inference_mode``.
  ``torch.autocast`` (bf16) when the precision is bf16.

Inputs are synthetic and already on the device (random crops in [0, 1], random 2D targets in crop
pixels, all 17 COCO keypoints visible): the data loader is not measured (``tools/bench_data.py`` does
that). The VPoser weights are random (``VPoser()`` saved as a plain state dict): its cost does not depend
on its values. Timing: wall clock between the ends of step ``warmup`` and of the last step, with a
device synchronisation at both ends.
"""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

__all__ = ["BenchSettings", "synthetic_batch", "make_random_vposer", "bare_resnet_samples_per_s",
           "annotator_samples_per_s", "compare", "machine_info", "format_table", "build_annotator"]

PRECISIONS = {"32": "32-true", "fp32": "32-true", "32-true": "32-true", "bf16": "bf16-mixed",
              "bf16-mixed": "bf16-mixed"}


@dataclass
class BenchSettings:
    """One benchmark configuration.

    Attributes:
        batch_size: samples per step (per device).
        input_hw: crop (height, width) in pixels (Pose2Pose: 256x192).
        precision: ``"32"`` or ``"bf16"`` (Lightning ``32-true`` / ``bf16-mixed``; autocast for the bare net).
        channels_last: NHWC weights and inputs.
        compile: ``torch.compile`` the network (``backend``; the bare ResNet is compiled too).
        backend: ``torch.compile`` backend (``"inductor"``; ``"eager"`` tests the plumbing only).
        device: ``"cpu"`` or ``"cuda"`` (one device).
        depth: ResNet depth of both networks.
        steps: timed steps; warmup: untimed steps before them.
        module_kwargs: extra :class:`annot.annotator.module.AnnotatorModule` arguments (e.g. ``hidden_dim``).
    """

    batch_size: int = 8
    input_hw: tuple[int, int] = (256, 192)
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False
    backend: str = "inductor"
    device: str = "cpu"
    depth: int = 50
    steps: int = 10
    warmup: int = 3
    module_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size < 1 or self.steps < 1 or self.warmup < 0:
            raise ValueError(f"batch_size ({self.batch_size}) and steps ({self.steps}) must be >= 1, "
                             f"warmup ({self.warmup}) >= 0")
        self.input_hw = (int(self.input_hw[0]), int(self.input_hw[1]))

    @property
    def lightning_precision(self) -> str:
        """The Lightning precision string (``32-true`` / ``bf16-mixed``)."""
        return PRECISIONS[self.precision]

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """``torch.bfloat16`` for bf16, else ``None`` (no autocast)."""
        return torch.bfloat16 if self.lightning_precision == "bf16-mixed" else None


def synthetic_batch(batch_size: int, input_hw: tuple[int, int], num_joints: int = 17, device: str = "cpu",
                    seed: int = 0) -> dict[str, Any]:
    """A collated :class:`annot.data.sample.Sample`-like batch with random content.

    Returns ``img`` (B, 3, H, W) float32 in [0, 1]; ``kp2d_px`` (B, J, 2) crop pixels uniform in the crop;
    ``kp2d_mask`` (B, J) ones; ``crop_to_img`` (B, 2, 3) the identity affine (so ``kp2d_img_px`` =
    ``kp2d_px``); ``sample_id`` / ``image_path`` lists of strings. Everything on ``device``.
    """
    gen = torch.Generator().manual_seed(seed)
    height, width = input_hw
    kp2d = torch.rand(batch_size, num_joints, 2, generator=gen) * torch.tensor([width - 1.0, height - 1.0])
    affine = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(batch_size, 2, 3).clone()
    batch = {"img": torch.rand(batch_size, 3, height, width, generator=gen), "kp2d_px": kp2d,
             "kp2d_mask": torch.ones(batch_size, num_joints), "kp2d_img_px": kp2d.clone(), "crop_to_img": affine}
    batch = {k: v.to(device) for k, v in batch.items()}
    batch.update(sample_id=[f"synthetic_{i}" for i in range(batch_size)], image_path=[""] * batch_size)
    return batch


def make_random_vposer(folder: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised V02_05-layout VPoser (512 neurons, 32-d latent) as ``folder/vposer.ckpt``
    (a plain state dict, which :func:`annot.priors.vposer.load_vposer` reads); returns the file."""
    from annot.priors.vposer import VPoser

    torch.manual_seed(seed)
    path = Path(folder) / "vposer.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(VPoser().state_dict(), path)
    return path


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- bare ResNet
def bare_resnet_samples_per_s(settings: BenchSettings, train: bool) -> float:
    """Samples/s of a bare ``ResNetBackbone(settings.depth)``: training step (forward, mean of the feature
    map as loss, backward, Adam step) when ``train``, else forward under ``inference_mode``."""
    from annot.nets.resnet import ResNetBackbone

    s = settings
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    net = ResNetBackbone(s.depth).to(s.device).to(memory_format=fmt).train(train)
    if s.compile:
        net.compile(backend=s.backend)
    img = synthetic_batch(s.batch_size, s.input_hw, device=s.device)["img"].contiguous(memory_format=fmt)
    dtype = s.autocast_dtype
    autocast = (lambda: torch.autocast(torch.device(s.device).type, dtype=dtype)) if dtype else contextlib.nullcontext
    if train:
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)

        def step() -> None:
            with autocast():
                loss = net(img).float().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        def step() -> None:
            with torch.inference_mode(), autocast():
                net(img)

    for _ in range(s.warmup):
        step()
    _sync(s.device)
    start = time.perf_counter()
    for _ in range(s.steps):
        step()
    _sync(s.device)
    return s.steps * s.batch_size / (time.perf_counter() - start)


# --------------------------------------------------------------------------- the annotator
class _StepClock(pl.Callback):
    """Wall-clock time at the end of every training / predict batch (device synchronised at the two
    ends of the timed window)."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total
        self.start: float | None = None
        self.end: float | None = None

    def _tick(self, pl_module: pl.LightningModule, index: int) -> None:
        if index + 1 == self.warmup:
            _sync(str(pl_module.device))
            self.start = time.perf_counter()
        if index + 1 == self.total:
            _sync(str(pl_module.device))
            self.end = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        if self.warmup == 0:
            _sync(str(pl_module.device))
            self.start = time.perf_counter()

    def on_predict_start(self, trainer, pl_module) -> None:
        self.on_train_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._tick(pl_module, batch_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._tick(pl_module, batch_idx)

    def elapsed_s(self) -> float:
        """Seconds between the first timed step and the last (RuntimeError if the run stopped early)."""
        if self.start is None or self.end is None:
            raise RuntimeError("the benchmark did not run the expected number of steps")
        return self.end - self.start


class _Repeat(torch.utils.data.Dataset):
    """``length`` references to one ready-made batch (``DataLoader(batch_size=None)`` yields it as is)."""

    def __init__(self, batch: dict[str, Any], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.batch


def build_annotator(settings: BenchSettings, vposer_path: str | Path, body_model_path: str | Path | None):
    """The in-the-wild :class:`annot.annotator.module.AnnotatorModule` of the benchmark (VPoser prior, coco17 2D
    keypoints, perspective camera, free body model unless ``body_model_path`` says otherwise)."""
    from annot.annotator.module import AnnotatorModule

    kwargs: dict[str, Any] = dict(mode="itw", backbone_depth=settings.depth, input_hw=settings.input_hw,
                                  kp2d_convention="coco17", pose_prior="vposer", vposer_path=str(vposer_path),
                                  body_model_path=str(body_model_path) if body_model_path else None)
    kwargs.update(settings.module_kwargs)
    return AnnotatorModule(**kwargs)


def annotator_samples_per_s(settings: BenchSettings, train: bool, vposer_path: str | Path,
                            body_model_path: str | Path | None = None,
                            module: pl.LightningModule | None = None) -> float:
    """Samples/s of the annotator: ``trainer.fit`` steps when ``train``, else ``trainer.predict`` batches.

    A fresh module is built unless ``module`` is given (prediction reuses one safely; training changes it).
    """
    from annot.training.callbacks import ChannelsLast, CompileModule

    s = settings
    module = module if module is not None else build_annotator(s, vposer_path, body_model_path)
    total = s.warmup + s.steps
    batch = synthetic_batch(s.batch_size, s.input_hw, device=s.device)
    loader = torch.utils.data.DataLoader(_Repeat(batch, total), batch_size=None)
    clock = _StepClock(s.warmup, total)
    callbacks: list[pl.Callback] = [clock]
    if s.channels_last:
        callbacks.append(ChannelsLast())
    if s.compile:
        callbacks.append(CompileModule(backend=s.backend))
    trainer = pl.Trainer(accelerator="gpu" if torch.device(s.device).type == "cuda" else "cpu", devices=1,
                         precision=s.lightning_precision, max_steps=total, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=callbacks, num_sanity_val_steps=0)
    if train:
        trainer.fit(module, loader)
    else:
        trainer.predict(module, loader, return_predictions=False)
    return s.steps * s.batch_size / clock.elapsed_s()


# --------------------------------------------------------------------------- comparison
def compare(settings: BenchSettings, train: bool, vposer_path: str | Path, body_model_path: str | Path | None = None,
            repeats: int = 2) -> dict[str, Any]:
    """Interleaved (A-B-B-A...) measurements of the annotator and the bare ResNet.

    Returns a dict with ``task`` (``"train"`` / ``"annotate"``), the settings, per-repeat samples/s
    ``annotator`` and ``bare_resnet`` (lists), their medians ``annotator_samples_per_s`` /
    ``bare_resnet_samples_per_s``, ``ratio`` = median annotator / median bare, and ``ratios`` per repeat.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    module = None if train else build_annotator(settings, vposer_path, body_model_path)
    runs: dict[str, list[float]] = {"annotator": [], "bare_resnet": []}
    measure: dict[str, Callable[[], float]] = {
        "annotator": lambda: annotator_samples_per_s(settings, train, vposer_path, body_model_path, module),
        "bare_resnet": lambda: bare_resnet_samples_per_s(settings, train)}
    for r in range(repeats):
        order = ("bare_resnet", "annotator") if r % 2 == 0 else ("annotator", "bare_resnet")
        for name in order:
            runs[name].append(measure[name]())
    annot, bare = statistics.median(runs["annotator"]), statistics.median(runs["bare_resnet"])
    return {"task": "train" if train else "annotate", "settings": asdict(settings), **runs,
            "annotator_samples_per_s": annot, "bare_resnet_samples_per_s": bare,
            "ratio": annot / bare if bare > 0 else math.nan,
            "ratios": [a / b for a, b in zip(runs["annotator"], runs["bare_resnet"])]}


def machine_info(device: str) -> dict[str, Any]:
    """Where the numbers come from: CPU model and count, threads, load average, GPU name, versions."""
    import os
    import platform

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "torch": torch.__version__, "lightning": pl.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of one :func:`compare` result."""
    s = result["settings"]
    what = "fwd+bwd+Adam" if result["task"] == "train" else "forward"
    setting = (f"batch {s['batch_size']}, {s['input_hw'][0]}x{s['input_hw'][1]}, {PRECISIONS[s['precision']]}, "
               f"{'channels_last' if s['channels_last'] else 'NCHW'}{', compile' if s['compile'] else ''}, "
               f"{s['device']}")
    rows = [f"| task | setting | annotator samples/s | bare ResNet-{s['depth']} ({what}) samples/s | ratio | "
            "ratios per repeat |", "|---|---|---|---|---|---|",
            f"| {result['task']} | {setting} | {result['annotator_samples_per_s']:.2f} | "
            f"{result['bare_resnet_samples_per_s']:.2f} | {result['ratio']:.3f} | "
            + ", ".join(f"{r:.3f}" for r in result["ratios"]) + " |"]
    return "\n".join(rows)


# --------------------------------------------------------------------------- command line (tools/bench_*.py)
DEFAULT_BODY_MODEL = Path(__file__).resolve().parents[2] / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"


def main(train: bool, argv: list[str] | None = None) -> int:
    """Command line of ``tools/bench_train.py`` (``train=True``) and ``tools/bench_annotate.py``.

    Runs :func:`compare` for every combination of ``--precision`` and ``--channels-last`` values, prints
    the machine, the command and one markdown table per combination; ``--json [PATH]`` writes all results
    (to stdout without PATH). Returns the exit status.
    """
    import argparse
    import json
    import shlex
    import sys
    import tempfile

    import yaml

    task = "training (fit)" if train else "annotation (predict)"
    parser = argparse.ArgumentParser(description=f"Samples/s of annotator {task} vs a bare ResNet on the same device.")
    parser.add_argument("--batch", type=int, default=8, help="samples per step (default 8; the paper: 192 on a GPU)")
    parser.add_argument("--input-hw", type=int, nargs=2, default=(256, 192), metavar=("H", "W"))
    parser.add_argument("--precision", nargs="+", default=["32"], choices=["32", "bf16"])
    parser.add_argument("--channels-last", nargs="+", default=["false"], choices=["false", "true"])
    parser.add_argument("--compile", action="store_true", help="torch.compile both networks")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--depth", type=int, default=50, help="ResNet depth of both networks")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved measurements of each (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--body-model", default=str(DEFAULT_BODY_MODEL), help="SMPL-format model file")
    parser.add_argument("--vposer", default=None, help="VPoser folder/ckpt (default: random weights)")
    parser.add_argument("--module-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra AnnotatorModule argument (YAML value), repeatable")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH", help="write JSON (stdout: -)")
    args = parser.parse_args(argv)
    import logging
    import warnings

    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen VPoser
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    if not Path(args.body_model).is_file():
        print(f"error: body model not found: {args.body_model} (run `make setup`, or pass --body-model)",
              file=sys.stderr)
        return 2
    module_kwargs = {}
    for item in args.module_kwarg:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--module-kwarg expects KEY=VALUE, got {item!r}")
        module_kwargs[key] = yaml.safe_load(value)
    out = sys.stderr if args.json == "-" else sys.stdout
    info = machine_info(args.device)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(f"machine: {json.dumps(info)}\ncommand: {command}", file=out)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        vposer = args.vposer or make_random_vposer(tmp)
        for precision in args.precision:
            for channels_last in args.channels_last:
                settings = BenchSettings(batch_size=args.batch, input_hw=tuple(args.input_hw), precision=precision,
                                         channels_last=channels_last == "true", compile=args.compile,
                                         backend=args.backend, device=args.device, depth=args.depth, steps=args.steps,
                                         warmup=args.warmup, module_kwargs=module_kwargs)
                result = compare(settings, train, vposer, args.body_model, repeats=args.repeats)
                results.append(result)
                print(format_table(result) + "\n", file=out, flush=True)
    if args.json:
        text = json.dumps({"machine": info, "command": command, "results": results}, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    return 0
