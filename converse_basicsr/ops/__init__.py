"""Depthwise reverse convolution (Converse2D): the operator, its mathematics and how it runs.

Layers: :mod:`.spectral` (the mathematics), :mod:`.execution` (FFT back end, layouts, channel groups,
response cache), :mod:`.parallel` (the CPU threads that run the channel groups), :mod:`.padding` (padding
and its adjoint), :mod:`.buffers` (reused memory for full-size results on CPU; ``buffers.release()`` frees
it), :mod:`.custom_ops` (autograd and ``torch.compile``), :mod:`.converse2d` (checks, routes, the module),
:mod:`.literal` (the published algorithm, the tests' oracle). Derivation: ``docs/derivation.md``.
Nothing here imports basicsr.
"""
from .converse2d import (PADDING_MODES, Converse2D, check_eps, check_input, check_padding, check_scale, converse2d,
                         is_channels_last, uses_nhwc_path)
from .spectral import regularizer, transfer_function, transfer_function_nhwc

__all__ = [
    'Converse2D', 'converse2d', 'PADDING_MODES', 'regularizer', 'transfer_function', 'transfer_function_nhwc',
    'check_input', 'check_scale', 'check_padding', 'check_eps', 'is_channels_last', 'uses_nhwc_path'
]
