"""Conversions between torch tensors (dense, COO, CSR), numpy arrays and scipy.sparse matrices, shared by the
graph modules (no ``STAGE``: tools, never switched off). Sparse torch tensors are made CSR with int32 indices
where they fit, the layout whose products are fast on a CPU."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import torch

_INT32_MAX = 2**31 - 1


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size) -> torch.Tensor:
    """A CSR tensor with int32 indices where they fit: MKL's products take int32, and would otherwise copy
    int64 indices down at every product (2x slower on one CPU thread); without torch's once-per-process
    notice that CSR is in beta, which tells a student nothing about their solve."""
    if len(values) <= _INT32_MAX and max(size) <= _INT32_MAX:
        crow, col = crow.to(torch.int32), col.to(torch.int32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size=tuple(size), check_invariants=False)


def as_csr(tensor: torch.Tensor) -> torch.Tensor:
    """A sparse torch tensor as :func:`csr_tensor` makes them (duplicates summed)."""
    if tensor.layout != torch.sparse_csr:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            tensor = tensor.to_sparse_coo().coalesce().to_sparse_csr()
    return csr_tensor(tensor.crow_indices(), tensor.col_indices(), tensor.values(), tensor.shape)


def scipy_to_torch(matrix, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """A scipy.sparse matrix as a torch CSR tensor (summed duplicates, sorted columns), in its own dtype
    unless ``dtype`` says otherwise."""
    csr = scipy.sparse.csr_array(matrix)
    csr.sum_duplicates()
    return csr_tensor(torch.from_numpy(csr.indptr).to(device), torch.from_numpy(csr.indices).to(device),
                torch.as_tensor(csr.data, dtype=dtype, device=device), csr.shape)


def torch_to_scipy(tensor: torch.Tensor) -> scipy.sparse.csr_array:
    """A torch tensor (dense, COO or CSR) as a scipy.sparse CSR array on the host."""
    if tensor.layout == torch.strided:
        return scipy.sparse.csr_array(tensor.detach().cpu().numpy())
    csr = as_csr(tensor)
    return scipy.sparse.csr_array((csr.values().detach().cpu().numpy(), csr.col_indices().cpu().numpy(),
                                   csr.crow_indices().cpu().numpy()), shape=tuple(csr.shape))


def as_torch(array, name: str, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """``array`` (a torch tensor, a numpy array or a scipy.sparse matrix) as a torch tensor: numpy and
    scipy on ``device`` (default the CPU), in ``dtype`` (default their own), scipy as CSR; a tensor as it
    is (in ``dtype`` if given; on another device than ``device`` it is refused)."""
    if isinstance(array, torch.Tensor):
        if device is not None and array.device != torch.device(device):
            raise ValueError(f"{name} is on {array.device} but the other operand is on {device}; put both on one device")
        return array if dtype is None else array.to(dtype)
    if scipy.sparse.issparse(array):
        return scipy_to_torch(array, dtype, device)
    if isinstance(array, np.ndarray):
        return torch.as_tensor(array, dtype=dtype, device=device)
    raise TypeError(f"{name} must be a torch tensor, a numpy array or a scipy.sparse matrix; got {type(array).__name__}")


def solve_dtype(*dtypes: torch.dtype) -> torch.dtype:
    dtype = dtypes[0]
    for other in dtypes[1:]:
        dtype = torch.promote_types(dtype, other)
    if dtype.is_complex:
        raise TypeError(f"conjugate_gradient solves real systems; got {dtype}")
    return dtype if dtype.is_floating_point else torch.float64
