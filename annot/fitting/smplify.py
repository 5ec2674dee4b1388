"""SMPLify-style optimisation baselines: 2D keypoints -> SMPL (``SMPLify2D``) and 3D joints -> SMPL (``SMPLify3D``).

Written for this project after the published recipes, not copied from them:

* SMPLify (Bogo et al., ECCV 2016) and its re-implementations SPIN ``smplify/smplify.py`` /
  ``smplify/losses.py`` (reference-spec D.5) and SMPLify-X ``smplifyx/fitting.py``: a camera stage on the
  torso joints with a depth-deviation penalty, then body stages with a Geman-McClure 2D data term and pose /
  shape priors whose weights decrease stage by stage (SMPLify-X's ``body_pose_prior_weights``
  404, 404, 57.4, 4.78 and ``shape_weights`` 100, 50, 10, 5, each squared as SPIN / SMPLify-X do).
* The 3D variant of NeuralAnnot's supplementary B (Moon et al., CVPRW 2022): a rigid SVD camera
  initialisation on hips and shoulders and a 3D Geman-McClure data term in metres with weight 1e6.

All samples of a call are optimised together in one batch on the inputs' device; with Adam (default, as
SPIN) the per-element updates keep the samples independent, so the batch only amortises the time.
Priors: ``"vposer"`` optimises a VPoser latent z with ``|z|^2`` (SMPLify-X); ``"none"`` optimises the 69
body-pose axis-angle values with an L2 on them (a stand-in for SPIN's GMM, which is not free) plus
SPIN's elbow / knee bending penalty ``15.2^2 * sum exp(+-pose[...])^2`` (reference-spec D.5).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from torch import Tensor, nn

from annot.geometry.cameras import perspective_project
from annot.geometry.rotations import rotmat_to_rotvec
from annot.keypoints import get_convention

TORSO_JOINTS: tuple[str, ...] = ("L_Shoulder", "R_Shoulder", "L_Hip", "R_Hip")
#: SMPLify-X body-stage weights (``body_pose_prior_weights``, ``shape_weights``); squared when applied.
POSE_PRIOR_WEIGHTS: tuple[float, ...] = (404.0, 404.0, 57.4, 4.78)
SHAPE_PRIOR_WEIGHTS: tuple[float, ...] = (100.0, 50.0, 10.0, 5.0)
#: SPIN ``angle_prior``: body-pose (69-vector) entries of the elbows' y and knees' x rotations and the sign
#: that makes their natural bending direction free (spec D.5 indices 55, 58, 12, 15 of the 72-vector - 3).
BEND_INDICES: tuple[int, ...] = (52, 55, 9, 12)
BEND_SIGNS: tuple[float, ...] = (1.0, -1.0, -1.0, -1.0)
BEND_WEIGHT = 15.2
DEPTH_WEIGHT = 100.0
PRIORS = ("none", "vposer")


def gmof(residual: Tensor, sigma: float) -> Tensor:
    """Geman-McClure robust error ``x^2 sigma^2 / (x^2 + sigma^2)`` element-wise (SMPLify ``GMoF``).

    Args:
        residual: any shape, any unit (pixels for the 2D term, metres for the 3D term).
        sigma: scale in the unit of ``residual``; ~``x^2`` for ``|x| << sigma``, saturates at ``sigma^2``.

    Returns:
        Tensor of ``residual``'s shape, in squared units.

    Raises:
        ValueError: ``sigma <= 0``.
    """
    if sigma <= 0:
        raise ValueError(f"gmof: sigma must be > 0, got {sigma}")
    sq = residual.pow(2)
    return sq * sigma**2 / (sq + sigma**2)


def adam_minimise(leaves: list[Tensor], objective: Any, iters: int, lr: float) -> float:
    """Adam (betas 0.9, 0.999) on the leaf tensors ``leaves`` for ``iters`` steps of ``objective() -> (B,)``
    summed over the batch; the leaves are updated in place and left with ``requires_grad`` off.

    Returns:
        The summed objective of the last step (nan when ``iters`` is 0).
    """
    for leaf in leaves:
        leaf.requires_grad_(True)
    opt = torch.optim.Adam(leaves, lr=lr, betas=(0.9, 0.999))
    loss = torch.tensor(float("nan"))
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        loss = objective().sum()
        loss.backward()
        opt.step()
    for leaf in leaves:
        leaf.requires_grad_(False)
    return float(loss.detach())


@dataclass
class FitResult:
    """Output of a SMPLify fit (camera frame of the inputs, OpenCV axes, metres).

    ``pose_rotvec`` (B, 24, 3) axis-angle (row 0 global orientation, rows 22/23 zero); ``betas`` (B, num_betas);
    ``transl_m`` (B, 3) SMPL ``transl``; ``z`` (B, D) VPoser code or None; ``kp2d_err_px`` (B,) mean 2D error
    over confident keypoints (2D fit) or ``joints_err_m`` (B,) mean 3D error (3D fit); ``loss`` (B,) final
    objective per sample; ``seconds`` wall time of the whole batched fit; ``history`` stage losses.
    """

    pose_rotvec: Tensor
    betas: Tensor
    transl_m: Tensor
    loss: Tensor
    seconds: float
    z: Tensor | None = None
    kp2d_err_px: Tensor | None = None
    joints_err_m: Tensor | None = None
    history: list[float] = field(default_factory=list)


def _names_index(convention: str, names: Sequence[str]) -> list[int]:
    conv = get_convention(convention)
    missing = [n for n in names if n not in conv.joint_names]
    if missing:
        raise ValueError(f"SMPLify: convention {convention!r} lacks joints {missing}")
    return [conv.index(n) for n in names]


class KeypointBodyModel(nn.Module):
    """Exact keypoints of a body model without posing the mesh: LBS contracted with the keypoint regressor.

    The keypoints are linear in the vertices (``K = R @ V``) and each LBS vertex is a skinning-weighted sum
    of per-bone rigid transforms of its shape- and pose-blended rest position, so
    ``K_k = sum_j A_j (a_kj + S_kj beta + P_kj p)`` with ``a, S, P`` the template, shape and pose blend
    shapes contracted with ``R_kv W_vj`` once here (smplx ``lbs`` re-expressed, same parents, same Rodrigues,
    same pose feature). It costs O(K x 24) instead of O(V) per sample, which is what makes a batched SMPLify
    on CPU affordable; the output equals ``BodyModel.regress(BodyModel(...).vertices_m, convention)``.

    Args:
        body_model: :class:`annot.body_models.BodyModel`.
        convention: keypoint convention (anything ``body_model.regress`` accepts).

    Call: ``(global_orient_rotvec (B,3), body_pose_rotvec (B,69), betas (B,nb), transl_m (B,3))`` ->
    ``(keypoints (B, K, 3), root_joint (B, 3))`` in metres, camera / world frame of ``transl_m``.
    """

    def __init__(self, body_model: Any, convention: str) -> None:
        super().__init__()
        layer = body_model.layer
        reg, _ = body_model.regressor(convention)
        reg = torch.as_tensor(reg, dtype=torch.float64)
        weights = layer.lbs_weights.detach().double()
        num_verts = weights.shape[0]
        template = layer.v_template.detach().double()
        shapedirs = layer.shapedirs.detach().double()
        posedirs = layer.posedirs.detach().double().reshape(-1, num_verts, 3)
        mixed = reg[:, :, None] * weights[None]  # (K, V, 24)
        j_reg = layer.J_regressor.detach().double()
        dtype = layer.v_template.dtype
        self.convention = convention
        self.register_buffer("template", torch.einsum("kvj,vc->kjc", mixed, template).to(dtype))
        self.register_buffer("shape_dirs", torch.einsum("kvj,vcb->kjcb", mixed, shapedirs).to(dtype))
        self.register_buffer("pose_dirs", torch.einsum("kvj,pvc->kjcp", mixed, posedirs).to(dtype))
        self.register_buffer("bone_weight", mixed.sum(1).to(dtype))
        self.register_buffer("joint_template", (j_reg @ template).to(dtype))
        self.register_buffer("joint_shape_dirs", torch.einsum("jv,vcb->jcb", j_reg, shapedirs).to(dtype))
        self.register_buffer("parents", layer.parents.detach().clone())

    def forward(self, global_orient_rotvec: Tensor, body_pose_rotvec: Tensor, betas: Tensor,
                transl_m: Tensor) -> tuple[Tensor, Tensor]:
        batch = betas.shape[0]
        pose = torch.cat([global_orient_rotvec, body_pose_rotvec], dim=1).reshape(-1, 3)
        rot = batch_rodrigues(pose).reshape(batch, -1, 3, 3)
        joints = self.joint_template + torch.einsum("jcb,nb->njc", self.joint_shape_dirs, betas)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(batch, -1)
        posed_joints, rel = batch_rigid_transform(rot, joints, self.parents)
        local = (self.template + torch.einsum("kjcb,nb->nkjc", self.shape_dirs, betas)
                 + torch.einsum("kjcp,np->nkjc", self.pose_dirs, pose_feature))
        keypoints = (torch.einsum("njrc,nkjc->nkr", rel[:, :, :3, :3], local)
                     + torch.einsum("kj,njr->nkr", self.bone_weight, rel[:, :, :3, 3]))
        return keypoints + transl_m[:, None], posed_joints[:, 0] + transl_m


class _SMPLifyBase:
    """Shared parameters, priors and optimisation loop of :class:`SMPLify2D` / :class:`SMPLify3D`."""

    def __init__(self, body_model: Any, prior: str = "none", vposer: Any = None,
                 num_iters_per_stage: int = 100, lr: float = 1e-2,
                 pose_prior_weights: Sequence[float] = POSE_PRIOR_WEIGHTS,
                 shape_prior_weights: Sequence[float] = SHAPE_PRIOR_WEIGHTS,
                 bend_weight: float = BEND_WEIGHT, refine_transl: bool = True) -> None:
        if prior not in PRIORS:
            raise ValueError(f"SMPLify: prior must be one of {PRIORS}, got {prior!r}")
        if prior == "vposer" and vposer is None:
            raise ValueError("SMPLify: prior 'vposer' needs a VPoser (annot.priors.load_vposer)")
        if len(pose_prior_weights) != len(shape_prior_weights):
            raise ValueError("SMPLify: pose_prior_weights and shape_prior_weights need the same length")
        self.body_model, self.prior, self.vposer = body_model, prior, vposer
        self.num_iters_per_stage, self.lr = int(num_iters_per_stage), float(lr)
        self.pose_prior_weights = tuple(float(w) for w in pose_prior_weights)
        self.shape_prior_weights = tuple(float(w) for w in shape_prior_weights)
        self.bend_weight, self.refine_transl = float(bend_weight), bool(refine_transl)
        self._keypoint_models: dict[str, KeypointBodyModel] = {}
        if vposer is not None:
            for p in vposer.parameters():
                p.requires_grad_(False)
            vposer.eval()

    # -------------------------------------------------------------- parameters
    def _init_params(self, batch: int, like: Tensor, init: dict[str, Tensor] | None,
                     default_orient: Tensor) -> dict[str, Tensor]:
        """Leaf tensors: ``global_orient`` (B,3), ``body`` (B,69) or ``z`` (B,D), ``betas``, ``transl`` (B,3)."""
        init = init or {}
        kw = dict(device=like.device, dtype=like.dtype)
        nb = self.body_model.num_betas
        params = {"global_orient": init.get("global_orient", default_orient.expand(batch, 3)).to(**kw).clone(),
                  "betas": init.get("betas", torch.zeros(batch, nb)).to(**kw).clone(),
                  "transl": init.get("transl", torch.zeros(batch, 3)).to(**kw).clone()}
        if self.prior == "vposer":
            params["z"] = init.get("z", torch.zeros(batch, self.vposer.latent_dim)).to(**kw).clone()
        else:
            params["body"] = init.get("body_pose", torch.zeros(batch, 69)).to(**kw).clone().reshape(batch, 69)
        return params

    def _body_pose(self, params: dict[str, Tensor]) -> Tensor:
        if self.prior == "vposer":
            pose21 = self.vposer.decode(params["z"])["pose_body"].reshape(-1, 63)
            return torch.cat([pose21, pose21.new_zeros(pose21.shape[0], 6)], dim=1)
        return params["body"]

    def _keypoint_model(self, convention: str, like: Tensor) -> KeypointBodyModel:
        """The cached :class:`KeypointBodyModel` of ``convention`` on ``like``'s device / dtype."""
        if convention not in self._keypoint_models:
            self._keypoint_models[convention] = KeypointBodyModel(self.body_model, convention)
        model = self._keypoint_models[convention].to(device=like.device, dtype=like.dtype)
        self._keypoint_models[convention] = model
        return model

    def _joints(self, params: dict[str, Tensor], convention: str, with_root: bool = False) -> Any:
        """Model keypoints (B, J, 3) in the camera frame, metres (and the SMPL root joint (B, 3))."""
        model = self._keypoint_model(convention, params["betas"])
        joints, root = model(params["global_orient"], self._body_pose(params), params["betas"], params["transl"])
        return (joints, root) if with_root else joints

    def _prior_terms(self, params: dict[str, Tensor], stage: int) -> Tensor:
        """(B,) pose prior + bending penalty + shape prior of body stage ``stage``."""
        pose_w, shape_w = self.pose_prior_weights[stage], self.shape_prior_weights[stage]
        body = self._body_pose(params)
        code = params["z"] if self.prior == "vposer" else body[:, :63]
        signs = body.new_tensor(BEND_SIGNS)
        bend = torch.exp(body[:, list(BEND_INDICES)] * signs).pow(2).sum(1)
        return (pose_w**2 * code.pow(2).sum(1) + self.bend_weight**2 * bend
                + shape_w**2 * params["betas"].pow(2).sum(1))

    def _optimise(self, leaves: list[Tensor], objective: Any, history: list[float]) -> None:
        """Adam on ``leaves`` for ``num_iters_per_stage`` steps of ``objective() -> (B,)`` summed over B."""
        history.append(adam_minimise(leaves, objective, self.num_iters_per_stage, self.lr))

    def _body_leaves(self, params: dict[str, Tensor]) -> list[Tensor]:
        names = ["global_orient", "betas", "z" if self.prior == "vposer" else "body"]
        if self.refine_transl:
            names.append("transl")
        return [params[n] for n in names]

    def _result(self, params: dict[str, Tensor], loss: Tensor, start: float, history: list[float],
                **errors: Tensor) -> FitResult:
        with torch.no_grad():
            body = self._body_pose(params)
            batch = body.shape[0]
            pose = torch.cat([params["global_orient"][:, None], body.reshape(batch, 23, 3)], dim=1).clone()
            pose[:, 22:] = 0.0
        return FitResult(pose_rotvec=pose, betas=params["betas"].detach(), transl_m=params["transl"].detach(),
                         z=params["z"].detach() if "z" in params else None, loss=loss.detach(),
                         seconds=time.perf_counter() - start, history=history, **errors)


class SMPLify2D(_SMPLifyBase):
    """Batched SMPLify fit of SMPL to 2D keypoints (SMPLify / SPIN ``smplify.py``, reference-spec D.5).

    Args:
        body_model: :class:`annot.body_models.BodyModel` (``free`` or ``smpl``), on the inputs' device.
        prior: ``"vposer"`` (optimise z, prior ``|z|^2``) or ``"none"`` (axis-angle + L2 + bending penalty).
        vposer: the frozen :class:`annot.priors.VPoser` for ``prior="vposer"``.
        num_iters_per_stage: Adam steps per stage (SPIN: 100). Stages: 1 camera + one per prior weight.
        lr: Adam step size (SPIN: 1e-2).
        sigma_px: Geman-McClure scale of the 2D term (SPIN: 100 px).
        pose_prior_weights, shape_prior_weights: body-stage weights, squared when applied (SMPLify-X).
        bend_weight: elbow / knee bending weight, squared when applied (SPIN: 15.2).
        depth_weight: camera-stage depth-deviation weight, squared when applied (SPIN: 100).
        refine_transl: also optimise the camera translation in the body stages (SMPLify-X does; SPIN keeps
            it fixed after stage 1). Default True: a fixed, foreshortened depth estimate biases the shape.
        ignore_joints: joint names given zero weight in the body stages (SPIN drops OpenPose / GT hips;
            default none, the free model's COCO regressor matches COCO hips).
        try_flipped: also fit from the initial orientation turned 180 deg about the body's vertical axis
            (facing away) and keep, per sample, the fit with the lower final objective. SMPLify (Bogo et al.
            2016, Sec. 3.3) does this when the person is side-on; here every sample gets both (the batch
            doubles). Without it, people facing away are fitted facing the camera with limbs twisted to
            match the 2D keypoints. Ignored when ``init`` gives ``global_orient``.

    Raises:
        ValueError: unknown prior, VPoser prior without a VPoser, mismatched weight lists.
    """

    def __init__(self, body_model: Any, prior: str = "none", vposer: Any = None, num_iters_per_stage: int = 100,
                 lr: float = 1e-2, sigma_px: float = 100.0,
                 pose_prior_weights: Sequence[float] = POSE_PRIOR_WEIGHTS,
                 shape_prior_weights: Sequence[float] = SHAPE_PRIOR_WEIGHTS, bend_weight: float = BEND_WEIGHT,
                 depth_weight: float = DEPTH_WEIGHT, refine_transl: bool = True,
                 ignore_joints: Sequence[str] = (), try_flipped: bool = False) -> None:
        super().__init__(body_model, prior, vposer, num_iters_per_stage, lr, pose_prior_weights,
                         shape_prior_weights, bend_weight, refine_transl)
        self.sigma_px, self.depth_weight = float(sigma_px), float(depth_weight)
        self.ignore_joints = tuple(ignore_joints)
        self.try_flipped = bool(try_flipped)

    def _init_camera(self, params: dict[str, Tensor], kp2d_px: Tensor, conf: Tensor, focal_px: Tensor,
                     princpt_px: Tensor, convention: str) -> Tensor:
        """Similar-triangles depth (SMPLify ``initialize_camera``): ``z = f * L3d / L2d`` with L the mean
        shoulder-hip length of each side; x, y put the model's torso centroid on the 2D torso centroid.
        Writes ``params["transl"]`` and returns the initial depth (B,) in metres."""
        idx = _names_index(convention, TORSO_JOINTS)  # L_Sh, R_Sh, L_Hip, R_Hip
        with torch.no_grad():
            params["transl"].zero_()
            joints = self._joints(params, convention)[:, idx]
            kp, w = kp2d_px[:, idx], (conf[:, idx] > 0).to(kp2d_px.dtype)
            side_w = torch.stack([w[:, 0] * w[:, 2], w[:, 1] * w[:, 3]], dim=1)  # (B, 2) both ends seen
            len3d = torch.stack([(joints[:, 0] - joints[:, 2]).norm(dim=-1),
                                 (joints[:, 1] - joints[:, 3]).norm(dim=-1)], dim=1)
            len2d = torch.stack([(kp[:, 0] - kp[:, 2]).norm(dim=-1), (kp[:, 1] - kp[:, 3]).norm(dim=-1)], dim=1)
            has = side_w.sum(1) > 0
            l3 = (len3d * side_w).sum(1) / side_w.sum(1).clamp(min=1)
            l2 = (len2d * side_w).sum(1) / side_w.sum(1).clamp(min=1)
            focal = focal_px.mean(1)
            depth = torch.where(has & (l2 > 1e-3), focal * l3 / l2.clamp(min=1e-3), torch.full_like(focal, 5.0))
            wsum = w.sum(1, keepdim=True).clamp(min=1)
            centre2d = torch.where(w.sum(1, keepdim=True) > 0, (kp * w[..., None]).sum(1) / wsum,
                                   (kp2d_px * conf[..., None]).sum(1) / conf.sum(1, keepdim=True).clamp(min=1e-6))
            centre3d = joints.mean(1)
            xy = (centre2d - princpt_px) / focal_px * depth[:, None]
            params["transl"].copy_(torch.cat([xy - centre3d[:, :2], (depth - centre3d[:, 2])[:, None]], dim=1))
        return params["transl"][:, 2].clone()

    def _check(self, kp2d_px: Tensor, conf: Tensor, focal_px: Tensor, princpt_px: Tensor, convention: str) -> None:
        num = get_convention(convention).num_joints
        if kp2d_px.ndim != 3 or kp2d_px.shape[1:] != (num, 2):
            raise ValueError(f"SMPLify2D.fit: kp2d_px must be (B, {num}, 2) for {convention!r}, "
                             f"got {tuple(kp2d_px.shape)}")
        batch = kp2d_px.shape[0]
        for name, value, shape in (("conf", conf, (batch, num)), ("focal_px", focal_px, (batch, 2)),
                                   ("princpt_px", princpt_px, (batch, 2))):
            if tuple(value.shape) != shape:
                raise ValueError(f"SMPLify2D.fit: {name} must be {shape}, got {tuple(value.shape)}")

    def fit(self, kp2d_px: Tensor, conf: Tensor, focal_px: Tensor, princpt_px: Tensor,
            convention: str = "coco17", init: dict[str, Tensor] | None = None) -> FitResult:
        """Fit SMPL to 2D keypoints of B people at once.

        Args:
            kp2d_px: (B, J, 2) keypoints in the pixels of the camera (``focal_px``, ``princpt_px``), e.g.
                crop pixels with the crop camera, or original pixels with the real camera.
            conf: (B, J) confidences / visibility in [0, 1] (0 = ignore); the data term uses ``conf^2``.
            focal_px, princpt_px: (B, 2) pinhole intrinsics in pixels.
            convention: keypoint convention of ``kp2d_px`` (any the body model can regress).
            init: optional starting values ``global_orient`` (B,3), ``body_pose`` (B,69) or ``z``, ``betas``,
                ``transl`` (B,3) (an annotator's prediction: SPIN's use). Default: mean shape, zero body
                pose, global orientation ``(pi, 0, 0)`` (upright, facing the camera); ``transl`` is always
                re-estimated by the camera initialisation unless given.

        Returns:
            :class:`FitResult` with ``kp2d_err_px`` (B,) mean 2D error over ``conf > 0`` keypoints.

        Raises:
            ValueError: shapes that do not match the convention.
        """
        self._check(kp2d_px, conf, focal_px, princpt_px, convention)
        if not self.try_flipped or (init is not None and "global_orient" in init):
            return self._fit(kp2d_px, conf, focal_px, princpt_px, convention, init)
        start, batch = time.perf_counter(), kp2d_px.shape[0]
        facing = kp2d_px.new_tensor([[math.pi, 0.0, 0.0], [0.0, 0.0, math.pi]])  # Rx(pi); Rx(pi) Ry(pi) = Rz(pi)
        both = {k: torch.cat([v, v]) for k, v in (init or {}).items()}
        both["global_orient"] = facing.repeat_interleave(batch, dim=0)
        fit = self._fit(*(torch.cat([t, t]) for t in (kp2d_px, conf, focal_px, princpt_px)), convention, both)
        pick = torch.arange(batch, device=kp2d_px.device) + batch * (fit.loss[batch:] < fit.loss[:batch]).long()
        return FitResult(pose_rotvec=fit.pose_rotvec[pick], betas=fit.betas[pick], transl_m=fit.transl_m[pick],
                         loss=fit.loss[pick], seconds=time.perf_counter() - start,
                         z=fit.z[pick] if fit.z is not None else None, kp2d_err_px=fit.kp2d_err_px[pick],
                         history=fit.history)

    def _fit(self, kp2d_px: Tensor, conf: Tensor, focal_px: Tensor, princpt_px: Tensor, convention: str,
             init: dict[str, Tensor] | None) -> FitResult:
        """One fit from one initial orientation per sample (:meth:`fit` without the flipped trial)."""
        start, history = time.perf_counter(), []
        batch = kp2d_px.shape[0]
        params = self._init_params(batch, kp2d_px, init, kp2d_px.new_tensor([math.pi, 0.0, 0.0]))
        if init is None or "transl" not in init:
            depth0 = self._init_camera(params, kp2d_px, conf, focal_px, princpt_px, convention)
        else:
            depth0 = params["transl"][:, 2].clone()
        torso = _names_index(convention, TORSO_JOINTS)
        weight = conf.pow(2)
        for name in self.ignore_joints:
            weight = weight.clone()
            weight[:, _names_index(convention, [name])[0]] = 0.0

        def project() -> Tensor:
            return perspective_project(self._joints(params, convention), focal_px, princpt_px)

        def camera_objective() -> Tensor:
            res = project()[:, torso] - kp2d_px[:, torso]
            data = (weight[:, torso, None] * res.pow(2)).sum((1, 2))
            return data + self.depth_weight**2 * (params["transl"][:, 2] - depth0).pow(2)

        self._optimise([params["global_orient"], params["transl"]], camera_objective, history)
        for stage in range(len(self.pose_prior_weights)):
            def body_objective(stage: int = stage) -> Tensor:
                res = project() - kp2d_px
                data = (weight[..., None] * gmof(res, self.sigma_px)).sum((1, 2))
                return data + self._prior_terms(params, stage)

            self._optimise(self._body_leaves(params), body_objective, history)
        with torch.no_grad():
            final_stage = len(self.pose_prior_weights) - 1
            res = project() - kp2d_px
            loss = (weight[..., None] * gmof(res, self.sigma_px)).sum((1, 2)) + self._prior_terms(params, final_stage)
            mask = (conf > 0).to(res.dtype)
            err = (res.norm(dim=-1) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self._result(params, loss, start, history, kp2d_err_px=err)


def rigid_align(source: Tensor, target: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Weighted least-squares rotation + translation (no scale; Kabsch / SVD) with ``target ~ R source + t``.

    Args:
        source, target: (B, N, 3) corresponding points, same unit (metres), N >= 3 non-collinear.
        weight: (B, N) non-negative weights, or None (all 1).

    Returns:
        ``rotmat`` (B, 3, 3) proper rotations (det +1, reflection fixed as in Umeyama 1991) and ``transl``
        (B, 3) in the unit of ``target``.

    Raises:
        ValueError: mismatched shapes.
    """
    if source.shape != target.shape or source.ndim != 3 or source.shape[-1] != 3:
        raise ValueError(f"rigid_align: source {tuple(source.shape)} and target {tuple(target.shape)} "
                         "must both be (B, N, 3)")
    w = torch.ones(source.shape[:2], dtype=source.dtype, device=source.device) if weight is None else weight
    w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
    mu_s, mu_t = (source * w[..., None]).sum(1), (target * w[..., None]).sum(1)
    cov = ((target - mu_t[:, None]) * w[..., None]).transpose(1, 2) @ (source - mu_s[:, None])  # (B, 3, 3)
    u, _, vh = torch.linalg.svd(cov.double())
    fix = torch.ones(source.shape[0], 3, dtype=torch.float64, device=source.device)
    fix[:, 2] = torch.sign(torch.linalg.det(u @ vh))
    rotmat = (u * fix[:, None]) @ vh
    rotmat = rotmat.to(source.dtype)
    transl = mu_t - (rotmat @ mu_s[..., None])[..., 0]
    return rotmat, transl


class SMPLify3D(_SMPLifyBase):
    """Batched SMPLify-X-style fit of SMPL to 3D joints (NeuralAnnot CVPRW 2022, supplementary B).

    Camera (rigid model-to-data transform) initialised by SVD on the hips and shoulders, then a camera stage
    (global orientation + translation on those joints) and the body stages with the data term
    ``data_weight * sum conf * GMoF(joints - target, sigma_m)`` in metres (weight 1e6 as the paper) and the
    same priors as :class:`SMPLify2D`.

    Args:
        body_model, prior, vposer, num_iters_per_stage, lr, pose_prior_weights, shape_prior_weights,
        bend_weight: as :class:`SMPLify2D`.
        data_weight: weight of the 3D term (paper: 1e6, residuals in metres).
        sigma_m: Geman-McClure scale in metres (the paper does not give it). 1.0 m: the fit starts from the
            T-pose, where hand and foot residuals reach 0.5-1 m; with a 0.1 m scale the term saturates there
            and 40% of 256 CMU frames stayed stuck (mean error 58 mm, p90 127 mm at 200 iterations), with
            1.0 m every frame fits (mean 19 mm, max 31 mm; ``tools/make_synthetic.py`` pose bank). Outliers
            above ~1 m are still down-weighted.

    Raises:
        ValueError: as :class:`SMPLify2D`.
    """

    def __init__(self, body_model: Any, prior: str = "none", vposer: Any = None, num_iters_per_stage: int = 100,
                 lr: float = 1e-2, data_weight: float = 1e6, sigma_m: float = 1.0,
                 pose_prior_weights: Sequence[float] = POSE_PRIOR_WEIGHTS,
                 shape_prior_weights: Sequence[float] = SHAPE_PRIOR_WEIGHTS,
                 bend_weight: float = BEND_WEIGHT) -> None:
        super().__init__(body_model, prior, vposer, num_iters_per_stage, lr, pose_prior_weights,
                         shape_prior_weights, bend_weight, refine_transl=True)
        self.data_weight, self.sigma_m = float(data_weight), float(sigma_m)

    def init_camera(self, params: dict[str, Tensor], joints_cam_m: Tensor, conf: Tensor, convention: str) -> None:
        """SVD initialisation: rigidly align the model's hips and shoulders (current pose / shape, zero
        orientation and translation) to the targets, and write ``global_orient`` / ``transl`` so that the
        posed model equals ``R @ model + t`` (SMPL rotates about its root joint, so ``transl = t + R r0 - r0``)."""
        idx = _names_index(convention, TORSO_JOINTS)
        with torch.no_grad():
            params["global_orient"].zero_()
            params["transl"].zero_()
            model, root0 = self._joints(params, convention, with_root=True)
            rotmat, t = rigid_align(model[:, idx], joints_cam_m[:, idx], conf[:, idx])
            params["global_orient"].copy_(rotmat_to_rotvec(rotmat))
            params["transl"].copy_(t + (rotmat @ root0[..., None])[..., 0] - root0)

    def fit(self, joints_cam_m: Tensor, conf: Tensor, convention: str = "smpl24",
            init: dict[str, Tensor] | None = None) -> FitResult:
        """Fit SMPL to 3D joints of B people at once.

        Args:
            joints_cam_m: (B, J, 3) target joints in metres, in any (camera / world) frame: the fit returns
                ``global_orient`` and ``transl`` in that frame.
            conf: (B, J) weights in [0, 1] (0 = missing joint).
            convention: the joints' convention (must contain both hips and shoulders).
            init: optional ``body_pose`` / ``z`` / ``betas`` start (orientation and translation always come
                from the SVD initialisation).

        Returns:
            :class:`FitResult` with ``joints_err_m`` (B,) mean 3D error over ``conf > 0`` joints.

        Raises:
            ValueError: wrong shapes or a convention without hips / shoulders.
        """
        num = get_convention(convention).num_joints
        if joints_cam_m.ndim != 3 or joints_cam_m.shape[1:] != (num, 3) or conf.shape != joints_cam_m.shape[:2]:
            raise ValueError(f"SMPLify3D.fit: joints_cam_m must be (B, {num}, 3) and conf (B, {num}) for "
                             f"{convention!r}, got {tuple(joints_cam_m.shape)} and {tuple(conf.shape)}")
        start, history = time.perf_counter(), []
        params = self._init_params(joints_cam_m.shape[0], joints_cam_m, init, joints_cam_m.new_zeros(3))
        self.init_camera(params, joints_cam_m, conf, convention)
        torso = _names_index(convention, TORSO_JOINTS)

        def data(sel: Sequence[int] | slice = slice(None)) -> Tensor:
            res = self._joints(params, convention)[:, sel] - joints_cam_m[:, sel]
            return self.data_weight * (conf[:, sel, None] * gmof(res, self.sigma_m)).sum((1, 2))

        self._optimise([params["global_orient"], params["transl"]], lambda: data(torso), history)
        for stage in range(len(self.pose_prior_weights)):
            self._optimise(self._body_leaves(params), lambda stage=stage: data() + self._prior_terms(params, stage),
                           history)
        with torch.no_grad():
            res = self._joints(params, convention) - joints_cam_m
            loss = data() + self._prior_terms(params, len(self.pose_prior_weights) - 1)
            mask = (conf > 0).to(res.dtype)
            err = (res.norm(dim=-1) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self._result(params, loss, start, history, joints_err_m=err)


__all__ = ["FitResult", "KeypointBodyModel", "SMPLify2D", "SMPLify3D", "gmof", "rigid_align"]
