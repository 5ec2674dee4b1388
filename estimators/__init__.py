"""Estimation networks g (Pose2Pose, HMR) trained on pseudo-GTs; they import ``annot``, never the reverse."""
