"""Per-thread working buffers of the operator, kept between calls so that they are not fresh mappings.

glibc serves large blocks with ``mmap`` and returns them to the kernel when freed; the next call's
buffers are then new mappings whose pages the kernel zero-fills on first touch (page faults). The
channel groups' intermediates (the padded map, the output gradient's phases, spectra, the spatial
result) are therefore written into buffers that this thread keeps, each as large as the largest group
so far. Only intermediates go here: what a call returns or saves for backward is always allocated anew.
On CUDA the caching allocator already reuses memory, so :func:`buffer` allocates plainly there.
"""
import math
import threading

import torch


class Workspace(threading.local):
    """``{(name, dtype, device): flat tensor}``, one dictionary per thread."""

    def __init__(self):
        self.buffers = {}

    def buffer(self, name, shape, dtype, device):
        """A contiguous ``shape`` view of this thread's buffer ``name``; its previous contents are garbage."""
        if device.type != 'cpu':
            return torch.empty(shape, dtype=dtype, device=device)
        numel, key = math.prod(shape), (name, dtype, device)
        flat = self.buffers.get(key)
        if flat is None or flat.numel() < numel:
            self.buffers.pop(key, None)  # free the smaller one first
            flat = self.buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return flat[:numel].view(shape)

    def nbytes(self):
        return sum(t.nbytes for t in self.buffers.values())


WORKSPACE = Workspace()


def release_workspace():
    """Free this thread's working buffers (they are rebuilt by the next call that needs them)."""
    WORKSPACE.buffers.clear()
