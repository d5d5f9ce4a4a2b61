"""Lecture part "graph-based methods" (stages 08-09): k-NN graphs, Laplacians, diffusion, spectral
ranking, centrality. Empty until those stages land; their modules go here (see docs/ANATOMY.md)."""
