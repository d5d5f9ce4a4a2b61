"""Lecture part "image retrieval" (stages 06-07): pooled descriptors, whitening, mAP, benchmark sets.
Empty until those stages land; their modules go here (see docs/ANATOMY.md, "Adding a stage")."""
