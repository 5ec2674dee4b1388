"""Tests for annot.body_models (resolver, chumpy-free loading, BodyModel) and the two tools.

References are independent of the code under test: the synthetic dicts of ``conftest.py`` (the
source of truth behind every file written), stock ``smplx.SMPL`` as a second implementation, and
hand-built regressors from the indices of reference-spec A.7.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct

from annot.body_models import (
    BodyModel,
    BodyModelNotFoundError,
    check_model_dict,
    load_model_dict,
    resolve_asset,
    resolve_model_file,
    save_model_dict,
)
from annot.body_models.pkl import ChumpyStub

TOOLS = Path(__file__).resolve().parents[1] / "tools"
# COCO-17 from SMPL (spec A.7): ("j", SMPL-24 joint index) or ("v", one-hot vertex id), COCO order.
COCO17_FROM_SMPL = [("v", 331), ("v", 2802), ("v", 6262), ("v", 3489), ("v", 3990), ("j", 16),
                    ("j", 17), ("j", 18), ("j", 19), ("j", 20), ("j", 21), ("j", 1), ("j", 2),
                    ("j", 4), ("j", 5), ("j", 7), ("j", 8)]
FEET_FROM_SMPL = [("v", 3292), ("v", 3313), ("v", 3468), ("v", 6691), ("v", 6713), ("v", 6858)]


def _load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tool_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the tool look their module up
    spec.loader.exec_module(module)
    return module


def _random_params(batch: int, num_betas: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "global_orient_rotvec": 0.5 * torch.randn(batch, 3, generator=gen),
        "body_pose_rotvec": 0.4 * torch.randn(batch, 69, generator=gen),
        "betas": torch.randn(batch, num_betas, generator=gen),
        "transl_m": torch.randn(batch, 3, generator=gen),
    }


def _stock_smpl_output(layer: smplx.SMPL, params: dict[str, torch.Tensor]):
    return layer(betas=params["betas"], body_pose=params["body_pose_rotvec"],
                 global_orient=params["global_orient_rotvec"], transl=params["transl_m"])


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $BODY_MODELS_DIR, cwd = an empty folder (so ./body_models is under our control)."""
    monkeypatch.delenv("BODY_MODELS_DIR", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


# ----------------------------------------------------------------------------------------------
# resolver


def test_resolver_order_explicit_then_env_then_cwd(isolated_env, tmp_path, monkeypatch):
    explicit = _touch(tmp_path / "explicit" / "smpl" / "SMPL_NEUTRAL.pkl")
    env = _touch(tmp_path / "env" / "smpl" / "SMPL_NEUTRAL.pkl")
    cwd = _touch(isolated_env / "body_models" / "smpl" / "SMPL_NEUTRAL.pkl")
    monkeypatch.setenv("BODY_MODELS_DIR", str(tmp_path / "env"))
    assert resolve_model_file("smpl", "neutral", tmp_path / "explicit") == explicit
    assert resolve_model_file("smpl", "neutral", explicit) == explicit  # a file path
    assert resolve_model_file("smpl", "neutral") == env
    monkeypatch.delenv("BODY_MODELS_DIR")
    assert resolve_model_file("smpl", "neutral").resolve() == cwd.resolve()


def test_resolver_layouts_genders_and_free(isolated_env, tmp_path):
    root = tmp_path / "root"
    male_npz = _touch(root / "smpl" / "SMPL_MALE.npz")
    bare = _touch(tmp_path / "bare" / "SMPL_FEMALE.pkl")  # smplx.SMPL-style folder
    free = _touch(root / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl")
    assert resolve_model_file("smpl", "male", root) == male_npz
    assert resolve_model_file("smpl", "female", tmp_path / "bare") == bare
    assert resolve_model_file("free", "neutral", root) == free
    with pytest.raises(ValueError, match="Gender 'male' is not available for model 'free'"):
        resolve_model_file("free", "male", root)
    with pytest.raises(ValueError, match="Unknown body model type 'smplx'"):
        resolve_model_file("smplx", "neutral", root)


def test_explicit_path_does_not_fall_back(isolated_env, tmp_path, monkeypatch):
    _touch(tmp_path / "env" / "smpl" / "SMPL_NEUTRAL.pkl")
    monkeypatch.setenv("BODY_MODELS_DIR", str(tmp_path / "env"))
    with pytest.raises(BodyModelNotFoundError, match="explicit path"):
        resolve_model_file("smpl", "neutral", tmp_path / "typo")


def test_missing_smpl_error_lists_tried_paths_env_and_download(isolated_env, tmp_path, monkeypatch):
    monkeypatch.setenv("BODY_MODELS_DIR", str(tmp_path / "env"))
    with pytest.raises(BodyModelNotFoundError) as info:
        resolve_model_file("smpl", "female")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    env_smpl = tmp_path / "env" / "smpl"
    for tried in (env_smpl / "SMPL_FEMALE.pkl", env_smpl / "SMPL_FEMALE.npz",
                  isolated_env / "body_models" / "smpl" / "SMPL_FEMALE.pkl"):
        assert str(tried) in message
    assert f"$BODY_MODELS_DIR = {tmp_path / 'env'}" in message
    assert "https://smpl.is.tue.mpg.de" in message
    assert "basicmodel_f_lbs_10_207_0_v1.1.0.pkl" in message


def test_missing_free_error_points_at_the_bake(isolated_env):
    with pytest.raises(BodyModelNotFoundError) as info:
        resolve_model_file("free")
    message = str(info.value)
    assert "BODY_MODELS_DIR is not set" in message
    assert str(isolated_env / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl") in message
    assert "make setup" in message and "tools/build_free_body_model.py" in message


def test_missing_error_points_at_original_download_names(isolated_env):
    original = _touch(isolated_env / "body_models" / "smpl" / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")
    with pytest.raises(BodyModelNotFoundError, match="original download names") as info:
        resolve_model_file("smpl", "neutral")
    assert str(original) in str(info.value)


def test_resolve_asset_order_and_error(isolated_env, tmp_path, monkeypatch):
    name = "J_regressor_h36m_smpl.npy"
    in_smpl = _touch(tmp_path / "env" / "smpl" / name)
    monkeypatch.setenv("BODY_MODELS_DIR", str(tmp_path / "env"))
    assert resolve_asset(name) == in_smpl
    top = _touch(tmp_path / "env" / name)
    assert resolve_asset(name) == top  # <root>/<name> before <root>/smpl/<name>
    explicit = _touch(tmp_path / "mine.npy")
    assert resolve_asset(name, explicit) == explicit
    monkeypatch.delenv("BODY_MODELS_DIR")
    with pytest.raises(BodyModelNotFoundError) as info:
        resolve_asset(name)
    message = str(info.value)
    assert str(isolated_env / "body_models" / name) in message
    assert "BODY_MODELS_DIR" in message and "Hand4Whole" in message


# ----------------------------------------------------------------------------------------------
# chumpy-free loading


def _assert_same_fields(loaded: dict, reference: dict) -> None:
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J_regressor", "f", "kintree_table"):
        assert type(loaded[key]) is np.ndarray, key
        np.testing.assert_array_equal(loaded[key], reference[key], err_msg=key)


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_pickle_loads_into_plain_ndarrays(tmp_path, chumpy_smpl_dict, write_chumpy_pickle, protocol):
    path = write_chumpy_pickle(chumpy_smpl_dict, tmp_path / f"p{protocol}.pkl", protocol=protocol)
    if importlib.util.find_spec("chumpy") is None:  # the fixture really needs chumpy for stock pickle
        with pytest.raises(ModuleNotFoundError, match="chumpy"), path.open("rb") as handle:
            pickle.load(handle, encoding="latin1")
    loaded = load_model_dict(path)
    _assert_same_fields(loaded, chumpy_smpl_dict)
    assert loaded["v_template"].dtype == np.float64 and loaded["f"].dtype == np.uint32
    np.testing.assert_allclose(loaded["J"], chumpy_smpl_dict["J_regressor"] @ chumpy_smpl_dict["v_template"])
    assert loaded["bs_style"] == "lbs"
    assert not any(isinstance(v, ChumpyStub) for v in loaded.values())


def test_converted_file_loads_in_stock_smplx(tmp_path, chumpy_smpl_file, chumpy_smpl_dict):
    convert = _load_tool("convert_body_model")
    out = tmp_path / "clean" / "SMPL_NEUTRAL.pkl"
    assert convert.main([str(chumpy_smpl_file), str(out)]) == 0
    assert convert.main([str(chumpy_smpl_file), str(out)]) == 1  # exists, no --force
    stock = smplx.SMPL(model_path=str(out))  # plain pickle.load inside smplx: no chumpy needed
    via_struct = smplx.SMPL(model_path=str(chumpy_smpl_file),
                            data_struct=Struct(**load_model_dict(chumpy_smpl_file)))
    reference = smplx.SMPL(model_path="unused", data_struct=Struct(**chumpy_smpl_dict))
    params = _random_params(3)
    expected = _stock_smpl_output(reference, params)
    for layer in (stock, via_struct):
        output = _stock_smpl_output(layer, params)
        torch.testing.assert_close(output.vertices, expected.vertices, rtol=0, atol=1e-6)
        torch.testing.assert_close(output.joints, expected.joints, rtol=0, atol=1e-6)
    assert not torch.allclose(expected.vertices[0], expected.vertices[1])  # params really vary


@pytest.mark.parametrize("payload", [b"\x00\x01garbage", b"\x80\x04\x95\x10\x00\x00", pickle.dumps([1, 2])])
def test_corrupt_file_raises_value_error_naming_file(tmp_path, isolated_env, payload):
    path = tmp_path / "smpl" / "SMPL_NEUTRAL.pkl"
    path.parent.mkdir()
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=str(path)):
        load_model_dict(path)
    with pytest.raises(ValueError, match=str(path)):
        BodyModel("smpl", path=tmp_path)
    npz = tmp_path / "broken.npz"
    npz.write_bytes(payload)
    with pytest.raises(ValueError, match=str(npz)):
        load_model_dict(npz)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_loader_refuses_non_data_globals(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Exploit(marker)}))
    with pytest.raises(ValueError, match="refusing to unpickle pathlib"):
        load_model_dict(path)
    assert not marker.exists()


def test_derived_chumpy_expression_raises_naming_field(tmp_path, chumpy_smpl_dict, write_chumpy_pickle):
    from tests.conftest import FakeCh, FakeSelect

    model = dict(chumpy_smpl_dict)
    model["weights"] = FakeSelect(FakeCh(model["weights"]), np.arange(4))
    path = write_chumpy_pickle(model, tmp_path / "derived.pkl")
    expected = r"field 'weights' is a derived chumpy expression \(chumpy.reordering.Select"
    with pytest.raises(ValueError, match=expected):
        load_model_dict(path)


def test_save_model_dict_roundtrip_is_atomic(tmp_path, tiny_smpl_dict):
    for name in ("m.pkl", "m.npz"):
        model = {k: v for k, v in tiny_smpl_dict.items()}
        path = save_model_dict(model, tmp_path / "out" / name)
        _assert_same_fields(load_model_dict(path), tiny_smpl_dict)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.npz", "m.pkl"]  # no temp files
    with pytest.raises(ValueError, match="field 'vertex_ids'"):
        save_model_dict({**tiny_smpl_dict, "vertex_ids": {"nose": 1}}, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_check_model_dict_names_file_and_field(tiny_smpl_dict):
    check_model_dict(tiny_smpl_dict, "ok.pkl")
    missing = {k: v for k, v in tiny_smpl_dict.items() if k != "shapedirs"}
    with pytest.raises(ValueError, match=r"m.pkl: missing required field\(s\) \['shapedirs'\]"):
        check_model_dict(missing, "m.pkl")
    bad = {**tiny_smpl_dict, "weights": tiny_smpl_dict["weights"][:, :23]}
    with pytest.raises(ValueError, match="m.pkl: field 'weights' has shape"):
        check_model_dict(bad, "m.pkl")
    nan = {**tiny_smpl_dict, "posedirs": np.full_like(tiny_smpl_dict["posedirs"], np.nan)}
    with pytest.raises(ValueError, match="field 'posedirs' contains NaN"):
        check_model_dict(nan, "m.pkl")


# ----------------------------------------------------------------------------------------------
# BodyModel


def test_forward_matches_stock_smplx(tiny_smpl_file, chumpy_smpl_file, chumpy_smpl_dict):
    params = _random_params(4)
    for path, source in ((tiny_smpl_file, str(tiny_smpl_file)), (chumpy_smpl_file, chumpy_smpl_dict)):
        body_model = BodyModel("smpl", path=path)
        data_struct = None if isinstance(source, str) else Struct(**source)
        stock = smplx.SMPL(model_path=str(tiny_smpl_file), data_struct=data_struct)
        expected = _stock_smpl_output(stock, params)
        output = body_model(**params)
        assert output.vertices_m.shape == (4, 6890, 3) and output.joints_smpl24_m.shape == (4, 24, 3)
        torch.testing.assert_close(output.vertices_m, expected.vertices, rtol=0, atol=1e-6)
        torch.testing.assert_close(output.joints_smpl24_m, expected.joints[:, :24], rtol=0, atol=1e-6)
    assert body_model.faces.dtype == np.int64 and body_model.faces.shape == (2 * 6890, 3)
    assert body_model.num_vertices == 6890 and body_model.num_betas == 10


def test_forward_zero_pose_is_shaped_template_plus_translation(tiny_smpl_file, tiny_smpl_dict):
    body_model = BodyModel.from_config(model_type="smpl", path=tiny_smpl_file)
    betas = torch.tensor([[1.0, -2.0, 0.5, 0, 0, 0, 0, 0, 0, 3.0]])
    transl = torch.tensor([[0.1, -0.2, 3.0]])
    output = body_model(torch.zeros(1, 3), torch.zeros(1, 69), betas, transl)
    shaped = tiny_smpl_dict["v_template"] + tiny_smpl_dict["shapedirs"] @ betas[0].numpy()
    np.testing.assert_allclose(output.vertices_m[0].numpy(), shaped + transl[0].numpy(), atol=1e-5)
    joints = tiny_smpl_dict["J_regressor"] @ shaped + transl[0].numpy()
    np.testing.assert_allclose(output.joints_smpl24_m[0].numpy(), joints, atol=1e-5)


def test_regress_coco_on_smpl_topology_matches_hand_built(tiny_smpl_file, tiny_smpl_dict):
    body_model = BodyModel("smpl", path=tiny_smpl_file)
    vertices = body_model(**_random_params(2)).vertices_m.detach()
    j_regressor = torch.as_tensor(tiny_smpl_dict["J_regressor"])

    def hand_built(spec):
        columns = [vertices[:, idx] if kind == "v" else torch.einsum("v,bvc->bc", j_regressor[idx], vertices)
                   for kind, idx in spec]
        return torch.stack(columns, dim=1)

    joints, mask = body_model.regress(vertices, "coco17")
    assert joints.shape == (2, 17, 3) and mask.dtype == torch.bool and bool(mask.all())
    torch.testing.assert_close(joints, hand_built(COCO17_FROM_SMPL), rtol=0, atol=1e-6)
    joints, mask = body_model.regress(vertices, "coco17_feet")
    assert mask.shape == (23,)
    torch.testing.assert_close(joints, hand_built(COCO17_FROM_SMPL + FEET_FROM_SMPL), rtol=0, atol=1e-6)
    joints, _ = body_model.regress(vertices, "smpl24")
    torch.testing.assert_close(joints, torch.einsum("jv,bvc->bjc", j_regressor, vertices), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown keypoint convention 'mpii17'"):
        body_model.regress(vertices, "mpii17")
    with pytest.raises(ValueError, match=r"vertices_m has shape \(2, 100, 3\)"):
        body_model.regress(vertices[:, :100], "coco17")


# Pose2Pose 33-joint set (spec A.7), written out independently: ("j", SMPL-24 index) or ("v", vertex id).
POSE2POSE33_FROM_SMPL = [("j", 0), ("j", 1), ("j", 2), ("j", 4), ("j", 5), ("j", 7), ("j", 8), ("j", 12),
                         ("j", 16), ("j", 17), ("j", 18), ("j", 19), ("j", 20), ("j", 21),
                         ("v", 2274), ("v", 2270), ("v", 2293), ("v", 2173),
                         ("v", 5595), ("v", 5675), ("v", 5636), ("v", 5655),
                         ("v", 331), ("v", 2802), ("v", 6262), ("v", 3489), ("v", 3990)] + FEET_FROM_SMPL


def test_regress_pose2pose33_on_smpl_topology_is_hand4whole(tiny_smpl_file, tiny_smpl_dict, isolated_env):
    body_model = BodyModel("smpl", path=tiny_smpl_file)
    vertices = body_model(**_random_params(2)).vertices_m.detach()
    j_regressor = torch.as_tensor(tiny_smpl_dict["J_regressor"])
    expected = torch.stack([vertices[:, idx] if kind == "v" else torch.einsum("v,bvc->bc", j_regressor[idx], vertices)
                            for kind, idx in POSE2POSE33_FROM_SMPL], dim=1)
    joints, mask = body_model.regress(vertices, "pose2pose33")
    assert joints.shape == (2, 33, 3) and mask.shape == (33,) and bool(mask.all())
    torch.testing.assert_close(joints, expected, rtol=0, atol=1e-6)
    # the 25-joint PositionNet set is the same rows in its own order (L_Big_toe = 33-set row 27)
    joints25, mask25 = body_model.regress(vertices, "pose2pose25")
    assert bool(mask25.all())
    torch.testing.assert_close(joints25[:, 14], expected[:, 27], rtol=0, atol=1e-6)
    torch.testing.assert_close(joints25[:, 24], expected[:, 22], rtol=0, atol=1e-6)


def test_regress_by_name_on_the_free_layout_masks_missing_joints(tmp_path, make_tiny_smpl_dict):
    model = make_tiny_smpl_dict(num_vertices=500, free_extras=True, seed=5)
    save_model_dict(model, tmp_path / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl")
    body_model = BodyModel("free", path=tmp_path)
    vertices = body_model(**_random_params(2)).vertices_m.detach()
    joints, mask = body_model.regress(vertices, "pose2pose33")

    def rows(regressor, idx):
        return torch.einsum("v,bvc->bc", torch.as_tensor(regressor[idx]), vertices)

    torch.testing.assert_close(joints[:, 1], rows(model["J_regressor"], 1), rtol=0, atol=1e-6)    # L_Hip: SMPL
    torch.testing.assert_close(joints[:, 7], rows(model["J_regressor"], 12), rtol=0, atol=1e-6)   # Neck: SMPL
    torch.testing.assert_close(joints[:, 22], rows(model["coco_regressor"], 0), rtol=0, atol=1e-6)  # Nose
    torch.testing.assert_close(joints[:, 32], rows(model["coco_regressor"], 22), rtol=0, atol=1e-6)  # R_Heel
    assert mask[14:22].tolist() == [False] * 8 and bool(mask[:14].all()) and bool(mask[22:].all())
    assert float(joints[:, 14:22].abs().max()) == 0.0  # hand MCPs: no source on a non-SMPL mesh
    # mpii16: Head_top from the file's h36m regressor, Thorax has no source anywhere
    joints, mask = body_model.regress(vertices, "mpii16")
    torch.testing.assert_close(joints[:, 9], rows(model["h36m_regressor"], 10), rtol=0, atol=1e-6)
    assert mask.tolist() == [True] * 7 + [False] + [True] * 8


def test_regress_by_name_uses_h36m_asset_only_when_installed(tiny_smpl_file, tmp_path, isolated_env, monkeypatch):
    vertices = BodyModel("smpl", path=tiny_smpl_file)(**_random_params(1)).vertices_m.detach()
    _, mask = BodyModel("smpl", path=tiny_smpl_file).regress(vertices, "mpi_inf_3dhp17")
    assert not bool(mask[0]) and bool(mask[1])  # Head_top absent without the asset; Neck from SMPL
    regressor = np.random.default_rng(4).dirichlet(np.ones(6890), size=17)
    (tmp_path / "assets").mkdir()
    np.save(tmp_path / "assets" / "J_regressor_h36m_smpl.npy", regressor)
    monkeypatch.setenv("BODY_MODELS_DIR", str(tmp_path / "assets"))
    joints, mask = BodyModel("smpl", path=tiny_smpl_file).regress(vertices, "mpi_inf_3dhp17")
    expected = torch.einsum("v,bvc->bc", torch.as_tensor(regressor[10], dtype=torch.float32), vertices)
    # float32 sums over 6,890 vertices: their order follows torch's thread count, which an earlier in-process
    # run_annotate (num_threads=1, tests/test_bad_inputs.py) leaves at 1; 1e-6 m failed by 1.3e-6 then
    torch.testing.assert_close(joints[:, 0], expected, rtol=0, atol=1e-5)
    assert bool(mask.all())  # Torso from SMPL (name match), Head and Head_top from the H36M regressor


def test_regress_h36m_uses_the_asset(tiny_smpl_file, tmp_path, isolated_env, monkeypatch):
    regressor = np.random.default_rng(3).dirichlet(np.ones(6890), size=17)
    body_model = BodyModel("smpl", path=tiny_smpl_file)
    vertices = body_model(**_random_params(2)).vertices_m.detach()
    with pytest.raises(BodyModelNotFoundError, match="J_regressor_h36m_smpl.npy"):
        body_model.regress(vertices, "h36m17")
    (tmp_path / "assets").mkdir()
    np.save(tmp_path / "assets" / "J_regressor_h36m_smpl.npy", regressor)
    monkeypatch.setenv("BODY_MODELS_DIR", str(tmp_path / "assets"))
    joints, mask = body_model.regress(vertices, "h36m17")
    expected = torch.einsum("jv,bvc->bjc", torch.as_tensor(regressor, dtype=torch.float32), vertices)
    torch.testing.assert_close(joints, expected, rtol=0, atol=1e-6)
    assert mask.shape == (17,) and bool(mask.all())


def test_regress_uses_the_files_own_regressors(tmp_path, make_tiny_smpl_dict):
    model = make_tiny_smpl_dict(num_vertices=500, free_extras=True, seed=4)
    path = save_model_dict(model, tmp_path / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl")
    body_model = BodyModel("free", path=tmp_path)
    assert body_model.model_file == path
    vertices = body_model(**_random_params(2)).vertices_m.detach()
    for convention, key, rows in (("coco17", "coco_regressor", 17), ("coco17_feet", "coco_regressor", 23),
                                  ("h36m17", "h36m_regressor", 17)):
        joints, mask = body_model.regress(vertices, convention)
        expected = torch.einsum("jv,bvc->bjc", torch.as_tensor(model[key][:rows]), vertices)
        torch.testing.assert_close(joints, expected, rtol=0, atol=1e-6)
        assert mask.shape == (rows,)
    # smplx's extra joints use the file's vertex_ids: joint 24 is the "nose" vertex.
    posed = body_model.layer(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69),
                             global_orient=torch.zeros(1, 3))
    torch.testing.assert_close(posed.joints[0, 24], posed.vertices[0, model["vertex_ids"]["nose"]])


def test_body_model_input_errors(tmp_path, tiny_smpl_file, make_tiny_smpl_dict):
    body_model = BodyModel("smpl", path=tiny_smpl_file)
    params = _random_params(2)
    with pytest.raises(ValueError, match=r"body_pose_rotvec has shape \(2, 72\)"):
        body_model(**{**params, "body_pose_rotvec": torch.zeros(2, 72)})
    with pytest.raises(ValueError, match=r"betas has shape \(1, 10\), expected \(2, 10\)"):
        body_model(**{**params, "betas": torch.zeros(1, 10)})
    with pytest.raises(ValueError, match="num_betas=16 but field 'shapedirs' has 10"):
        BodyModel("smpl", path=tiny_smpl_file, num_betas=16)
    small = make_tiny_smpl_dict(num_vertices=300, vertex_ids=False)
    path = save_model_dict(small, tmp_path / "small.pkl")
    with pytest.raises(ValueError, match="no field 'vertex_ids'"):
        BodyModel("smpl", path=path)
    path = save_model_dict(make_tiny_smpl_dict(num_vertices=300), tmp_path / "small_ids.pkl")
    body_model = BodyModel("smpl", path=path, num_betas=5)
    vertices = body_model(**_random_params(1, num_betas=5)).vertices_m
    with pytest.raises(ValueError, match="not the 6890-vertex SMPL topology"):
        body_model.regress(vertices, "coco17")


def test_free_model_if_installed(monkeypatch):
    monkeypatch.chdir(TOOLS.parent)  # default lookup: $BODY_MODELS_DIR, then the repository's ./body_models
    try:
        path = resolve_model_file("free")
    except BodyModelNotFoundError:
        pytest.skip("free body model not built (make setup)")
    body_model = BodyModel("free")
    assert body_model.model_file.resolve() == path.resolve()
    output = body_model(**_random_params(2))
    assert output.vertices_m.shape == (2, body_model.num_vertices, 3)
    joints, mask = body_model.regress(output.vertices_m, "coco17_feet")
    assert joints.shape == (2, 23, 3) and bool(mask.all()) and torch.isfinite(joints).all()


@pytest.mark.body_models
@pytest.mark.skipif(not os.environ.get("BODY_MODELS_DIR"), reason="needs $BODY_MODELS_DIR with SMPL")
def test_real_smpl_if_installed():
    try:
        resolve_model_file("smpl", "neutral")
    except BodyModelNotFoundError:
        pytest.skip("SMPL_NEUTRAL not under $BODY_MODELS_DIR")
    body_model = BodyModel("smpl")
    assert body_model.num_vertices == 6890
    params = _random_params(2)
    output = body_model(**params)
    stock = smplx.SMPL(model_path="unused", data_struct=Struct(**load_model_dict(body_model.model_file)))
    torch.testing.assert_close(output.vertices_m, _stock_smpl_output(stock, params).vertices)
    joints, _ = body_model.regress(output.vertices_m, "coco17_feet")
    assert joints.shape == (2, 23, 3)


# ----------------------------------------------------------------------------------------------
# tools/check_body_models.py


def _good_tree(root: Path, tiny_smpl_dict: dict, make_tiny_smpl_dict, write_chumpy_pickle) -> None:
    free = make_tiny_smpl_dict(num_vertices=400, free_extras=True)
    save_model_dict(free, root / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl")
    write_chumpy_pickle({**tiny_smpl_dict}, root / "smpl" / "SMPL_NEUTRAL.pkl")
    regressor = np.random.default_rng(0).dirichlet(np.ones(6890), size=17)
    np.save(root / "J_regressor_h36m_smpl.npy", regressor)


def test_check_body_models_good_and_bad_trees(tmp_path, capsys, isolated_env, tiny_smpl_dict,
                                              make_tiny_smpl_dict, write_chumpy_pickle):
    check = _load_tool("check_body_models")
    root = tmp_path / "tree"
    _good_tree(root, tiny_smpl_dict, make_tiny_smpl_dict, write_chumpy_pickle)
    assert check.main(["--root", str(root)]) == 0
    report = capsys.readouterr().out
    assert "free neutral" in report and "smpl neutral" in report and "chumpy pickle" in report
    assert "smpl male" in report and "absent" in report
    # a broken regressor asset and a corrupt SMPL file each fail the check
    np.save(root / "J_regressor_h36m_smpl.npy", np.ones((17, 6890)))
    assert check.main(["--root", str(root)]) == 1
    assert "rows sum to 1" in capsys.readouterr().out
    np.save(root / "J_regressor_h36m_smpl.npy", np.full((17, 6890), 1 / 6890))
    (root / "smpl" / "SMPL_MALE.pkl").write_bytes(b"not a pickle")
    assert check.main(["--root", str(root)]) == 1
    assert "FAILED: smpl male" in capsys.readouterr().out
    # the free model is required
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check.main(["--root", str(empty)]) == 1


def test_provenance_str_subclasses_load_as_str(tmp_path, tiny_smpl_dict):
    # The free-model bake records torch.__version__ (a TorchVersion, a str subclass) in provenance.
    path = tmp_path / "with_provenance.pkl"
    path.write_bytes(pickle.dumps({**tiny_smpl_dict, "provenance": {"torch": torch.__version__}}, protocol=4))
    loaded = load_model_dict(path)
    assert type(loaded["provenance"]["torch"]) is str and loaded["provenance"]["torch"] == str(torch.__version__)
