"""A free synthetic benchmark: free-body-model people rendered over photo crops, in standard layouts.

Every sample is one person posed with the free body model
(``BodyModel("free")``), seen by a random perspective camera and rendered with
:class:`annot.render.MeshRenderer` over a random crop of a free photo. Three splits are written, each
in a layout the ordinary loaders read:

``mocap/``  3DPW layout (``annot.data.pw3d``), ``3DPW_train.json``: GT SMPL visible (MoCap-like).
``itw/``    COCO layout (``annot.data.coco``): ``annotations/person_keypoints_train2017.json`` and
            ``annotations/coco_wholebody_train_v1.0.json`` (2D keypoints, box, RLE segmentation only);
            the 3D GT sits in ``scoring/gt_smpl.json`` (NeuralAnnot layout keyed by annotation id,
            ``{smpl_param, cam_param}``), which no annotation json references (ITW-like).
``test/``   3DPW layout, ``3DPW_test.json``: a test split for estimators.

The ``itw`` split is **realistic** by default: its 2D annotations look like COCO's, because per-sample
fitting is hurt exactly by what real annotations have and a perfect projection lacks
(:mod:`.annotation`):

* 1-4 people an image (``people_per_image``), sharing the camera at their own depths, overlapping;
* some people cut by the image border (``truncation_prob``): their outside keypoints are ``v = 0``;
* a keypoint covered by the person itself or by someone in front (depth test on the rendered scene) is
  ``v = 1`` (labelled, not visible), or left unlabelled (``v = 0``) with ``occluded_unlabelled_prob``;
* every labelled keypoint carries human annotator noise, COCO's per-keypoint ``sigma_i * sqrt(area)`` per
  axis, twice that for hidden keypoints;
* a person with fewer than ``min_labelled_keypoints`` labelled or visible keypoints stays in the image
  unannotated, as COCO leaves people nobody could annotate;
* box, area and RLE segmentation are of the visible part of each person.

The exact projections (``scoring/clean_kp2d.json``) and the GT lie beside the annotations where no loader
reads them; the manifest reports the measured fractions of ``v = 0 / 1 / 2`` keypoints, of truncated people
and the people per image next to those of the COCO sample. ``clean_2d=True`` gives the first version's ITW
split (one whole person an image, exact keypoints, all ``v = 2``).

GT is exact: SMPL parameters in the OpenCV camera frame of the image (x right, y down, z forward,
metres), gender ``"neutral"``, the image camera ``cam_param`` (``fx == fy``). Silhouette masks are
saved as PNG (``masks/`` for the 3DPW-layout splits, ``scoring/masks/`` for the ITW split: one per image in
the clean split, one full silhouette per annotation id ``<aid>.png`` in the realistic one).

Sampling (all from ``numpy.random.default_rng([seed, split index, sample index])``, so every sample
is reproducible on its own and a split can be regenerated in shards):

* body pose: joints 1..21 of a frame of the pose bank (:class:`PoseBank`); its root orientation is
  discarded. ``pose_source="cmu_fit"`` (default) retargets ``cmu_frames`` evenly spaced frames of the CMU
  clips (``cmu_root``) to the free body model with the 3D fitting baseline
  (:class:`annot.fitting.smplify.SMPLify3D`, NeuralAnnot supp. B) and keeps the fits below
  ``cmu_max_err_m`` (rejected frames are counted with their error in the manifest); the bank is cached
  in ``<out>/pose_bank.npz``. ``"npz"`` reads MoCap-mode pseudo-GTs (``pseudo_gt.npz`` of stage (a),
  key ``pose_rotvec`` (N, 24, 3)). ``"random"`` draws :func:`random_body_pose` (N(0, 0.2 rad) per joint,
  arms lowered, elbows bent: implausible, for tests only). Splits draw from disjoint clips: every third
  clip (sorted by name) is held out for ``itw`` / ``test``, the others feed ``mocap``, so the MoCap-like
  split never shows an ITW pose.
* mirrored with ``mirror_prob`` (``annot.data.augment.flip_smpl_pose``); hands (22, 23) zero.
* global orientation ``Rz(roll) Rx(elevation) Rx(pi) Ry(yaw)``: upright (SMPL Y-up -> camera y-down,
  facing the camera at yaw 0), turned by ``yaw`` about the body axis, tilted towards the camera by the
  camera ``elevation`` (camera above, looking down, for elevation > 0) and rolled in the image plane.
* betas ~ N(0, ``betas_std``^2): the free model's betas are in units of its realistic adult population's
  standard deviation (the baked file's provenance), so ``betas_std = 1`` reproduces that population.
* camera: distance of the pelvis 2-10 m, focal ``focal_range_frac`` x max(H, W) pixels restricted to
  the values that make the person ``person_height_frac`` of the image height, principal point near
  the centre, the person placed so that every body joint (SMPL 0..21) lies inside the image.
* appearance: one random colour per person (skin tone or cloth colour: the renderer takes one colour
  per mesh), light intensity scale ``light_range``, background = random crop of a photo (random
  scale, horizontal flip, per-channel gain, Gaussian colour noise) or, with ``photos_dir=None``, a
  noisy colour gradient.

Follows the idea of rendered pseudo-benchmarks such as AGORA / BEDLAM (parametric bodies over
backgrounds with exact GT); our own simple recipe, no code from them.

Modules: :mod:`.config` (settings, file names), :mod:`.poses` (the pose bank), :mod:`.scene` (sampling and
rendering people), :mod:`.annotation` (COCO-like visibility and annotator noise), :mod:`.splits` (writing the
splits and the manifest). Used by the quality benchmark and by the backbone pretraining (``mocap`` split kind
only); imports ``annot.fitting``, ``annot.render``, ``annot.data``, ``annot.body_models`` and the rooms below
them, never the annotator.
"""
from annot.benchmarks.synthetic.config import (
    BODY_JOINTS,
    CLEAN_KP2D_FILE,
    COCO_IMG_DIR,
    COCO_PERSON_KEYPOINTS,
    COCO_WHOLEBODY,
    HELD_OUT_SPLITS,
    ITW_EXTRAS_FILE,
    MANIFEST,
    POSE_BANK,
    POSE_SOURCES,
    SCORING_FILE,
    SPLITS,
    SyntheticConfig,
    SyntheticPerson,
    config_from_dict,
)
from annot.benchmarks.synthetic.poses import (
    PoseBank,
    cmu_pose_bank,
    global_orientation,
    load_pose_bank,
    random_body_pose,
    retarget_cmu,
    sample_pose,
)
from annot.benchmarks.synthetic.scene import (
    Backgrounds,
    random_color,
    render_sample,
    render_scene,
    sample_person,
    sample_scene,
)
from annot.benchmarks.synthetic.splits import COCO_SAMPLE_STATS, make_split, make_synthetic

__all__ = [
    "BODY_JOINTS", "Backgrounds", "CLEAN_KP2D_FILE", "COCO_IMG_DIR", "COCO_PERSON_KEYPOINTS", "COCO_SAMPLE_STATS",
    "COCO_WHOLEBODY", "HELD_OUT_SPLITS", "ITW_EXTRAS_FILE", "MANIFEST", "POSE_BANK", "POSE_SOURCES", "PoseBank",
    "SCORING_FILE", "SPLITS", "SyntheticConfig", "SyntheticPerson", "cmu_pose_bank", "config_from_dict",
    "global_orientation", "load_pose_bank", "make_split", "make_synthetic", "random_body_pose", "random_color",
    "render_sample", "render_scene", "retarget_cmu", "sample_person", "sample_pose", "sample_scene",
]
