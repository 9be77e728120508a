"""Tracing for ONNX: ``torch.onnx.export`` without its progress lines, dynamic sizes, and the two traces by height.

:func:`trace_by_height` traces a module twice when its first input's height decides the formulation (the
radix-4 height transforms of :mod:`converse_basicsr.ops.dense_dft` apply to heights that are multiples of 4,
which the tracer can only know when told) and merges both graphs under one ``If`` (:mod:`.branches`).
"""
import contextlib
import io
import logging
import warnings

import torch

from ..ops import dense_dft
from .branches import merge_by_height

MAX_SIZE = 16384


def dynamic_shapes(inputs, min_size, height_multiple=1, batched=()):
    """Dynamic batch, height and width of ``inputs[0]`` (heights ``4·k`` only with ``height_multiple`` 4); the
    batch of the inputs at the indices ``batched`` follows it; the other inputs have fixed sizes."""
    batch = torch.export.Dim('batch', min=1, max=1024)
    if height_multiple == 1:
        height = torch.export.Dim('height', min=min_size, max=MAX_SIZE)
    else:
        height = height_multiple * torch.export.Dim('height_over_4', min=-(-min_size // height_multiple),
                                                    max=MAX_SIZE // height_multiple)
    first = {0: batch, 2: height, 3: torch.export.Dim('width', min=min_size, max=MAX_SIZE)}
    return (first, ) + tuple({0: batch} if i in batched else None for i in range(1, len(inputs)))


@contextlib.contextmanager
def _quiet():
    """Silence torch.onnx's progress lines (``[torch.onnx] ...`` on stdout), its loggers and its warnings."""
    logger = logging.getLogger('torch.onnx')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)


def trace_once(module, inputs, names, opset, dynamic):
    """The ONNX ``ModelProto`` of ``module`` on ``inputs`` (``dynamic``: :func:`dynamic_shapes`, or None)."""
    with _quiet():
        program = torch.onnx.export(module, inputs, dynamo=True, opset_version=opset, input_names=names,
                                    output_names=['output'], dynamic_shapes=dynamic, verbose=False, optimize=True)
    return program.model_proto


def trace_by_height(module, inputs, names, opset, min_size, batched=()):
    """One graph for every height of ``inputs[0]``: traced for any height and (radix-4 step on) for heights
    ``4·k``, merged under one ``If`` on ``height % 4 == 0``. ``inputs[0]``'s height must be at least
    ``min_size + 3``."""
    general = trace_once(module, inputs, names, opset, dynamic_shapes(inputs, min_size, batched=batched))
    if dense_dft.ROW_RADIX != 4:
        return general
    inputs4 = (inputs[0][:, :, :inputs[0].shape[2] // 4 * 4].contiguous(), ) + tuple(inputs[1:])
    # the hook runs while tracing: it tells the solve that its input's height symbol is a multiple of 4
    hook = module.register_forward_pre_hook(lambda mod, args: dense_dft.mark_height_multiple_of_4(args[0].shape[2]))
    try:
        radix4 = trace_once(module, inputs4, names, opset, dynamic_shapes(inputs4, min_size, 4, batched))
    finally:
        hook.remove()
        dense_dft.HEIGHTS_OF_4K.clear()
    return merge_by_height(radix4, general)
