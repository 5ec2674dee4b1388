"""The second recipe with free data: pretrain a SimpleBaseline 2D pose network, keep its backbone.

The Three Recipes' second recipe (Moon et al., CVPRW 2022, "Three Recipes for Better 3D Pseudo-GTs
of 3D Human Mesh Estimation in the Wild") initialises the annotator's backbone from a 2D pose
network (SimpleBaseline ``pose_resnet``, trained on COCO) instead of ImageNet. No free checkpoint
exists, so this module trains one on free data only and writes it with the ``pose_resnet`` key names,
which :func:`annot.nets.resnet.load_backbone_weights` (``model.backbone_weights``) takes unchanged.

Network and training follow Xiao et al., ECCV 2018 and ``microsoft/human-pose-estimation.pytorch``
(``lib/models/pose_resnet.py``, ``lib/dataset/JointsDataset.py::generate_target``,
``lib/core/loss.py::JointsMSELoss``, ``lib/core/inference.py::get_final_preds``; read as a
reference, re-written): :class:`annot.nets.pose_resnet.PoseResNet`, 17 COCO keypoints as Gaussian
heatmaps at stride 4, MSE with per-joint target weights, Adam, step decay x0.1 twice, augmentation
scale ``clip(N 0.3 + 1, 0.7, 1.3)``, rotation ``clip(N 40, +-80)`` deg with probability 0.6, flip 0.5.

Data (free only):

* synthetic renders of :mod:`annot.benchmarks.synthetic` (its public API: ``SyntheticConfig``, ``load_pose_bank``,
  ``make_split``), **only the** ``mocap`` **split kind**: its poses come from the CMU clips that are
  not held out (every third clip, by name, is held out for the benchmark's ``itw`` / ``test``
  splits), and the seeds (:data:`TRAIN_SEED` 1000 for training, :data:`HELDOUT_SEED` 2000 for the
  held-out PCK set) are disjoint from the benchmark's small seeds (0, 1, 2, ...). So the pretraining
  sees **never the ITW or test clips, never a benchmark seed**. The 2D targets are the free body
  model's COCO-17 keypoints (``BodyModel.regress(vertices, "coco17")``) of the GT SMPL the 3DPW
  loader (:class:`annot.data.pw3d.PW3D`) reads, projected with the image camera it reads;
* the real COCO sample people (``../shared/data/coco_samples``, :class:`annot.data.coco.COCOKeypoints`),
  repeated ``coco.repeat`` times per epoch with independent augmentation draws.

Crops, boxes and augmentation are the project's (:class:`annot.data.person.PersonCropDataset`,
:mod:`annot.data.crop`, :mod:`annot.data.augment`): RGB in [0, 1], no mean/std normalisation (as the
annotator feeds its backbone).

Frames and units: keypoints ``kp2d_px`` are in *crop* pixels (x right, y down; the crop of
``input_hw``), heatmap pixel ``(i, j)`` represents the crop point ``(stride * j, stride * i)``
(SimpleBaseline: ``mu = int(x / stride + 0.5)`` when building targets, ``x = u * stride`` when
decoding).

PCK (the standard we report): **PCK@0.5 of the torso diameter**, a keypoint is correct when its
crop-pixel error is at most ``0.5 * ||GT L_Shoulder - GT R_Hip||`` (the torso diameter of DeepPose,
Toshev & Szegedy 2014), averaged over the valid keypoints of the held-out synthetic set; PCK@0.2 is
reported too. A mean-pose baseline (every keypoint at its mean training crop position) gives the
chance level.

Checkpoint (:func:`pretrain_backbone`, written atomically with :mod:`annot.io.atomic`)::

    {"state_dict": PoseResNet state dict (conv1, bn1, layer1..4, deconv_layers.*, final_layer.*),
     "provenance": {data, seeds, steps, config, pck, timing, ...}}   # plain types: weights_only loads it

Modules: :mod:`.config` (``configs/pretrain/backbone.yaml``), :mod:`.heatmaps` (targets, decoding, loss, PCK),
:mod:`.data` (the free data), :mod:`.train` (training, evaluation, checkpoint). Its own room: imports
``annot.benchmarks.synthetic`` (the renders), ``annot.data``, ``annot.nets``, ``annot.render`` and the rooms
below; the annotator reads only its checkpoint file (``model.backbone_weights``), and the quality benchmark
calls :func:`ensure_pretrained_backbone`.
"""
from annot.pretrain.config import (
    DEFAULT_CHECKPOINT,
    DEFAULT_CONFIG,
    HELDOUT_SEED,
    TRAIN_SEED,
    PretrainConfig,
    checkpoint_name,
    load_pretrain_config,
)
from annot.pretrain.data import SyntheticCoco17, build_datasets, mean_pose_baseline, render_synthetic
from annot.pretrain.heatmaps import decode_heatmaps, gaussian_heatmaps, joints_mse_loss, pck
from annot.pretrain.train import (
    PoseResNetModule,
    ensure_pretrained_backbone,
    evaluate_pck,
    pretrain_backbone,
    save_keypoint_png,
    write_checkpoint,
)

__all__ = [
    "DEFAULT_CHECKPOINT", "DEFAULT_CONFIG", "HELDOUT_SEED", "TRAIN_SEED", "PretrainConfig", "PoseResNetModule",
    "SyntheticCoco17", "build_datasets", "checkpoint_name", "decode_heatmaps", "ensure_pretrained_backbone",
    "evaluate_pck", "gaussian_heatmaps", "joints_mse_loss", "load_pretrain_config", "mean_pose_baseline", "pck",
    "pretrain_backbone", "render_synthetic", "save_keypoint_png", "write_checkpoint",
]
