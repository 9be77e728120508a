"""The model description: what a restoration model does, measured with small probe forwards (input
channels, output scale, smallest input, whether it takes a blur kernel, periodic boundary), and the one
kernel dispatch (``model(x, kernel, sf)`` or ``model(x)``)."""
import inspect
from dataclasses import dataclass

import torch

from converse_basicsr.utils.checks import check_int, is_int
from converse_basicsr.utils.options import check_device as check_options_device

__all__ = ['ModelInfo', 'describe', 'check_device', 'takes_kernel', 'MAX_PROBE_SIZE']

MAX_PROBE_SIZE = 64  # the minimum-input search gives up above this
PROBE_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, AssertionError)


def check_device(device):
    """``device`` as a ``torch.device`` by the one device rule (:func:`converse_basicsr.utils.options.check_device`:
    the CPU or a CUDA device this machine has), else an ``OptionError`` (a ``ValueError``)."""
    return torch.device(check_options_device(device, 'device'))


def takes_kernel(model):
    """Whether ``model.forward`` takes a blur kernel (a non-blind, kernel-conditioned model such as USRNet)."""
    try:
        return 'kernel' in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class ModelInfo:
    """A model and what it does: ``scale`` (output / input size; a kernel model's ``sf``), ``kernel_size``
    (0: blind), ``min_size`` (smallest square input it runs on), ``in_channels`` and ``periodic`` (its whole-image
    run treats the image as periodic, so its tiles take their context from the opposite side)."""
    model: torch.nn.Module
    name: str
    device: torch.device
    dtype: torch.dtype
    in_channels: int
    kernel_size: int
    scale: int
    min_size: int = 1
    periodic: bool = False

    def forward(self, x, kernel=None, scale=None):
        """The one kernel dispatch: a kernel-conditioned model gets ``(x, kernel, sf)``, any other ``x`` alone."""
        if self.kernel_size:
            return self.model(x, kernel, self.scale if scale is None else scale)
        return self.model(x)

    def probe_kernel(self):
        """A uniform blur kernel for the probe forwards of a non-blind model (None for the others)."""
        if not self.kernel_size:
            return None
        size = self.kernel_size
        return torch.full((1, 1, size, size), 1 / size**2, device=self.device, dtype=self.dtype)


def declared(model, entry=None, arch_kwargs=None):
    """(input channel candidates, kernel size or 0, declared output scale or None) of ``model``.

    Channels: the zoo ``entry``'s; else, in this order, the arch kwargs' or the model's ``num_in_ch`` /
    ``in_chans`` (SwinIR), the first convolution's input channels, 3 and 1; :func:`describe` keeps the
    first the model runs with (RRDBNet ×2 pixel-unshuffles: its first convolution takes 12)."""
    if entry is not None:
        return [entry.in_channels], entry.kernel_size, None if entry.kernel_size else entry.scale
    candidates = [
        source.get(key) if isinstance(source, dict) else getattr(source, key, None)
        for source in (arch_kwargs or {}, model) for key in ('num_in_ch', 'in_chans')
    ]
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    candidates += [first.in_channels if first is not None else None, 3, 1]
    candidates = list(dict.fromkeys(c for c in candidates if is_int(c)))
    kernel = takes_kernel(model)
    kernel_size = getattr(model, 'kernel_size', 7) if kernel else 0
    scale = None
    if not kernel:
        for attr in ('upscale', 'scale'):  # BasicSR's archs: MSRResNet/SwinIR/SRVGG 'upscale', RRDBNet 'scale'
            if is_int(getattr(model, attr, None)):
                scale = getattr(model, attr)
                break
    return candidates, kernel_size, scale


def _smallest_input(info, candidates, runs):
    """(channels, smallest size): doubling up to ``MAX_PROBE_SIZE`` then bisection (a model that runs on a size
    runs on larger ones), for each channel candidate in turn until one runs."""
    for channels in candidates:
        size = 1
        while size <= MAX_PROBE_SIZE and not runs(channels, size):
            size *= 2
        if size <= MAX_PROBE_SIZE:
            break
    else:
        tried = ', '.join(map(str, candidates))
        raise ValueError(f'model {info.name} does not run on any probe input of {tried} channels up to '
                         f'{MAX_PROBE_SIZE}x{MAX_PROBE_SIZE}; with {candidates[0]}: {runs.errors[candidates[0]]}')
    low, high = size // 2, size  # low fails (or is 0), high runs
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if runs(channels, mid) else (mid, high)
    return channels, high, size


@torch.no_grad()
def _probe(info, candidates):
    """Fill in ``info.in_channels`` and ``info.min_size``; return the measured scale, on a non-square input:
    the first power-of-two size that ran (8 at least) by twice that."""
    generator = torch.Generator().manual_seed(0)
    kernel = info.probe_kernel()

    def run(c, h, w):
        return info.forward(torch.rand(1, c, h, w, generator=generator).to(info.device, info.dtype), kernel)

    def runs(c, size):
        try:
            run(c, size, size)
            return True
        except PROBE_ERRORS as err:
            runs.errors[c] = err
            return False

    runs.errors = {}
    info.in_channels, info.min_size, size = _smallest_input(info, candidates, runs)
    h = max(size, 8)
    out = run(info.in_channels, h, 2 * h)
    ratio_h, ratio_w = out.shape[-2] / h, out.shape[-1] / (2 * h)
    if ratio_h != ratio_w or ratio_h != int(ratio_h) or ratio_h < 1:
        raise ValueError(f'model {info.name} turns a {2 * h}x{h} input into {out.shape[-1]}x{out.shape[-2]}: '
                         'not an integer scale equal on both axes, which restoration needs')
    return int(ratio_h)


def describe(model, name, device, dtype=torch.float32, entry=None, arch_kwargs=None, scale=None, channels=None):
    """Probe ``model`` (already on ``device`` in ``dtype``, in eval mode) and return its :class:`ModelInfo`.

    ``scale``: for a kernel-conditioned model its ``sf`` (default 1); for any other model the expected output
    scale, checked against the measured one (``None``: not checked); the measured scale is also checked against
    the model's declared ``upscale``/``scale`` attribute (or zoo ``entry``). ``channels``: the input channel
    count to use (default: see :func:`declared`)."""
    candidates, kernel_size, declared_scale = declared(model, entry, arch_kwargs)
    sf = check_int(1 if scale is None else scale, 'scale', minimum=1) if kernel_size else 1
    info = ModelInfo(model, name, device, dtype, None, kernel_size, sf,
                     periodic=bool(getattr(model, 'periodic_boundary', False)))
    measured = _probe(info, [channels] if channels else candidates)
    if kernel_size:  # sf is an argument of the model
        if measured != sf:
            raise ValueError(f'model {name} was given sf={sf} but its output is {measured}x its input')
    elif declared_scale is not None and declared_scale != measured:
        raise ValueError(f'model {name} declares scale {declared_scale} but its output is {measured}x its input '
                         '(measured with a probe input)')
    elif scale is not None and scale != measured:
        raise ValueError(f'scale {scale!r} was asked for, but model {name} upscales by {measured} '
                         '(measured with a probe input)')
    info.scale = measured
    return info
