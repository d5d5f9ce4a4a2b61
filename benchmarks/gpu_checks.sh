#!/usr/bin/env bash
# The checks that need a GPU, as plain commands: the gpu-marked tests and the benchmarks. They need
# python with torch (CUDA), numpy, scipy, matplotlib, scikit-image and pytest, and no Jupyter, nbgrader
# or pytest-xdist (the project's pytest options are cleared). MNIST, the EfficientNet-Lite0 weights and
# the ImageNet class names (tests/test_pretrained.py) must be in the cache: run `coursekit data fetch`
# (all datasets) where there is a network and point COURSEKIT_DATA at that cache (default:
# .coursekit-data/ in the repository, which `COURSEKIT_DATA=.coursekit-data coursekit data fetch` fills).
# The photo patches of benchmarks/alexnet_step.py come with scikit-image (no download).
#
#     bash benchmarks/gpu_checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export COURSEKIT_DATA="${COURSEKIT_DATA:-$PWD/.coursekit-data}"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: these checks need one"
print("device:", torch.cuda.get_device_name(), "| torch", torch.__version__)
PY
python -m pytest -o addopts="" -q -m gpu -p no:cacheprovider \
    tests/test_runtime.py tests/test_models_training.py tests/test_data_samples_transforms.py tests/test_mnist_real.py \
    tests/test_alexnet.py tests/test_pretrained.py
python benchmarks/mnist_time_to_accuracy.py --device cuda
python benchmarks/autodiff_step.py
python benchmarks/conv_layer.py
python benchmarks/alexnet_step.py --device cuda
python benchmarks/siamese_pairs.py --device cuda
python -m pytest -o addopts="" -q -m gpu -p no:cacheprovider tests/test_evaluation.py
python benchmarks/retrieval_eval.py --device cuda
python -m pytest -o addopts="" -q -m gpu -p no:cacheprovider tests/test_egm.py tests/test_solvers.py tests/test_centrality.py tests/test_knn.py
python benchmarks/egm_graphs.py --device cuda
python benchmarks/diffusion.py --device cuda --large
