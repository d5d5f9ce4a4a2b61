"""Lecture part "graph-based methods" (stages 08-09): k-NN graphs, Laplacians, diffusion, spectral
ranking, centrality, and EGM (expanding Gaussian mixtures: regions detected on saliency maps). Empty
until those stages land; their modules go here (see docs/ANATOMY.md)."""
