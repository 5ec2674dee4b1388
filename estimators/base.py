"""What every estimator g shares: the body model, the output contract, and evaluation.

An estimator is a LightningModule whose ``forward(img)`` returns (B = batch):

- ``pose_rotvec`` (B, 24, 3) SMPL axis-angle (radians), row 0 = global orientation in the crop camera;
- ``betas`` (B, 10);
- ``cam_trans_m`` (B, 3) translation of the mesh in the crop camera (virtual focal length, metres);
- ``vertices_cam_m`` (B, V, 3) the posed mesh + ``cam_trans_m`` (crop camera frame, metres).

Subclasses (``estimators.pose2pose``, ``estimators.hmr``) implement ``forward``, ``training_step`` and
``configure_optimizers``. The base evaluates every validation set with the mks0601 protocol
(reference-spec D.1): H36M-17 joints regressed from the mesh, root-aligned on the regressed pelvis,
14 evaluation joints; logged as ``val/<set>/{mpjpe,pa_mpjpe}_mm`` (+ ``mpvpe_mm`` where GT meshes exist),
and for sets named ``mupots*`` the MuPoTS 3DPCK at 150 mm (``pck3d_all_pct``, ``pck3d_matched_pct``).
"""
from __future__ import annotations

import re
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from annot.body_models import BodyModel
from annot.geometry.cameras import VIRTUAL_FOCAL_PX
from annot.keypoints import H36M_EVAL_JOINTS, convert

EVAL_CONVENTION = "h36m17"


class EstimatorModule(pl.LightningModule):
    """Base of the estimators: body model + evaluation on named validation sets.

    Args:
        body_model_type, body_model_gender, body_model_path: the SMPL-format model (``annot.config``).
        val_set_names: names of the validation dataloaders, in order (``val/<name>/...`` keys).
        config: the resolved run config, stored in the checkpoint so that it describes itself.
    """

    def __init__(self, body_model_type: str = "free", body_model_gender: str = "neutral",
                 body_model_path: str | None = None, val_set_names: tuple[str, ...] = (),
                 config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.body_model = BodyModel.from_config(model_type=body_model_type, gender=body_model_gender,
                                                path=body_model_path)
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

    # ----------------------------------------------------------------- evaluation
    def _gt_eval_joints(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """GT H36M-17 joints (B, 17, 3) metres and GT vertices (B, V, 3) or None.

        With GT SMPL (``smpl_valid``, e.g. 3DPW) the GT mesh is built with the body model and its
        joints regressed like the prediction's; otherwise the dataset's 3D joints (``joints_cam_m`` in
        the ``h36m17`` convention) are used.
        """
        if bool(batch["smpl_valid"].bool().all()):
            pose = batch["smpl_pose_rotvec"].reshape(-1, 72)
            out = self.body_model(pose[:, :3], pose[:, 3:], batch["smpl_betas"], batch["smpl_transl_m"])
            joints, _ = self.body_model.regress(out.vertices_m, EVAL_CONVENTION)
            return joints, out.vertices_m
        return batch["joints_cam_m"], None

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.val_set_names[dataloader_idx]
        pred = self(batch["img"])
        pred_joints, _ = self.body_model.regress(pred["vertices_cam_m"], EVAL_CONVENTION)
        gt_joints, gt_vertices = self._gt_eval_joints(batch)
        metrics = self.val_metrics[name]
        metrics["mpjpe_mm"].update(pred_joints, gt_joints)
        metrics["pa_mpjpe_mm"].update(pred_joints, gt_joints)
        if gt_vertices is not None:
            metrics["mpvpe_mm"].update(pred["vertices_cam_m"], gt_vertices, pred_joints[:, 0], gt_joints[:, 0])
        if name in self._pck_people:
            self._pck_people[name].extend(_mupots_people(batch, pred_joints))

    def on_validation_epoch_end(self) -> None:
        for name, metrics in self.val_metrics.items():
            for key, metric in metrics.items():
                if metric.update_called:
                    self.log(f"val/{name}/{key}", metric.compute(), sync_dist=False)
                metric.reset()
        for name, metric in self.pck_metrics.items():
            people, self._pck_people[name] = self._pck_people[name], []
            if people:
                metric.update(*_group_by_image(people))
                result = metric.compute()
                self.log(f"val/{name}/pck3d_all_pct", result["pck_all"], sync_dist=False)
                self.log(f"val/{name}/pck3d_matched_pct", result["pck_matched"], sync_dist=False)
            metric.reset()


MUPOTS_PREFIX = "mupots"


def _pck_metric():
    from annot.metrics import MuPoTS3DPCK

    return MuPoTS3DPCK()


def _mupots_people(batch: dict[str, Any], pred_joints_h36m: torch.Tensor) -> list[dict[str, Any]]:
    """Per-person inputs of MuPoTS 3DPCK (reference-spec D.4) from an ``h36m17`` evaluation batch.

    The prediction is made root-relative, the **GT root** is added (official protocol), and it is
    projected with the real camera (crop pixels, then original-image pixels through ``crop_to_img``).
    Joints are converted to ``mupots17`` by name (Thorax = Neck, Spine = Torso). The GT 3D joints are the
    json's ``keypoints_cam``; the official script uses ``univ_annot3`` from ``annot.mat`` (not read here).
    People of one image must be on one rank for the per-image 2D matching.
    """
    root = batch["root_cam_m"][:, None]
    pred_cam = pred_joints_h36m - pred_joints_h36m[:, :1] + root
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
        people.append({"image": str(path), "seq": int(match.group(1)),
                       "gt3d": convert_(batch["joints_cam_m"][i] + root[i]), "gt2d": convert_(batch["kp2d_img_px"][i]),
                       "vis": convert_(batch["kp2d_mask"][i][:, None])[:, 0], "pred3d": convert_(pred_cam[i]),
                       "pred2d": convert_(kp_img[i])})
    return people


def _group_by_image(people: list[dict[str, Any]]) -> tuple[list, list, list, list, list, list]:
    """Lists (one entry per image) of stacked GT / predicted people for :class:`MuPoTS3DPCK.update`."""
    images: dict[str, list[dict[str, Any]]] = {}
    for person in people:
        images.setdefault(person["image"], []).append(person)
    stacked = [[torch.stack([p[key] for p in group]) for group in images.values()]
               for key in ("gt3d", "gt2d", "vis", "pred3d", "pred2d")]
    seqs = [group[0]["seq"] for group in images.values()]
    return stacked[0], stacked[1], stacked[2], stacked[3], stacked[4], seqs


def _metric_collection() -> nn.ModuleDict:
    from annot.metrics import MPJPE, MPVPE, PAMPJPE

    return nn.ModuleDict({
        "mpjpe_mm": MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS),
        "pa_mpjpe_mm": PAMPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS),
        "mpvpe_mm": MPVPE(),
    })
