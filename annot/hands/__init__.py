"""The hand annotator (expressive NeuralAnnot, Moon et al., section 4, "part annotators"; issue #16 item 3).

A MANO annotator f_hand trained with Algorithm 1 on hand crops, a room above :mod:`annot.annotator` (whose losses,
rotations and projection it reuses) and below :mod:`annot.wholebody` (which plugs it into the whole-body
pipeline, ``parts.hand_method``):

- :mod:`.mirror`: left hands as mirrored right hands (crop flip, MANO parameter mirror);
- :mod:`.synthetic`: the free auxiliary 3D hand set, hands of the free MANO model rendered to crops;
- :mod:`.crops`: hand crops of real images (COCO-WholeBody hands), left hands flipped;
- :mod:`.aux_real`: the real auxiliary 3D hand sets (FreiHAND, InterHand2.6M) as hand crops;
- :mod:`.annotator`: the network and the LightningModule (MoCap and in-the-wild modes);
- :mod:`.algorithm`: Algorithm 1 for hands (a) MoCap mode on the auxiliary set -> theta*, (b) in-the-wild mode on
  auxiliary + target, (c) predict the targets, back in the original camera.
"""
