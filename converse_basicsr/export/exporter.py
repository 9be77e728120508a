"""``to_onnx``: a model with Converse2D layers as one ONNX file with dynamic batch, height and width.

Converse2D is traced through :func:`converse_basicsr.ops.dense_dft.dense_converse2d` (the route
:func:`converse_basicsr.ops.converse2d` takes under ``torch.onnx.export``): only the standard ONNX domain
appears in the graph. A kernel-conditioned model (Converse-USRNet, any ``forward(x, kernel, sf)``) gets the
blur kernel as a second named input; its ``sf`` is fixed at export (``scale``). The file carries the
metadata that :mod:`.runtime` checks: scale, channels, minimum size, value range and the inputs.
"""
import inspect
import json
import os
from pathlib import Path

import onnx
import torch

from ..data.io import write_atomic
from ..ops import Converse2D
from ..ops.padding import min_input_size
from ..utils.checks import ConverseError
from .functions import SolveFunctions
from .runtime import METADATA_PREFIX, session_for
from .tracing import dynamic_shapes, trace_once

DEFAULT_OPSET = 20
MIN_TRACE_SIZE = 16  # the example input's height; its width is this + 3 (distinct, so no axis is specialised)


class ExportError(ConverseError):
    """A model, an argument or an output path that cannot be exported."""


class _KernelModel(torch.nn.Module):
    """``forward(input, kernel)`` of a ``forward(x, kernel, sf)`` model with its ``sf`` fixed."""

    def __init__(self, model, sf):
        super().__init__()
        self.model, self.sf = model, sf

    def forward(self, x, kernel):
        return self.model(x, kernel, self.sf)


def takes_kernel(model):
    return 'kernel' in inspect.signature(model.forward).parameters


def converse_layers(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Converse2D)]


def _trace_minimum(model):
    """The lower bound of the traced dynamic sizes: the operator's rule
    (:func:`converse_basicsr.ops.padding.min_input_size`, the file's ``converse.min_size``), but at least 2
    (``torch.export`` specialises a dimension that may be 0 or 1; the graph runs at 1 too, tested)."""
    return max(2, min_input_size(model))


def _channels(model, in_channels):
    if in_channels is not None:
        return int(in_channels)
    for key in ('num_in_ch', 'in_chans'):
        if isinstance(getattr(model, key, None), int):
            return getattr(model, key)
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if first is None:
        raise ExportError(f'cannot tell how many channels {type(model).__name__} takes; pass in_channels')
    return first.in_channels


def _example(model, channels, kernel_size, static):
    h, w = static or (max(MIN_TRACE_SIZE, _trace_minimum(model) + 3), ) * 2
    w = w if static else w + 3
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1 if static else 2, channels, h, w, generator=generator)
    if not kernel_size:
        return (x, )
    kernel = torch.rand(x.shape[0], 1, kernel_size, kernel_size, generator=generator)
    return x, kernel / kernel.sum(dim=(-2, -1), keepdim=True)


def _trace(module, inputs, names, opset, static):
    """The graph. Static: one trace. Dynamic: one trace of the model in which each Converse2D solve is a call of
    its setting's function, traced once for all calls and inlined (:mod:`.functions`)."""
    if static:
        return trace_once(module, inputs, names, opset, None)
    dynamic = dynamic_shapes(inputs, _trace_minimum(module), batched=(1, ) if len(inputs) > 1 else ())
    solves = SolveFunctions()
    with solves.calls():
        proto = trace_once(module, inputs, names, opset, dynamic)
    return solves.inline(proto, opset)


def _first_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:  # torch.onnx wraps the cause; its summary names the exception that started it
        if line.startswith('<class ') and ':' in line:
            return line.split('>:', 1)[-1].strip()
    return lines[0] if lines else type(err).__name__


def find_unexportable(model, inputs, opset):
    """``(layer name, reason)`` of the first leaf module (in call order) that does not export alone, or None."""
    calls = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=name: calls.append((name, mod, args)))
        for name, m in model.named_modules() if not list(m.children())
    ]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    for name, module, args in calls:
        if not all(torch.is_tensor(a) for a in args):
            continue
        try:
            trace_once(module, args, [f'input{i}' for i in range(len(args))], opset, None)
        except Exception as err:  # noqa: BLE001  any failure of the exporter is the answer sought
            return name, _first_line(err)
    return None


def metadata(model, channels, out_channels, scale, kernel_size, names, entry=None, value_range=(0.0, 1.0)):
    """The ``converse.*`` metadata entries written into the file."""
    meta = {
        'scale': scale,
        'in_channels': channels,
        'out_channels': out_channels,
        'min_size': min_input_size(model),
        'value_range': list(value_range),
        'inputs': names,
        'kernel_size': kernel_size,
        'converse_layers': len(converse_layers(model)),
        'formulation': 'dense_dft',
        'model': entry.name if entry is not None else type(model).__name__,
        'task': entry.task if entry is not None else ('deblur_nonblind' if kernel_size else 'restore'),
        # tiles take their border context from the opposite side (Converse-USRNet's FFT data step): the runtime
        # reads it back, so that a tiled run of the file equals the tiled run of the model
        'periodic_boundary': bool(getattr(model, 'periodic_boundary', False)),
    }
    return {METADATA_PREFIX + k: json.dumps(v) for k, v in meta.items()}


def _check_paths(path, sources):
    path = Path(path)
    if path.suffix.lower() != '.onnx':
        raise ExportError(f'output {path} must end in .onnx')
    for source in sources:
        if source is not None and Path(source).exists() and path.exists() and os.path.samefile(path, source):
            raise ExportError(f'output {path} would overwrite the input {source}; choose another output')
    if not path.parent.is_dir():
        raise ExportError(f'output folder {path.parent} does not exist')
    return path


def _measure(module, inputs):
    with torch.no_grad():
        out = module(*inputs)
    if not torch.is_tensor(out) or out.dim() != 4:
        raise ExportError(f'{type(module).__name__} returns {type(out).__name__}, not one (N, C, H, W) tensor')
    scale = out.shape[-2] / inputs[0].shape[-2]
    if scale != out.shape[-1] / inputs[0].shape[-1] or scale != int(scale) or scale < 1:
        raise ExportError(f'{type(module).__name__} turns {tuple(inputs[0].shape)} into {tuple(out.shape)}: '
                          'not an integer scale equal on both axes')
    return out, int(scale)


def to_onnx(model, path, *, in_channels=None, scale=1, static=None, opset=DEFAULT_OPSET, entry=None, source=None,
            value_range=(0.0, 1.0)):
    """Export ``model`` (an ``nn.Module``, float32, CPU) to the ONNX file ``path``; returns the notes (strings).

    Inputs are ``input`` ``(N, C, H, W)`` and, for a ``forward(x, kernel, sf)`` model, ``kernel``
    ``(N, 1, k, k)`` with ``sf = scale`` fixed. Batch, height and width are dynamic unless ``static``
    ``(H, W)`` is given. ``source`` (the checkpoint the model came from) is never overwritten; the file is
    written atomically and only after ``onnx.checker`` passed. ``entry``: the zoo entry (metadata).
    """
    path = _check_paths(path, [source])
    if static is not None and (len(static) != 2 or min(static) < min_input_size(model)):
        raise ExportError(f'static size {static} must be (H, W), each at least {min_input_size(model)}')
    model = model.float().cpu().eval()
    kernel_size = int(getattr(model, 'kernel_size', 7)) if takes_kernel(model) else 0
    module = _KernelModel(model, scale) if kernel_size else model
    names = ['input', 'kernel'] if kernel_size else ['input']
    channels = _channels(model, in_channels)
    inputs = _example(model, channels, kernel_size, static)
    reference, measured = _measure(module, inputs)
    notes = []
    if not converse_layers(model):
        notes.append(f'{type(model).__name__} has no Converse2D layer: exported as plain PyTorch layers')
    try:
        proto = _trace(module, inputs, names, opset, static)
    except Exception as err:  # noqa: BLE001  reported as one error naming the layer that fails
        culprit = find_unexportable(module, inputs, opset)
        where = f'layer {culprit[0]!r}: {culprit[1]}' if culprit else _first_line(err)
        raise ExportError(f'cannot export {type(model).__name__}: {where}') from err
    domains = {node.domain for node in proto.graph.node} - {'', 'ai.onnx'}
    if domains:
        raise ExportError(f'the exported graph uses non-standard operator domains {sorted(domains)}')
    for key, value in metadata(model, channels, reference.shape[1], measured, kernel_size, names, entry,
                               value_range).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    _verify(proto, inputs, names, reference)
    other = (inputs[0].flip(-1) * 0.5 + 0.25, ) + inputs[1:]  # a second input: no input baked in as a constant
    _verify(proto, other, names, _measure(module, other)[0])
    if not static:  # both branches of the height If: a height one row shorter than the example's
        shorter = (inputs[0][:, :, 1:].contiguous(), ) + inputs[1:]
        _verify(proto, shorter, names, _measure(module, shorter)[0])
    write_atomic(path, lambda tmp: onnx.save(proto, tmp))
    return notes


def _verify(proto, inputs, names, reference, tolerance=1e-3):
    """Run the graph once on the example input in ONNX Runtime: a wrong graph is never written."""
    out = session_for(proto.SerializeToString()).run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
    error = float(abs(torch.from_numpy(out) - reference).max()) if out.shape == tuple(reference.shape) else None
    if error is None or not error <= tolerance:
        raise ExportError(f'the exported graph disagrees with PyTorch on the example input (max abs error {error}, '
                          f'shape {out.shape} vs {tuple(reference.shape)})')
