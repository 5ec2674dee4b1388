"""The Adam optimiser of every network this project trains (annotators, priors, the 2D-pose backbone, estimators,
EFT's per-sample fine-tuning).

Why not plain ``torch.optim.Adam(params)``: on CPU, torch's default Adam updates one parameter tensor at a time
(``foreach`` is CUDA-only by default). ``fused=True`` updates all of them in one kernel: the same update rule
(Kingma and Ba, ICLR 2015; torch's ``weight_decay`` adds ``wd * param`` to the gradient, L2 as before, not AdamW).
For f's 12.4 M parameters one optimiser step took 0.009 s instead of 0.070 s on one core of the 2-core EPYC VM;
end to end (2 threads, BENCHMARKS.md) it shortened EFT, which fine-tunes the whole f on one sample, by 15 % and a
bench-annot seed by 5 %, and left stage (b)'s batch-12 steps about as they were. The fused kernel exists for CPU, CUDA
and MPS floating-point tensors, which covers every device this project runs on. Its results may differ from the
per-tensor loop in the last bits of float32; tests compare at measured tolerances.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float, weight_decay: float = 0.0,
         betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the fused multi-tensor kernel (module docstring).

    Args:
        params: parameters or parameter groups, all floating point and on one device type.
        lr: learning rate; weight_decay: L2 coefficient (torch's ``Adam`` semantics); betas: moment decays.

    Raises:
        RuntimeError / ValueError from torch: a parameter on a device without the fused kernel, or not floating
        point.
    """
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=True)


__all__ = ["adam"]
