"""What every estimator g shares: the body model, the output contract, and evaluation.

An estimator is a LightningModule whose ``forward(img)`` returns (B = batch):

- ``pose_rotvec`` (B, 24, 3) SMPL axis-angle (radians), row 0 = global orientation in the crop camera;
- ``betas`` (B, 10);
- ``cam_trans_m`` (B, 3) translation of the mesh in the crop camera (virtual focal length, metres);
- ``vertices_cam_m`` (B, V, 3) the posed mesh + ``cam_trans_m`` (crop camera frame, metres).

Subclasses (``estimators.pose2pose``, ``estimators.hmr``) implement ``forward``, ``training_step`` and
``configure_optimizers``. The base evaluates every validation set with the published protocols
(reference-spec D.1, D.4; README "Evaluation"):

- **mks0601** (Hand4Whole ``data/PW3D/PW3D.py::evaluate``, ``data/Human36M/Human36M.py::evaluate``):
  H36M-17 joints regressed from the mesh with ``J_regressor_h36m_smpl``, root-aligned on the regressed
  pelvis, 14 evaluation joints; logged as ``val/<set>/{mpjpe,pa_mpjpe}_mm``. The GT is chosen by the
  dataset class (``eval_gt``): ``"smpl_mesh"`` (3DPW) builds the GT mesh with the subject's **gendered**
  model (``smpl.layer[gender]``; a missing gendered file falls back to the neutral one with a warning,
  counted in :attr:`EstimatorModule.gender_fallbacks`) and adds ``mpvpe_mm`` and ``pa_mpvpe_mm``;
  ``"joints"`` (Human3.6M and every other set) scores against the dataset's MoCap joints, never against
  an SMPL (pseudo-)GT the loader may also carry (``use_smpl``).
- **MuPoTS-3D 3DPCK** for sets named ``mupots*`` (MPI ``mpii_mupots_multiperson_eval.m`` as run by
  3DMPPE_POSENET_RELEASE / 3DCrowdNet ``data/MuPoTs/MuPoTs.py::evaluate``): predicted MuPoTS joints from
  ``J_regressor_mi_smpl.npy[:17]`` (fallback: the H36M joints converted by name), root-relative at the
  MPI pelvis plus the GT root, projected with the real camera; GT = the dataset's
  :meth:`~annot.data.mupots.MuPoTS.evaluation_gt` (``univ_annot3`` of ``annot.mat``, json fallback), every
  valid GT person of an evaluated image (croppable or not), GT visibility all ones for the 2D matching;
  logged as ``pck3d_all_pct`` / ``pck3d_matched_pct`` and ``pck3d_mi_regressor`` (1 = the MPI regressor
  was used, 0 = the fallback).
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from annot.body_models import BodyModel, BodyModelNotFoundError, resolve_asset
from annot.geometry.cameras import VIRTUAL_FOCAL_PX
from annot.keypoints import H36M_EVAL_JOINTS, convert

log = logging.getLogger(__name__)

EVAL_CONVENTION = "h36m17"
GENDERS = ("neutral", "male", "female")
#: MPI-INF-3DHP joint regressor for SMPL (3DCrowdNet / I2L ``J_regressor_mi_smpl.npy``); rows 0..16 are
#: the ``mupots17`` joints.
MI_REGRESSOR_ASSET = "J_regressor_mi_smpl.npy"
MUPOTS_REGRESSOR_MI = "J_regressor_mi_smpl[:17]"
MUPOTS_REGRESSOR_BY_NAME = "J_regressor_h36m_smpl, joints by name"
MUPOTS_ROOT = 14  # Pelvis in mupots17


class EstimatorModule(pl.LightningModule):
    """Base of the estimators: body model + evaluation on named validation sets.

    Args:
        body_model_type, body_model_gender, body_model_path: the SMPL-format model (``annot.config``).
            The GT meshes of 3DPW use the same type and path with the subject's gender.
        val_set_names: names of the validation dataloaders, in order (``val/<name>/...`` keys).
        config: the resolved run config, stored in the checkpoint so that it describes itself.

    Attributes:
        gender_fallbacks: ``Counter`` of GT samples (by requested gender) whose gendered body model was
            missing and that were built with the neutral one instead.
        mupots_regressor_used: which joints the last MuPoTS evaluation scored (``MUPOTS_REGRESSOR_MI`` or
            ``MUPOTS_REGRESSOR_BY_NAME``), or None before one.
    """

    def __init__(self, body_model_type: str = "free", body_model_gender: str = "neutral",
                 body_model_path: str | None = None, val_set_names: tuple[str, ...] = (),
                 config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.body_model = BodyModel.from_config(model_type=body_model_type, gender=body_model_gender,
                                                path=body_model_path)
        self._body_model_spec = (body_model_type, body_model_gender, body_model_path)
        self._gt_body_models: dict[str, BodyModel] = {}  # plain dict: not part of the state dict
        self.gender_fallbacks: Counter[str] = Counter()
        self._mi_regressor: tuple[torch.Tensor | None, str] | None = None
        self.mupots_regressor_used: str | None = None
        self._mupots_gt: dict[str, dict[str, dict[str, Any]]] = {}
        self.val_set_names = tuple(val_set_names)
        self.val_metrics = nn.ModuleDict({name: _metric_collection() for name in self.val_set_names})
        self.pck_metrics = nn.ModuleDict({name: _pck_metric() for name in self.val_set_names
                                          if name.startswith(MUPOTS_PREFIX)})
        self._pck_people: dict[str, list[dict[str, Any]]] = {name: [] for name in self.pck_metrics}

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- crop camera
    def crop_hw(self) -> tuple[int, int]:
        """``(H, W)`` pixels of the crops ``forward`` takes: ``input_hw`` (Pose2Pose) or
        ``input_size`` x ``input_size`` (HMR). Subclasses with another attribute override this.

        Raises:
            NotImplementedError: the subclass has neither attribute.
        """
        if hasattr(self, "input_hw"):
            height, width = self.input_hw
            return int(height), int(width)
        if hasattr(self, "input_size"):
            return int(self.input_size), int(self.input_size)
        raise NotImplementedError(f"{type(self).__name__}: define crop_hw() (no input_hw / input_size attribute)")

    def crop_camera(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The virtual pinhole camera in which ``vertices_cam_m`` is predicted, in *crop* pixels.

        Pose2Pose: focal 5000, principal point at the crop centre (spec B.2.6, B.6). HMR/SPIN projects
        with focal 5000 about the centre and normalises by half the crop, i.e. the same camera with
        principal point ``(S/2, S/2)`` (spec B.8). ``hparams.focal_px`` is used when the module has one.

        Returns:
            ``focal_px`` (2,) ``(fx, fy)`` and ``princpt_px`` (2,) ``(W/2, H/2)``, float32 tensors (CPU).
        """
        height, width = self.crop_hw()
        focal = float(self.hparams.get("focal_px", VIRTUAL_FOCAL_PX))
        return torch.tensor([focal, focal]), torch.tensor([width / 2.0, height / 2.0])

    # ----------------------------------------------------------------- GT body models
    def gt_body_model(self, gender: str) -> BodyModel:
        """The body model GT meshes of ``gender`` are built with (mks0601 ``smpl.layer[gender]``), loaded
        once and cached: the configured type and folder with that gender; the neutral model (with one
        warning per gender; samples counted in :attr:`gender_fallbacks` by the caller) when the gendered
        file is missing or the model family has none (the free model ships only a neutral file).

        Raises:
            ValueError: ``gender`` is not ``"neutral"``, ``"male"`` or ``"female"``.
        """
        if gender not in GENDERS:
            raise ValueError(f"GT SMPL gender must be one of {GENDERS}, got {gender!r} (field 'smpl_gender')")
        if gender not in self._gt_body_models:
            model_type, own_gender, path = self._body_model_spec
            if gender == own_gender:
                model = self.body_model
            else:
                try:
                    model = BodyModel.from_config(model_type=model_type, gender=gender, path=_model_folder(path))
                except (BodyModelNotFoundError, ValueError) as err:
                    log.warning("GT meshes of gender %r are built with the %s model instead (%s: %s)", gender,
                                own_gender, type(err).__name__, str(err).splitlines()[0])
                    model = self.body_model
            self._gt_body_models[gender] = model
        return self._gt_body_models[gender]

    def gt_mesh(self, batch: dict[str, Any]) -> torch.Tensor:
        """GT vertices (B, V, 3) metres, camera frame, from the batch's SMPL with each sample's gender
        (``smpl_gender``, default neutral); samples whose gendered model is missing are counted in
        :attr:`gender_fallbacks`."""
        pose = batch["smpl_pose_rotvec"].reshape(-1, 72)
        genders = list(batch.get("smpl_gender") or ["neutral"] * pose.shape[0])
        vertices = pose.new_zeros(pose.shape[0], self.body_model.num_vertices, 3)
        for gender in sorted(set(genders)):
            idx = torch.tensor([i for i, g in enumerate(genders) if g == gender], device=pose.device)
            model = self.gt_body_model(gender).to(pose.device)
            if model is self.body_model and gender != self._body_model_spec[1]:
                self.gender_fallbacks[gender] += len(idx)
            out = model(pose[idx, :3], pose[idx, 3:], batch["smpl_betas"][idx], batch["smpl_transl_m"][idx])
            vertices[idx] = out.vertices_m.to(vertices.dtype)
        return vertices

    # ----------------------------------------------------------------- evaluation
    def _gt_eval_joints(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """GT H36M-17 joints (B, 17, 3) metres and GT vertices (B, V, 3) or None.

        For a set whose dataset class scores against a mesh (``eval_gt == "smpl_mesh"``: 3DPW) with GT
        SMPL on every sample, the GT mesh is built with the gendered model (:meth:`gt_mesh`) and its joints
        regressed like the prediction's; otherwise (Human3.6M and the rest, whatever ``use_smpl`` says)
        the dataset's MoCap 3D joints (``joints_cam_m`` in ``h36m17``).
        """
        if _eval_gt_source(batch) == "smpl_mesh" and bool(batch["smpl_valid"].bool().all()):
            vertices = self.gt_mesh(batch)
            joints, _ = self.body_model.regress(vertices, EVAL_CONVENTION)
            return joints, vertices
        return batch["joints_cam_m"], None

    def mupots_regressor(self) -> tuple[torch.Tensor | None, str]:
        """``(regressor (17, V) float32 or None, name)`` of the predicted MuPoTS joints: the MPI-INF-3DHP
        regressor ``J_regressor_mi_smpl.npy[:17]`` (3DCrowdNet ``MuPoTs.py``) when installed next to the
        body models and of this model's vertex count, else ``None`` (the H36M joints converted by name)."""
        if self._mi_regressor is None:
            regressor, name = None, MUPOTS_REGRESSOR_BY_NAME
            try:
                array = np.load(resolve_asset(MI_REGRESSOR_ASSET, _asset_folder(self._body_model_spec[2])))
                if array.ndim == 2 and array.shape[0] >= 17 and array.shape[1] == self.body_model.num_vertices:
                    regressor, name = torch.from_numpy(np.asarray(array[:17], np.float32)), MUPOTS_REGRESSOR_MI
                else:
                    log.warning("%s has shape %s, not (>=17, %d): MuPoTS joints from the H36M regressor",
                                MI_REGRESSOR_ASSET, array.shape, self.body_model.num_vertices)
            except BodyModelNotFoundError:
                log.info("%s not installed: MuPoTS joints from the H36M regressor by name", MI_REGRESSOR_ASSET)
            self._mi_regressor = (regressor, name)
        return self._mi_regressor

    def _mupots_pred_joints(self, vertices_m: torch.Tensor, pred_h36m: torch.Tensor) -> torch.Tensor:
        """Predicted ``mupots17`` joints (B, 17, 3) metres (see :meth:`mupots_regressor`)."""
        regressor, name = self.mupots_regressor()
        self.mupots_regressor_used = name
        if regressor is None:
            return convert(pred_h36m, EVAL_CONVENTION, "mupots17")[0]
        return torch.einsum("jv,bvc->bjc", regressor.to(vertices_m), vertices_m)

    def attach_mupots_gt(self, name: str, gt: dict[str, dict[str, Any]] | None) -> None:
        """Use ``gt`` (:meth:`annot.data.mupots.MuPoTS.evaluation_gt`) as the GT people of set ``name``
        (None detaches). Found automatically on the trainer's validation dataloaders when not attached."""
        if gt is None:
            self._mupots_gt.pop(name, None)
        else:
            self._mupots_gt[name] = gt

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.val_set_names[dataloader_idx]
        pred = self(batch["img"])
        pred_joints, _ = self.body_model.regress(pred["vertices_cam_m"], EVAL_CONVENTION)
        gt_joints, gt_vertices = self._gt_eval_joints(batch)
        metrics = self.val_metrics[name]
        metrics["mpjpe_mm"].update(pred_joints, gt_joints)
        metrics["pa_mpjpe_mm"].update(pred_joints, gt_joints)
        if gt_vertices is not None:
            roots = (pred_joints[:, 0], gt_joints[:, 0])
            metrics["mpvpe_mm"].update(pred["vertices_cam_m"], gt_vertices, *roots)
            metrics["pa_mpvpe_mm"].update(pred["vertices_cam_m"], gt_vertices, *roots)
        if name in self._pck_people:
            mupots_joints = self._mupots_pred_joints(pred["vertices_cam_m"], pred_joints)
            self._pck_people[name].extend(_mupots_people(batch, mupots_joints))

    def on_validation_epoch_end(self) -> None:
        for name, metrics in self.val_metrics.items():
            for key, metric in metrics.items():
                if metric.update_called:
                    self.log(f"val/{name}/{key}", metric.compute(), sync_dist=False)
                metric.reset()
        for index, name in enumerate(self.val_set_names):
            if name not in self.pck_metrics:
                continue
            metric = self.pck_metrics[name]
            people, self._pck_people[name] = self._pck_people[name], []
            if people:
                metric.update(*_mupots_images(people, self._mupots_gt.get(name) or self._loader_gt(index)))
                result = metric.compute()
                self.log(f"val/{name}/pck3d_all_pct", result["pck_all"], sync_dist=False)
                self.log(f"val/{name}/pck3d_matched_pct", result["pck_matched"], sync_dist=False)
                self.log(f"val/{name}/pck3d_mi_regressor", float(self.mupots_regressor_used == MUPOTS_REGRESSOR_MI),
                         sync_dist=False)
            metric.reset()

    def _loader_gt(self, index: int) -> dict[str, dict[str, Any]] | None:
        """``evaluation_gt()`` of the dataset behind validation dataloader ``index``, when it has one."""
        trainer = self._trainer
        loaders = getattr(trainer, "val_dataloaders", None) if trainer is not None else None
        if loaders is None:
            return None
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        dataset = getattr(loaders[index], "dataset", None) if index < len(loaders) else None
        return dataset.evaluation_gt() if hasattr(dataset, "evaluation_gt") else None

    def protocol_notes(self) -> dict[str, Any]:
        """What the last evaluation used besides its numbers: ``gt_gender_fallbacks`` ({gender: samples})
        and ``mupots_regressor``."""
        return {"gt_gender_fallbacks": dict(self.gender_fallbacks), "mupots_regressor": self.mupots_regressor_used}


MUPOTS_PREFIX = "mupots"


def _model_folder(path: str | None) -> str | Path | None:
    """The folder to look up another gender in: an explicit model *file* names only itself."""
    if path is None:
        return None
    path = Path(path)
    return path.parent if path.suffix.lower() in (".pkl", ".npz") else path


def _asset_folder(path: str | None) -> str | Path | None:
    """Where to look for regressor assets: the explicit model folder (or its file's folder and parent)."""
    if path is None:
        return None
    folder = Path(_model_folder(path))
    return folder.parent if folder.name in ("smpl", "free") else folder


def _eval_gt_source(batch: dict[str, Any]) -> str:
    """``"smpl_mesh"`` when every sample's dataset class scores against GT meshes (``eval_gt``), else
    ``"joints"``; a batch without ``dataset`` names keeps the old rule (mesh when SMPL is given)."""
    from annot.data.registry import DATASETS

    names = batch.get("dataset")
    if names is None:
        return "smpl_mesh"
    names = [names] if isinstance(names, str) else list(names)
    sources = {getattr(DATASETS.get(n), "eval_gt", "joints") for n in names}
    return "smpl_mesh" if sources == {"smpl_mesh"} else "joints"


def _pck_metric():
    from annot.metrics import MuPoTS3DPCK

    return MuPoTS3DPCK()


def _mupots_people(batch: dict[str, Any], pred_joints_mupots: torch.Tensor) -> list[dict[str, Any]]:
    """Per-person inputs of MuPoTS 3DPCK (reference-spec D.4) from an evaluation batch.

    ``pred_joints_mupots`` (B, 17, 3) metres, ``mupots17``, any frame (only root-relative positions are
    used): made relative to its MPI pelvis (index 14), the **GT root** (``root_cam_m``, the json's
    ``keypoints_cam`` pelvis) added (3DCrowdNet), then projected with the real camera (crop pixels, then
    original-image pixels through ``crop_to_img``). The batch's own GT (``joints_cam_m`` + root,
    ``kp2d_img_px``, converted to ``mupots17`` by name) is kept as the fallback GT when the dataset has
    no :meth:`evaluation_gt`. People of one image must be on one rank for the per-image 2D matching.
    """
    root = batch["root_cam_m"][:, None]
    pred_cam = pred_joints_mupots - pred_joints_mupots[:, MUPOTS_ROOT:MUPOTS_ROOT + 1] + root
    kp_crop = pred_cam[..., :2] / pred_cam[..., 2:].clamp(min=1e-4) * batch["real_focal_crop_px"][:, None] \
        + batch["real_princpt_crop_px"][:, None]
    affine = batch["crop_to_img"]
    kp_img = kp_crop @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]
    people = []
    for i, path in enumerate(batch["image_path"]):
        match = re.search(r"TS(\d+)", str(path))
        if match is None:
            raise ValueError(f"MuPoTS image path {path!r} (sample {batch['sample_id'][i]}) has no TS<n> sequence")
        convert_ = lambda x: convert(x.detach().float().cpu(), EVAL_CONVENTION, "mupots17")[0]  # noqa: E731
        people.append({"image": str(path), "seq": int(match.group(1)), "sample_id": str(batch["sample_id"][i]),
                       "gt3d": convert_(batch["joints_cam_m"][i] + root[i]), "gt2d": convert_(batch["kp2d_img_px"][i]),
                       "pred3d": pred_cam[i].detach().float().cpu(), "pred2d": kp_img[i].detach().float().cpu()})
    return people


def _mupots_images(people: list[dict[str, Any]], gt: dict[str, dict[str, Any]] | None
                   ) -> tuple[list, list, None, list, list, list]:
    """Arguments of :meth:`MuPoTS3DPCK.update` (one entry per image; GT visibility ``None`` = all ones, as
    the MATLAB script).

    With the dataset's evaluation GT ``gt`` (``{image_path: {"seq", "gt_joints_m" (G, 17, 3),
    "gt_kp2d_px" (G, 17, 2), "sample_ids"}}``): every image of ``gt`` when every sample listed there was
    evaluated (else, with a warning, only the images seen), each with **all** its valid GT people, so an
    image or person without a prediction (e.g. a box outside the image) counts as misses in "all".
    Without it: the GT people are the predicted ones (the batch's GT).
    """
    images: dict[str, list[dict[str, Any]]] = {}
    for person in people:
        images.setdefault(person["image"], []).append(person)
    empty3, empty2 = torch.zeros(0, 17, 3), torch.zeros(0, 17, 2)

    def stack(group: list[dict[str, Any]], key: str, empty: torch.Tensor) -> torch.Tensor:
        return torch.stack([p[key] for p in group]) if group else empty

    if gt is None:
        keys = list(images)
        gt3d = [stack(images[k], "gt3d", empty3) for k in keys]
        gt2d = [stack(images[k], "gt2d", empty2) for k in keys]
        seqs = [images[k][0]["seq"] for k in keys]
    else:
        expected = {str(sid) for entry in gt.values() for sid in entry.get("sample_ids", ())}
        complete = expected <= {str(p["sample_id"]) for p in people}
        if not complete:
            log.warning("MuPoTS evaluation saw %d of %d samples (limit_val_batches?): scoring only the %d images "
                        "seen, not every GT image", len(people), len(expected), len(images))
        keys = list(gt) if complete else [k for k in gt if k in images]
        missing = [k for k in images if k not in gt]
        if missing:
            raise ValueError(f"MuPoTS evaluation: {len(missing)} predicted image(s) have no GT entry, "
                             f"e.g. {missing[0]}")
        gt3d = [torch.as_tensor(gt[k]["gt_joints_m"], dtype=torch.float32).reshape(-1, 17, 3) for k in keys]
        gt2d = [torch.as_tensor(gt[k]["gt_kp2d_px"], dtype=torch.float32).reshape(-1, 17, 2) for k in keys]
        seqs = [int(gt[k]["seq"]) for k in keys]
    pred3d = [stack(images.get(k, []), "pred3d", empty3) for k in keys]
    pred2d = [stack(images.get(k, []), "pred2d", empty2) for k in keys]
    return gt3d, gt2d, None, pred3d, pred2d, seqs


def _metric_collection() -> nn.ModuleDict:
    from annot.metrics import MPJPE, MPVPE, PAMPJPE, PAMPVPE

    return nn.ModuleDict({
        "mpjpe_mm": MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS),
        "pa_mpjpe_mm": PAMPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS),
        "mpvpe_mm": MPVPE(),
        "pa_mpvpe_mm": PAMPVPE(),
    })
