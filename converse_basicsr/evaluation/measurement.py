"""converse-compare's measurements: peak memory of a run (:class:`PeakMemory`) and the compute of one forward
pass (:func:`count_flops`, with an analytic count of the FFTs the counter cannot see, :data:`FLOPS_NOTE`)."""
import math
import os
import threading
from os import path as osp

import torch
from torch.utils.flop_counter import FlopCounterMode

from converse_basicsr.ops import Converse2D

FLOPS_NOTE = ('FLOPs: torch.utils.flop_counter.FlopCounterMode on one forward pass at the stated output size '
              '(a multiply-add counts 2). The counter does not see FFTs (torch.fft or scipy pocketfft): for each '
              'Converse2D, `GFLOPs FFT` adds an analytic count of one forward real 2-D FFT of the padded input '
              '(h×w) and one inverse real 2-D FFT of the output (hs×ws) per channel, 2.5·N·log2(N) each '
              '(N points); its kernel spectra are matrix products, which the counter includes.')


class PeakMemory:
    """Peak memory of the code inside ``with``: CUDA's allocator peak on a GPU; on the CPU the growth of the
    resident set (read from /proc/self/statm every millisecond) after ``malloc_trim`` returned free heap."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak = None

    @staticmethod
    def _rss():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

    def _poll(self):
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            self._stop.wait(0.001)

    def __enter__(self):
        if self.device.type == 'meta':  # not measuring
            return self
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif osp.exists('/proc/self/statm'):
            try:
                import ctypes
                ctypes.CDLL(None).malloc_trim(0)
            except (OSError, AttributeError):
                pass
            self._base = self._max = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        elif hasattr(self, '_stop'):
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, self._rss()) - self._base
        return False


def fft_flops(module, inputs):
    """Analytic real-FFT flops of one Converse2D call (see ``FLOPS_NOTE``)."""
    n, c, h, w = inputs[0].shape
    h, w = h + 2 * module.padding, w + 2 * module.padding
    s = module.scale

    def real_fft(points):
        return 2.5 * points * math.log2(points) if points > 1 else 0.0

    return n * c * (real_fft(h * w) + real_fft(h * s * w * s))


def count_flops(info, channels, size, scale, kernel):
    """(counted flops, analytic FFT flops) of one forward pass producing a ``size``×``size`` output."""
    side = max(size // scale, 1)
    x = torch.rand(1, channels, side, side, device=info.device)
    fft_total = [0.0]
    hooks = [
        m.register_forward_pre_hook(lambda m, args: fft_total.__setitem__(0, fft_total[0] + fft_flops(m, args)))
        for m in info.model.modules() if isinstance(m, Converse2D)
    ]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            info.forward(x, kernel)
        return float(counter.get_total_flops()), fft_total[0]
    finally:
        for hook in hooks:
            hook.remove()
