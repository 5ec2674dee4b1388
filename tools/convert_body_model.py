"""Convert an SMPL-format model file (e.g. the official chumpy pickle) into a clean, chumpy-free one.

Usage::

    python tools/convert_body_model.py IN OUT [--force]

``IN`` is read with :func:`annot.body_models.load_model_dict` (chumpy objects -> ndarray, sparse
``J_regressor`` -> dense, no chumpy import); ``OUT`` is written atomically as a Python 3 pickle that
stock ``smplx.SMPL(model_path=OUT)`` loads (``.npz`` if OUT ends with ``.npz``). Same purpose as
vchoutas smplx ``tools/clean_ch.py``, without needing chumpy. Exit status 0 on success, 1 on error.
"""

from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import sys
from pathlib import Path

from annot.app.cli import run_tool
from annot.body_models.pkl import check_model_dict, load_model_dict, pickle_globals, save_model_dict


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: IN, OUT, --force."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", type=Path, help="SMPL-format .pkl / .npz (chumpy allowed)")
    parser.add_argument("output", type=Path, help="clean .pkl (or .npz) to write")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    return parser.parse_args(argv)


def convert(input_path: Path, output_path: Path, force: bool = False) -> Path:
    """Read ``input_path``, validate it as an SMPL model, write ``output_path`` chumpy-free.

    Raises:
        FileNotFoundError: ``input_path`` is missing.
        FileExistsError: ``output_path`` exists and ``force`` is False.
        ValueError: unreadable input, malformed fields, or an output that still needs chumpy.
    """
    if output_path.exists() and not force:
        raise FileExistsError(f"{output_path} exists; pass --force to overwrite it")
    if output_path.resolve() == input_path.resolve():
        raise ValueError(f"Refusing to convert {input_path} onto itself; choose another OUT")
    model_dict = load_model_dict(input_path)
    check_model_dict(model_dict, str(input_path))
    save_model_dict(model_dict, output_path)
    if output_path.suffix.lower() != ".npz":
        leftovers = sorted(g for g in pickle_globals(output_path) if g.startswith("chumpy"))
        if leftovers:
            raise ValueError(f"{output_path} still refers to {leftovers}")
    return output_path


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 error)."""
    args = parse_args(argv)
    try:
        out = convert(args.input, args.output, force=args.force)
    except (OSError, ValueError) as error:
        print(f"convert_body_model: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {out} (chumpy-free; loads with smplx.SMPL(model_path={str(out)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
