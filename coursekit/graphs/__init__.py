"""Lecture part "graph-based methods" (stages 08-09): k-NN graphs, Laplacians, diffusion, spectral
ranking, centrality, and EGM (expanding Gaussian mixtures: regions detected on saliency maps). Stage 08's
pieces: :mod:`.egm`, :mod:`.solvers` (conjugate gradients), :mod:`.centrality`, :mod:`.discovery`
(feature and object saliency, regions, their descriptors); stage 09's: :mod:`.knn`. :mod:`.sparse`
holds the tensor and scipy.sparse conversions they share, a tool of no stage (see docs/ANATOMY.md)."""
