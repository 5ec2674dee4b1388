"""Files other programs read: the pseudo-GT format (NeuralAnnot JSON layout; :mod:`.export` writes and reads
it, :mod:`.export_mocap` writes the Human3.6M / MPI-INF-3DHP world-frame files) and atomic writes
(:mod:`.atomic`) that every writer of the project uses.

Imports only ``annot.keypoints`` (and nothing else of ``annot``), so every room may write files.
"""
