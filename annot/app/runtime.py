"""CPU thread settings for every entry point: graceful sharing of a busy machine (issue #19).

The problem. PyTorch's CPU wheel (torch 2.13.0+cpu) runs its intra-op parallelism, oneDNN and MKL on
GNU OpenMP (``libgomp``, bundled as ``torch/lib/libgomp.so.1``; ``torch.__config__.parallel_info()``
reports "ATen parallel backend: OpenMP"). It starts one thread per available CPU, and at the end of
every parallel region a thread that has finished its share *busy-waits* for the others: by default
300,000 spins before it sleeps (libgomp manual, ``GOMP_SPINCOUNT``: "300,000 is used when
OMP_WAIT_POLICY is undefined"; the lower "throttled" count is used only when *this process* has more
OpenMP threads than CPUs, so another process's threads do not count). Two such jobs on 2 cores each
spin on the core the other one needs, and every parallel region of a training step (each convolution,
element-wise op, optimiser update) waits for a thread the scheduler has just preempted: the stage-(b)
annotator step ran ~9x slower beside one other job instead of ~2x (issue #19; 5.3x in our own
measurement below).

What :func:`configure_threads` does (once per process, first thing in every ``tools/*.py``, the test
suite's ``conftest.py`` and every DataLoader worker through :func:`worker_init_fn`):

* sets ``OMP_WAIT_POLICY=PASSIVE`` in the environment unless the user set ``OMP_WAIT_POLICY`` or
  ``GOMP_SPINCOUNT``: waiting threads sleep at once instead of spinning (libgomp: spin count 0 when
  PASSIVE; OpenMP 4.5 spec section 4.8 ``OMP_WAIT_POLICY``), so the other job gets the core. Also
  ``KMP_BLOCKTIME=0`` for the Intel / LLVM OpenMP runtimes (``libiomp5`` / ``libomp``; a torch build
  linked against them reads it; libgomp ignores it). libgomp reads its environment once, when the
  library is loaded (``initialize_env`` is a constructor), i.e. at ``import torch``: these variables
  only work when set **before** torch is imported, which is why the call sits at module level of each
  tool, before its ``annot`` / ``torch`` imports. A call after ``import torch`` still sets the thread
  counts, records ``env_effective=False`` and logs a warning; child processes (sweep points, W&B agent
  runs, spawned DataLoader workers) inherit the variables either way.
* keeps torch's intra-op thread count at its default (one per available CPU) unless told otherwise:
  an explicit ``num_threads`` argument wins, then ``NEURAL_ANNOT_NUM_THREADS``, then a user's
  ``OMP_NUM_THREADS`` (torch reads it itself; we leave it alone). Config keys ``num_threads > 0``
  (``AnnotateConfig`` / ``EstimatorConfig``) are applied later by the pipelines and win over all this.
* sets torch's inter-op pool to 1 thread (eager training never uses it; it only serves
  ``torch.jit.fork`` / TorchScript; PyTorch docs, "CPU threading and TorchScript inference").
* sets OpenCV's own thread pool (pthreads in ``opencv-python-headless``) to 1: the crops are small
  and its pool would be a third set of threads competing for the same cores.

Measured (``tools/bench_threads.py``, ``BENCHMARKS.md`` "Threads on a shared machine"; 2-core EPYC VM,
2026-12-02, stage-(b) step, steps/s per job, medians; the machine was shared, load average 6-18):

============================  =========  ===================  ===========
setting                       alone      beside 1 copy        beside/alone
============================  =========  ===================  ===========
before (PyTorch defaults)     0.063      0.037                0.59
after (this module)           0.245      0.189                0.77
passive only (run 1)          0.306      0.166                0.54
1 intra-op thread (run 1)     0.287      0.138                0.48
GOMP_SPINCOUNT=10000 (run 1)  0.183      0.099                0.54
before (run 1)                0.134      0.040                0.30
============================  =========  ===================  ===========

So the wait policy is what matters: ``after`` beside a copy runs at 3.0x ``before``'s *alone* rate in
the same window, and alone at 3.9x (the target was >= 0.4x of the alone rate beside one job and
<= 10 % loss alone). The 2 intra-op threads are kept because 1 thread gives up the second core on a
quiet machine; the cost of PASSIVE on an *idle* machine could not be measured (no quiet window), so a
user with a dedicated machine can set ``OMP_WAIT_POLICY=ACTIVE``. End to end, two (shortened)
``tools/annotate.py`` runs side by side both finished in 1.49x the wall time of one alone in the same
window (stage (b): 0.79x its alone step rate).

Sweeps and tests: ``tools/sweep.py`` runs its points one at a time with these settings (two 1-thread
jobs side by side did no more work than one 2-thread PASSIVE job alone: 2 x 0.138 vs 0.306 steps/s),
and W&B agent runs inherit the variables; ``make test`` is one pytest process (no pytest workers)
configured by ``tests/conftest.py``.

DataLoader workers: PyTorch already gives each worker 1 intra-op thread (``torch.utils.data``
worker loop calls ``torch.set_num_threads(1)``); :func:`worker_init_fn` adds OpenCV's 1 thread and
chains Lightning's worker seeding (``pl_worker_init_function``) when ``seed_everything(workers=True)``
asked for it, since a ``worker_init_fn`` of ours stops Lightning from adding its own.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

__all__ = ["ThreadSettings", "configure_threads", "worker_init_fn", "current_settings", "ENV_DEFAULTS",
           "THREADS_ENV"]

log = logging.getLogger(__name__)

#: OpenMP-runtime variables set when the user has not set them (see the module docstring).
ENV_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
#: Our own variable for the intra-op thread count (wins over ``OMP_NUM_THREADS``).
THREADS_ENV = "NEURAL_ANNOT_NUM_THREADS"
#: A user-set variable that already decides the wait behaviour; then we set no wait policy.
_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@dataclass(frozen=True)
class ThreadSettings:
    """What :func:`configure_threads` applied.

    Attributes:
        torch_threads: ``torch.get_num_threads()`` after the call (intra-op threads).
        interop_threads: ``torch.get_num_interop_threads()`` after the call.
        cv2_threads: ``cv2.getNumThreads()`` after the call (``None`` when OpenCV is not installed).
        source: where ``torch_threads`` came from: ``"argument"``, ``THREADS_ENV``, ``"OMP_NUM_THREADS"``
            or ``"default"`` (PyTorch's: one per available CPU).
        env_set: the environment variables this process set (name -> value); empty when the user set them.
        env_effective: whether the OpenMP variables were in place before torch was imported (libgomp reads
            them once, at load).
    """

    torch_threads: int
    interop_threads: int
    cv2_threads: int | None
    source: str
    env_set: dict[str, str] = field(default_factory=dict)
    env_effective: bool = True


_SETTINGS: ThreadSettings | None = None


def current_settings() -> ThreadSettings | None:
    """The settings of the last :func:`configure_threads` call in this process (``None`` before any)."""
    return _SETTINGS


def _positive_int(name: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


def configure_threads(num_threads: int | None = None, *, worker: bool = False) -> ThreadSettings:
    """Apply the project's CPU thread settings to this process (module docstring: what and why).

    Call it first, before ``import torch`` when possible. Idempotent: later calls return the first
    call's settings unchanged unless ``num_threads`` is given (then only the intra-op count changes),
    and they never touch the environment again.

    Args:
        num_threads: intra-op threads for torch (``torch.set_num_threads``); ``None`` = ``$NEURAL_ANNOT_NUM_THREADS``,
            else the user's ``OMP_NUM_THREADS`` (torch applies it), else PyTorch's default (one per CPU).
        worker: a DataLoader worker: 1 intra-op thread (what PyTorch's worker loop sets anyway).

    Returns:
        The :class:`ThreadSettings` applied (also kept for :func:`current_settings`).

    Raises:
        ValueError: ``num_threads`` or ``$NEURAL_ANNOT_NUM_THREADS`` is not a positive integer.

    Sources: libgomp manual, "OMP_WAIT_POLICY" and "GOMP_SPINCOUNT" (environment read when the library
    loads); PyTorch docs ``torch.set_num_threads`` ("must be called before running eager, JIT or autograd
    code"), ``torch.set_num_interop_threads`` ("can only be called once and before any inter-op parallel
    work is started"); OpenCV ``cv::setNumThreads``.
    """
    global _SETTINGS
    if num_threads is not None:
        num_threads = _positive_int("num_threads", str(num_threads))
    if _SETTINGS is not None and num_threads is None and not worker:
        return _SETTINGS

    first = _SETTINGS is None
    env_set: dict[str, str] = dict(_SETTINGS.env_set) if _SETTINGS else {}
    env_effective = _SETTINGS.env_effective if _SETTINGS else True
    if first:
        torch_loaded = "torch" in sys.modules
        if not any(v in os.environ for v in _WAIT_VARS):
            for key, value in ENV_DEFAULTS.items():
                if key not in os.environ:
                    os.environ[key] = value
                    env_set[key] = value
        env_effective = not torch_loaded or not env_set
        if not env_effective:
            log.warning("configure_threads() ran after `import torch`: %s will only reach child processes; "
                        "call it before importing torch (see annot/app/runtime.py)", ", ".join(env_set))

    source = "default"
    wanted: int | None = None
    if worker:
        wanted, source = 1, "worker"
    elif num_threads is not None:
        wanted, source = num_threads, "argument"
    elif os.environ.get(THREADS_ENV):
        wanted, source = _positive_int(THREADS_ENV, os.environ[THREADS_ENV]), THREADS_ENV
    elif os.environ.get("OMP_NUM_THREADS"):
        source = "OMP_NUM_THREADS"

    import torch

    if wanted is not None:
        torch.set_num_threads(wanted)
    if first:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already started: keep what is there
            pass
    cv2_threads = None
    try:
        import cv2
    except ImportError:
        pass
    else:
        cv2.setNumThreads(1)
        cv2_threads = cv2.getNumThreads()
    _SETTINGS = ThreadSettings(torch_threads=torch.get_num_threads(),
                               interop_threads=torch.get_num_interop_threads(), cv2_threads=cv2_threads,
                               source=source, env_set=env_set, env_effective=env_effective)
    return _SETTINGS


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: 1 torch and 1 OpenCV thread in the worker, then Lightning's worker
    seeding when ``seed_everything(..., workers=True)`` set ``PL_SEED_WORKERS=1`` (what Lightning adds
    itself only when a DataLoader has no ``worker_init_fn``; ``lightning_fabric.utilities.seed``).

    Args:
        worker_id: the worker's index (0 .. num_workers-1), passed by the DataLoader.
    """
    configure_threads(worker=True)
    if int(os.environ.get("PL_SEED_WORKERS", "0")):
        from lightning_fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)
