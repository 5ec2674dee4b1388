"""Read and write SMPL-format body-model files without chumpy.

The official SMPL ``.pkl`` files were written with Python 2 and hold several fields as chumpy
``Ch`` objects and the joint regressor as a ``scipy.sparse`` matrix. chumpy does not import on
numpy >= 1.24 / Python 3.11 (mattloper/chumpy#55), so we never import it. Instead a restricted
:class:`pickle.Unpickler` maps every ``chumpy.*`` class to a stub and converts it back to a plain
``np.ndarray`` afterwards (smplx ``tools/clean_ch.py`` does the same job with chumpy installed).

How chumpy pickles (mattloper/chumpy ``chumpy/ch.py``): ``Ch`` defines no ``__reduce__``; it relies
on the default ``object.__reduce_ex__`` and defines ``__getstate__``, which returns a copy of the
instance ``__dict__`` without the unpicklable ``_parents`` / ``_cache`` weak dictionaries. A pickle
therefore holds

* protocol 2 (binary): ``GLOBAL chumpy.ch Ch``, ``NEWOBJ`` (``Ch.__new__(Ch)``), then ``BUILD`` with
  the state dict;
* protocol 0/1: ``copy_reg._reconstructor(Ch, object, None)`` then ``BUILD`` with the state dict.

For a leaf ``Ch(array)`` the state is ``{'x': float64 ndarray, '_dirty_vars': set, '_itr': None,
'_make_dense': False, '_make_sparse': False, '_depends_on_deps': {}}``: the value is ``state['x']``.
Derived chumpy expressions (``Select``, ``add``, ...) store their operands instead; they cannot be
evaluated without chumpy and raise a ``ValueError`` naming the field.

Only plain data types are unpickled (numpy, scipy.sparse, chumpy stubs, builtin containers); any
other global is refused, so loading a body-model file cannot run arbitrary code.
"""

from __future__ import annotations

import builtins
import contextlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from annot.io.atomic import atomic_write

SAFE_BUILTINS = frozenset(
    {"set", "frozenset", "slice", "complex", "bytearray", "bytes", "object", "range", "tuple",
     "list", "dict", "int", "float", "bool", "str"}
)
SAFE_GLOBALS: dict[str, frozenset[str]] = {
    "copyreg": frozenset({"_reconstructor"}),  # protocol 0/1 object pickles
    "copy_reg": frozenset({"_reconstructor"}),  # its Python 2 name
    "_codecs": frozenset({"encode"}),  # bytes pickled with protocol <= 2
    "collections": frozenset({"OrderedDict", "defaultdict"}),
    "datetime": frozenset({"datetime", "date", "time", "timedelta", "timezone"}),
}
NUMPY_FUNCTIONS = frozenset({"_reconstruct", "scalar", "_frombuffer"})
#: ``str`` subclasses that end up in provenance records (e.g. ``torch.__version__``); read as ``str``.
STR_SUBCLASSES = frozenset({"torch.torch_version.TorchVersion"})

SMPL_NUM_JOINTS = 24
REQUIRED_FIELDS = ("v_template", "f", "J_regressor", "weights", "posedirs", "shapedirs",
                   "kintree_table")
SMPLX_VERTEX_ID_KEYS = ("nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel",
                        "RBigToe", "RSmallToe", "RHeel", "lthumb", "lindex", "lmiddle", "lring",
                        "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky")
EXTRA_REGRESSORS = {"coco_regressor": 23, "h36m_regressor": 17}
#: SMPL kinematic tree: parent of joints 1..23 (``kintree_table[0, 1:]``; the root's entry is ignored).
SMPL_PARENTS = (0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)


class ChumpyStub:
    """Stand-in for any ``chumpy`` class met while unpickling; keeps the pickled state only.

    ``chumpy_class`` is the dotted name of the original class (e.g. ``"chumpy.ch.Ch"``) and
    ``state`` the dict chumpy's ``Ch.__getstate__`` produced. :func:`to_plain` turns it into an ndarray.
    """

    chumpy_class = "chumpy.?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state) form
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state) if isinstance(state, dict) else {"state": state}


_STUB_CLASSES: dict[str, type[ChumpyStub]] = {}
_SPARSE_BASES = tuple(
    cls for cls in (getattr(scipy.sparse, "spmatrix", None), getattr(scipy.sparse, "sparray", None)) if cls
)


def _stub_class(module: str, name: str) -> type[ChumpyStub]:
    """One ChumpyStub subclass per chumpy class name, so the original name is kept."""
    dotted = f"{module}.{name}"
    if dotted not in _STUB_CLASSES:
        _STUB_CLASSES[dotted] = type(f"ChumpyStub_{name}", (ChumpyStub,), {"chumpy_class": dotted})
    return _STUB_CLASSES[dotted]


class _ModelUnpickler(pickle.Unpickler):
    """Unpickler that stubs chumpy and refuses anything but plain data types.

    ``globals_seen`` records every ``module.name`` the pickle asked for.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals_seen: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.globals_seen.add(f"{module}.{name}")
        if module == "chumpy" or module.startswith("chumpy."):
            return _stub_class(module, name)
        if module == "numpy" or module.startswith("numpy."):
            return self._numpy_global(module, name)
        if module.startswith("scipy.sparse"):
            # Old scipy pickles name private modules (scipy.sparse.csc); the public namespace is stable.
            obj = getattr(scipy.sparse, name, None) or super().find_class(module, name)
            if isinstance(obj, type) and issubclass(obj, _SPARSE_BASES):
                return obj
        elif f"{module}.{name}" in STR_SUBCLASSES:
            return str
        elif name in SAFE_GLOBALS.get(module, ()):
            return super().find_class(module, name)
        elif module in ("builtins", "__builtin__") and name in SAFE_BUILTINS:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not a body-model data type")

    def _numpy_global(self, module: str, name: str) -> Any:
        """Array / dtype / scalar reconstruction helpers only (numpy.core -> numpy._core on numpy 2)."""
        obj = None
        if module == "numpy.core" or module.startswith("numpy.core."):
            with contextlib.suppress(ImportError, AttributeError):  # numpy 1.x has no numpy._core
                obj = super().find_class("numpy._core" + module[len("numpy.core"):], name)
        if obj is None:
            obj = super().find_class(module, name)
        if name in NUMPY_FUNCTIONS or (
            isinstance(obj, type) and issubclass(obj, (np.ndarray, np.dtype, np.generic))
        ):
            return obj
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not a body-model data type")


def _chumpy_to_array(stub: ChumpyStub, field: str, source: str) -> np.ndarray:
    """Value of a leaf chumpy object (``state['x']``); derived expressions raise ValueError."""
    if "x" in stub.state:
        return np.asarray(to_plain(stub.state["x"], field, source))
    raise ValueError(
        f"{source}: field {field!r} is a derived chumpy expression ({stub.chumpy_class}, state keys "
        f"{sorted(stub.state)}) that cannot be evaluated without chumpy. Convert the file once in an "
        "environment with chumpy (smplx tools/clean_ch.py) and load the converted file."
    )


def _sparse_to_dense(matrix: Any, field: str, source: str) -> np.ndarray:
    """Dense copy of a scipy.sparse matrix, rebuilding compressed formats from their raw state."""
    try:
        return np.asarray(matrix.toarray())
    except Exception as error:  # old-scipy state that the current class cannot interpret
        state = getattr(matrix, "__dict__", {})
        fmt = type(matrix).__name__[:3]
        if fmt in ("csc", "csr") and {"data", "indices", "indptr"} <= state.keys():
            shape = state.get("_shape", state.get("shape"))
            build = scipy.sparse.csc_matrix if fmt == "csc" else scipy.sparse.csr_matrix
            return build((state["data"], state["indices"], state["indptr"]), shape=shape).toarray()
        raise ValueError(f"{source}: field {field!r}: cannot densify {type(matrix)}: {error}") from error


def to_plain(obj: Any, field: str = "?", source: str = "<memory>") -> Any:
    """Recursively convert chumpy stubs and scipy.sparse matrices into dense ``np.ndarray``.

    Args:
        obj: an unpickled value (ndarray, sparse matrix, chumpy stub, dict, list, tuple, scalar).
        field: dotted field name used in error messages.
        source: file name used in error messages.

    Returns:
        the same structure with only numpy / builtin values.

    Raises:
        ValueError: a derived chumpy expression or an unreadable sparse matrix (names file and field).
    """
    if isinstance(obj, ChumpyStub):
        return _chumpy_to_array(obj, field, source)
    if scipy.sparse.issparse(obj):
        return _sparse_to_dense(obj, field, source)
    if isinstance(obj, dict):
        return {key: to_plain(value, f"{field}.{key}", source) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(value, f"{field}[{i}]", source) for i, value in enumerate(obj))
    return obj


def _load_pickle(path: Path) -> Any:
    with path.open("rb") as handle:
        return _ModelUnpickler(handle, encoding="latin1").load()


def pickle_globals(path: str | Path) -> set[str]:
    """Dotted names of the classes / functions a pickle file refers to (e.g. ``chumpy.ch.Ch``).

    Used to tell whether stock ``smplx.SMPL(model_path=...)`` (plain ``pickle.load``) would need
    chumpy. Reads the file with the same restricted unpickler as :func:`load_model_dict`.

    Raises:
        ValueError: unreadable or corrupt file (names it).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            unpickler = _ModelUnpickler(handle, encoding="latin1")
            unpickler.load()
    except Exception as error:
        raise ValueError(f"Could not read pickle {path}: {type(error).__name__}: {error}") from error
    return unpickler.globals_seen


def _load_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        return {key: (data[key].item() if data[key].ndim == 0 else data[key]) for key in data.files}


def load_model_dict(path: str | Path) -> dict[str, Any]:
    """Read an SMPL-format ``.pkl`` (chumpy or clean) or ``.npz`` file into plain numpy values.

    chumpy objects become ``np.ndarray`` (see the module docstring), scipy.sparse matrices (the
    official ``J_regressor``) become dense arrays; Python 2 pickles are read with ``encoding="latin1"``.
    Values keep their stored dtype (official SMPL: float64 arrays, uint32 faces).
    Follows the purpose of vchoutas smplx ``tools/clean_ch.py`` without needing chumpy.

    Args:
        path: the model file (any suffix other than ``.npz`` is read as a pickle).

    Returns:
        dict field name -> value (e.g. ``v_template`` (V, 3) metres, ``f`` (F, 3), ``J_regressor``
        (24, V), ``weights`` (V, 24), ``posedirs`` (V, 3, 207), ``shapedirs`` (V, 3, K),
        ``kintree_table`` (2, 24), plus any extra fields).

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        ValueError: the file is corrupt, truncated, not a dict, contains a non-data global, or a
            field cannot be converted (message names the file and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Body-model file not found: {path}")
    try:
        raw = _load_npz(path) if path.suffix.lower() == ".npz" else _load_pickle(path)
    except Exception as error:
        raise ValueError(
            f"Could not read body-model file {path}: {type(error).__name__}: {error}. The file is "
            "corrupt, truncated or not an SMPL-format pickle/npz; re-download or rebuild it."
        ) from error
    if not isinstance(raw, dict):
        raise ValueError(f"Body-model file {path} holds a {type(raw).__name__}, expected a dict of fields")
    return {str(key): to_plain(value, str(key), str(path)) for key, value in raw.items()}


def save_model_dict(model_dict: dict[str, Any], path: str | Path) -> Path:
    """Write a model dict atomically (temporary file in the same folder, then ``os.replace``).

    ``.npz`` writes ``np.savez`` (array values only); any other suffix writes a Python 3 pickle that
    stock ``smplx.SMPL(model_path=path)`` reads. Chumpy stubs / sparse matrices are converted first.

    Args:
        model_dict: field name -> value.
        path: destination file; parent folders are created.

    Returns:
        the destination :class:`Path`.

    Raises:
        ValueError: a non-array value is written to ``.npz`` (names the field).
    """
    path = Path(path)
    plain = {key: to_plain(value, key, str(path)) for key, value in model_dict.items()}
    if path.suffix.lower() == ".npz":
        for key, value in plain.items():
            if isinstance(value, (dict, list, tuple)) or np.asarray(value).dtype == object:
                raise ValueError(f"{path}: field {key!r} ({type(value).__name__}) cannot be stored in "
                                 ".npz without pickling; save as .pkl instead")
    def write(handle) -> None:
        if path.suffix.lower() == ".npz":
            np.savez(handle, **plain)
        else:
            pickle.dump(plain, handle, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, write)
    return path


def _shape_error(source: str, field: str, value: Any, expected: str) -> ValueError:
    shape = getattr(value, "shape", type(value).__name__)
    return ValueError(f"{source}: field {field!r} has shape {shape}, expected {expected}")


def check_model_dict(model_dict: dict[str, Any], source: str = "<memory>") -> None:
    """Validate the fields ``smplx.SMPL`` reads (and our optional extras) for shape and finiteness.

    Checks: required fields present; ``v_template`` (V, 3); ``f`` (F, 3) integer indices in [0, V);
    ``J_regressor`` (24, V); ``weights`` (V, 24); ``posedirs`` (V, 3, 207); ``shapedirs`` (V, 3, K);
    ``kintree_table`` (2, 24) with the SMPL parents; all float arrays finite; optional
    ``vertex_ids`` (all smplx keys, indices in range), ``coco_regressor`` (23, V), ``h36m_regressor`` (17, V).

    Args:
        model_dict: output of :func:`load_model_dict`.
        source: file name for the error message.

    Raises:
        ValueError: the first problem found, naming ``source`` and the field.
    """
    missing = [key for key in REQUIRED_FIELDS if key not in model_dict]
    if missing:
        raise ValueError(f"{source}: missing required field(s) {missing}; found {sorted(model_dict)}")
    arrays = {key: np.asarray(model_dict[key]) for key in REQUIRED_FIELDS}
    num_verts = arrays["v_template"].shape[0] if arrays["v_template"].ndim == 2 else -1
    num_joints = SMPL_NUM_JOINTS
    expected = {
        "v_template": (num_verts, 3),
        "J_regressor": (num_joints, num_verts),
        "weights": (num_verts, num_joints),
        "posedirs": (num_verts, 3, (num_joints - 1) * 9),
        "kintree_table": (2, num_joints),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape or num_verts <= 0:
            raise _shape_error(source, key, arrays[key], str(shape))
    if tuple(int(p) for p in arrays["kintree_table"][0, 1:]) != SMPL_PARENTS:
        raise ValueError(f"{source}: field 'kintree_table' row 0 is not the SMPL kinematic tree "
                         f"{SMPL_PARENTS} (joints 1..23)")
    shapedirs = arrays["shapedirs"]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_verts, 3) or shapedirs.shape[2] < 1:
        raise _shape_error(source, "shapedirs", shapedirs, f"({num_verts}, 3, num_betas)")
    faces = arrays["f"]
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise _shape_error(source, "f", faces, "(F, 3) integer")
    if faces.size and (faces.min() < 0 or faces.max() >= num_verts):
        raise ValueError(f"{source}: field 'f' indexes vertices outside [0, {num_verts})")
    for key, value in arrays.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise ValueError(f"{source}: field {key!r} contains NaN or inf")
    _check_extras(model_dict, source, num_verts)


def _check_extras(model_dict: dict[str, Any], source: str, num_verts: int) -> None:
    """Validate the optional fields of the free model (vertex_ids, coco / h36m regressors)."""
    vertex_ids = model_dict.get("vertex_ids")
    if vertex_ids is not None:
        if not isinstance(vertex_ids, dict):
            raise ValueError(f"{source}: field 'vertex_ids' must be a dict name -> vertex index")
        absent = [key for key in SMPLX_VERTEX_ID_KEYS if key not in vertex_ids]
        if absent:
            raise ValueError(f"{source}: field 'vertex_ids' lacks the smplx keys {absent}")
        bad = {k: v for k, v in vertex_ids.items() if not 0 <= int(v) < num_verts}
        if bad:
            raise ValueError(f"{source}: field 'vertex_ids' has indices outside [0, {num_verts}): {bad}")
    for key, rows in EXTRA_REGRESSORS.items():
        if key in model_dict:
            value = np.asarray(model_dict[key])
            if value.shape != (rows, num_verts):
                raise _shape_error(source, key, value, str((rows, num_verts)))
            if not np.isfinite(value).all():
                raise ValueError(f"{source}: field {key!r} contains NaN or inf")
