"""Reused CPU memory for the operator's full-size results (output, kept ``rfft2(x)``, input gradient).

glibc's ``malloc`` hands every block of 32 MiB or more to the kernel when it is freed, so in a plain Python
process each new one is a fresh mapping whose pages are zero-filled on first touch (a 128-channel 256² map
is exactly 32 MiB; measured, a third of Converse-DnCNN's CPU wall time at 256², 6.9 s → 4.1 s, was these page
faults). Below that size glibc keeps freed blocks in its heap and this module does nothing.
Above it, :func:`empty` hands out the storage of an earlier result again once nothing else refers to it:
the pool keeps one reference to each storage, and a storage whose use count is 1 (only the pool's) is dead
to every caller, graph and view. A result that a caller, a view or an autograd graph still holds is never
handed out. CUDA has its own caching allocator and is not pooled.

The pool keeps at most :data:`MAX_BYTES` of storages; :func:`release` frees them.
"""
import threading

import torch

MIN_BYTES = 2**25  # glibc's largest mmap threshold: smaller blocks are reused by the heap itself
MAX_BYTES = 2**30  # at most this much memory is kept for reuse
MAX_ENTRIES = 32

_pool = []  # UntypedStorage objects, most recently used last
_lock = threading.Lock()


def _free(storage):
    """Whether only the pool refers to ``storage`` (no tensor, view or graph holds it)."""
    return torch._C._storage_Use_Count(storage._cdata) == 1


def empty(shape, dtype, device):
    """An uninitialised contiguous tensor of ``shape``; on CPU from :data:`MIN_BYTES` on, in reused memory."""
    device = torch.device(device)
    nbytes = torch.Size(shape).numel() * dtype.itemsize
    if device.type != 'cpu' or not MIN_BYTES <= nbytes <= MAX_BYTES // 2:
        return torch.empty(shape, dtype=dtype, device=device)
    with _lock:
        for i, candidate in enumerate(_pool):
            if candidate.nbytes() == nbytes and _free(candidate):
                storage = _pool.pop(i)
                break
        else:
            _evict(nbytes)
            storage = torch.UntypedStorage(nbytes)
        _pool.append(storage)
        return torch.empty(0, dtype=dtype).set_(storage, 0, tuple(shape))


def _evict(incoming):
    """Forget storages, free ones first and the least recently used first, until ``incoming`` bytes fit."""
    held = sum(s.nbytes() for s in _pool)
    for storage in sorted(_pool, key=lambda s: not _free(s)):  # stable: free first, each in pool order
        if held + incoming <= MAX_BYTES and len(_pool) < MAX_ENTRIES:
            break
        _pool.remove(storage)  # an alive storage forgotten here is freed when its last user lets go
        held -= storage.nbytes()


def held_bytes():
    """Bytes of the storages the pool refers to (alive or free)."""
    with _lock:
        return sum(s.nbytes() for s in _pool)


def release():
    """Forget every pooled storage; those no longer in use are freed at once."""
    with _lock:
        _pool.clear()
