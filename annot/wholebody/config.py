"""Config schema of ``tools/annotate_wholebody.py`` (``make annotate-wholebody``; values in
``configs/annotate/wholebody_free.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from annot.fitting.face import FaceFitConfig
from annot.fitting.hands import HandFitConfig
from annot.hands.algorithm import HandAnnotatorConfig


@dataclass
class BodyPartConfig:
    """The body part: the body annotator's config file (``make annotate-body``'s) and overrides; its stages
    are reused when already complete (same provenance)."""

    config: str = "configs/annotate/body_free.yaml"
    overrides: list[str] = field(default_factory=list)


@dataclass
class WholeBodyDataConfig:
    """COCO-WholeBody annotations (released layout) of the same people as the body annotator's target set."""

    root: str = "../shared/data/coco_samples"
    ann_file: str = "test_coco_wholebody.json"
    img_dir: str = ""


@dataclass
class WholeBodyModelsConfig:
    """Model files: stock ``smplx.SMPLX`` (npz / pkl) and ``smplx.MANO`` (pkl); default the free stand-ins."""

    smplx: str = "body_models/free/FREE_ANNY_SMPLX_NEUTRAL.npz"
    mano_right: str = "body_models/free/FREE_ANNY_MANO_RIGHT.pkl"
    mano_left: str = "body_models/free/FREE_ANNY_MANO_LEFT.pkl"


@dataclass
class PartsConfig:
    """Which flagged-valid parts are fitted: at least ``min_face_points`` of the 300-W points 17..67 and
    ``min_hand_points`` of the 21 hand points annotated (fewer: the part is skipped with a counted reason).
    ``hand_method``: ``fit`` (the per-sample MANO fit), ``annotator`` (the hand annotator trained with Algorithm 1,
    ``hand_annotator``) or ``annotator_fit`` (the fit started from the annotator's prediction);
    :mod:`annot.wholebody.hand_annotator`."""

    min_face_points: int = 10
    min_hand_points: int = 6
    hand_method: str = "fit"


@dataclass
class IntegrationConfig:
    """``face_head_rotation``: the face fit's neck and head rotations replace the body's (beyond the paper,
    whose integration keeps the body's head; measured in the report's ``face`` 2D errors). ``arm_rule``: how the
    hands' global rotations enter the arms (:data:`annot.wholebody.integrate.ARM_RULES`): ``"wrist"`` (default),
    always through the wrist alone, or ``"paper"``, the paper's supplementary Algorithm 2 (roll shared with the
    elbow, anatomical threshold on the wrist). On the COCO samples the threshold rejects the batter's left hand,
    gripping the bat with a strongly bent wrist, and the body's wrist then misses its keypoints by 18.6 px instead of
    4.2 (README), so the default keeps the hand part's rotation."""

    face_head_rotation: bool = False
    arm_rule: str = "wrist"


@dataclass
class WholeBodyExportConfig:
    """``out_dir``: where ``pseudo_gt_smplx.json``, ``skipped.json``, ``report.json`` and the stage folders go;
    ``overlays``: write the per-person PNGs (body, face and hand panels)."""

    out_dir: str = "outputs/annotate-wholebody"
    overlays: bool = True


@dataclass
class WholeBodyConfig:
    """Top-level config of the whole-body annotation (issue #16 parts 3-5)."""

    name: str = "annotate-wholebody"
    seed: int = 0
    num_threads: int = 0
    body: BodyPartConfig = field(default_factory=BodyPartConfig)
    data: WholeBodyDataConfig = field(default_factory=WholeBodyDataConfig)
    models: WholeBodyModelsConfig = field(default_factory=WholeBodyModelsConfig)
    parts: PartsConfig = field(default_factory=PartsConfig)
    face: FaceFitConfig = field(default_factory=FaceFitConfig)
    hand: HandFitConfig = field(default_factory=HandFitConfig)
    hand_annotator: HandAnnotatorConfig = field(default_factory=HandAnnotatorConfig)
    integration: IntegrationConfig = field(default_factory=IntegrationConfig)
    export: WholeBodyExportConfig = field(default_factory=WholeBodyExportConfig)


__all__ = ["BodyPartConfig", "IntegrationConfig", "PartsConfig", "WholeBodyConfig", "WholeBodyDataConfig",
           "WholeBodyExportConfig", "WholeBodyModelsConfig"]
