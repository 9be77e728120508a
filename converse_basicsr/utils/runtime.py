"""Process-wide CPU settings that the package's entry points apply (and that user scripts may call).

Why large freed blocks cost page faults on CPU (glibc's mmap threshold): see ``ops/buffers.py``.
:func:`retain_freed_memory` raises glibc's thresholds so that freed blocks stay in the heap and are
reused, as PyTorch's CUDA caching allocator does on the GPU.

Nothing in the package needs this setting to be fast: the operator's working buffers are channel
groups of cache size that the heap reuses anyway, its full-size results come from reused memory
(``ops/buffers.py``), and without autograd the blocks run their pointwise layers in row blocks
(``archs/inference_path.py``). It remains an extra for what the package does not control (a user's own
layers, autograd's saved activations in training), and the entry points still call it.
"""
import ctypes
import ctypes.util
import os
import sys

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

ENV_VAR = 'CONVERSE_RETAIN_FREED_MEMORY'


def _libc():
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or None)
        return libc if hasattr(libc, 'mallopt') else None
    except OSError:  # pragma: no cover - no C library to load
        return None


_retained = False


def freed_memory_retained():
    """Whether :func:`retain_freed_memory` is in effect (large temporary buffers are then cheap)."""
    return _retained


def retain_freed_memory(threshold=2**30):
    """Keep freed blocks of up to ``threshold`` bytes in the heap for reuse (glibc only).

    Returns True when glibc accepted the setting; False elsewhere (macOS, Windows, musl) or when
    the environment variable ``CONVERSE_RETAIN_FREED_MEMORY=0`` turns it off. The cost: up to
    ``threshold`` bytes of freed memory stay with the process instead of going back to the OS.
    """
    if os.environ.get(ENV_VAR, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return False
    libc = _libc()
    if libc is None:
        return False
    global _retained
    threshold = int(threshold)
    _retained = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))
    return _retained
