"""Lecture part "graph-based methods" (stages 08-09): k-NN graphs, Laplacians, diffusion, spectral
ranking, centrality, and EGM (expanding Gaussian mixtures: regions detected on saliency maps). Stage 08's
pieces: :mod:`.egm`, :mod:`.solvers` (conjugate gradients), :mod:`.centrality`; stage 09's: :mod:`.knn`
(see docs/ANATOMY.md)."""
