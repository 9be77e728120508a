"""The memory estimate behind ``tile='auto'``: free memory on a device, the peak bytes of the tensors a forward
pass allocates, and a per-model planner that picks the largest tile that fits."""
import gc
import math
import os
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ['available_memory', 'peak_tensor_bytes', 'MemoryPlanner', 'MEMORY_FRACTION', 'MIN_AUTO_TILE']

MEMORY_FRACTION = 0.5  # share of the free memory that tile='auto' plans to use (allocator slack, fragmentation)
MIN_AUTO_TILE = 64
FFT_OPS = ('_fft_r2c', '_fft_c2r', '_fft_c2c')


def available_memory(device):
    """Bytes ``device`` can still give this process: on CUDA the driver's free memory
    (``torch.cuda.mem_get_info``) plus what PyTorch's caching allocator holds but does not use
    (``memory_reserved - memory_allocated``, reusable without asking the driver); on the CPU MemAvailable."""
    device = torch.device(device)
    if device.type == 'cuda':
        free = torch.cuda.mem_get_info(device)[0]
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


class _TensorBytes(TorchDispatchMode):
    """Counts the bytes of the tensors alive while it is active, and their peak.

    Every op's output storages are counted once while some tensor still refers to them (views
    share their base's storage); each FFT op additionally counts a work space as large as its
    output for the duration of the op (cuFFT's work area for non-power-of-two sizes is of that
    order; pocketfft's buffers on the CPU are smaller). Caches that outlive the call (Converse2D's
    frequency responses) stay counted.

    A storage is identified by its ``StorageImpl`` (``_cdata``), and the mode holds a reference to every storage
    it has seen until it exits: no storage is freed meanwhile, so no later allocation can reuse its address
    (or its ``StorageImpl``) and be mistaken for it, as keys by ``data_ptr`` were whenever the heap handed
    an address back (the count then depended on what earlier code had allocated and freed)."""

    def __init__(self, start_bytes=0):
        super().__init__()
        self.live, self.current, self.peak = {}, start_bytes, start_bytes
        self.held = {}  # StorageImpl address -> the storage, kept alive while the mode is

    def _release(self, key):
        nbytes, refs = self.live[key]
        if refs > 1:
            self.live[key] = (nbytes, refs - 1)
        else:
            del self.live[key]
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        workspace = 0
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type == 'meta':
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            self.held.setdefault(key, storage)
            nbytes, refs = self.live.get(key, (0, 0))
            self.current += storage.nbytes() - nbytes  # a new storage, or one that an op resized
            self.live[key] = (storage.nbytes(), refs + 1)
            weakref.finalize(t, self._release, key)
            if func.__name__.split('.')[0] in FFT_OPS:
                workspace = max(workspace, storage.nbytes())
        self.peak = max(self.peak, self.current + workspace)
        return out


def peak_tensor_bytes(fn, *inputs):
    """Peak bytes of the tensors alive during ``fn(*inputs)`` (inputs included, weights not): see
    :class:`_TensorBytes`. Works on any device, the CPU included; measures what PyTorch allocates,
    not allocator rounding."""
    start = sum(t.untyped_storage().nbytes() for t in inputs if isinstance(t, torch.Tensor))
    mode = _TensorBytes(start)
    collecting = gc.isenabled()
    gc.disable()  # tensors in reference cycles die at the same point in every run, not at a collection
    try:
        with mode:
            result = fn(*inputs)
        del result
    finally:
        mode.held.clear()  # the finalizers outlive the mode; the storages need not
        if collecting:
            gc.enable()
    return mode.peak


def _clear_responses(model):
    for module in model.modules():
        if isinstance(getattr(module, '_cache', None), dict):
            module._cache.clear()


class MemoryPlanner:
    """``tile='auto'`` for one model (a :class:`~converse_basicsr.inference.description.ModelInfo`): its memory
    model is measured once, on first use, then every image's tile is chosen from it."""

    def __init__(self, info, tile_pad):
        self.info, self.tile_pad = info, tile_pad
        self.memory_model = None  # (bytes independent of the size, bytes per input pixel)

    def measure(self):
        """(bytes independent of the size, bytes per input pixel) of one forward pass, from the tensors
        it allocates at two probe sizes (see :func:`peak_tensor_bytes`): activations, padded maps,
        spectra, the solve's terms, Converse2D's response cache and an FFT work space."""
        info = self.info
        kernel = info.probe_kernel()
        size = max(32, info.min_size)
        peaks = []
        with torch.no_grad():
            for s in (size, 2 * size):
                x = torch.rand(1, info.in_channels, s, s).to(info.device, info.dtype)
                # An uncounted pass first: what a first call at a size builds once and keeps (the operator's
                # twiddle tables, O(h + w) bytes) is not per-pixel cost, and whether earlier calls left it cached
                # must not change the measurement (it did: the slope then depended on the tests run before).
                info.forward(x, kernel)
                _clear_responses(info.model)  # the responses counted as built, not as cached by that pass
                peaks.append(peak_tensor_bytes(lambda t: info.forward(t, kernel), x))
        per_pixel = max(peaks[1] - peaks[0], 0) / (3 * size * size)
        return max(peaks[0] - per_pixel * size * size, 0), per_pixel

    def estimate_bytes(self, h, w):
        """Estimated peak memory of one forward pass on an ``h``×``w`` input: the weights plus a
        size-independent part and a per-pixel part measured from the model's own allocations
        (:meth:`measure`, once per planner)."""
        if self.memory_model is None:
            self.memory_model = self.measure()
        fixed, per_pixel = self.memory_model
        params = sum(p.numel() * p.element_size() for p in self.info.model.parameters())
        return int(math.ceil(params + fixed + per_pixel * h * w))

    def auto_tile(self, h, w):
        """``None`` when the whole image fits in ``MEMORY_FRACTION`` of the free memory, else the
        largest tile (multiple of 32, at least ``MIN_AUTO_TILE`` and the model's minimum input)
        whose padded size fits."""
        budget = MEMORY_FRACTION * available_memory(self.info.device)
        if self.estimate_bytes(h, w) <= budget:
            return None
        smallest = max(MIN_AUTO_TILE, self.info.min_size)
        for tile in range(max(h, w) // 32 * 32, smallest - 1, -32):
            if self.estimate_bytes(min(tile, h) + 2 * self.tile_pad, min(tile, w) + 2 * self.tile_pad) <= budget:
                return tile
        return smallest
