"""ONNX Runtime behind an ``nn.Module`` interface: an exported file restores like the PyTorch model.

:func:`load_onnx` reads a file written by :func:`.exporter.to_onnx` (or any ONNX image model with one
``(N, C, H, W)`` float input and, optionally, an ``(N, 1, k, k)`` kernel input), checks its inputs, and
returns an :class:`OnnxModel` (``forward(x)``) or :class:`OnnxKernelModel` (``forward(x, kernel, sf)``), so
that :class:`converse_basicsr.inference.restorer.Restorer` and ``converse-compare`` use it unchanged: same
tiling, same probes, same checks. The session runs on the CPU provider.
"""
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..utils.checks import ConverseError

METADATA_PREFIX = 'converse.'  # the keys of the metadata :func:`.exporter.to_onnx` writes


class OnnxModelError(ConverseError):
    """A file that is not ONNX, or whose inputs do not fit the task."""


def session_for(model, threads=None):
    """An ONNX Runtime CPU session for ``model`` (a path or serialised bytes)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    threads = threads or torch.get_num_threads()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=['CPUExecutionProvider'])


def _describe_inputs(inputs):
    return ', '.join(f'{i.name} {i.type} {list(i.shape)}' for i in inputs) or 'none'


def _expected(kernel_size):
    base = 'input tensor(float) [N, C, H, W] with C = 1 or 3'
    return base + (f', kernel tensor(float) [N, 1, {kernel_size}, {kernel_size}]' if kernel_size else '')


def read_metadata(session):
    props = session.get_modelmeta().custom_metadata_map
    meta = {}
    for key, value in props.items():
        if key.startswith(METADATA_PREFIX):
            try:
                meta[key[len(METADATA_PREFIX):]] = json.loads(value)
            except ValueError:
                pass
    return meta


def _check_inputs(path, inputs, want_kernel):
    """``(channels, kernel size or 0)`` from the graph inputs; an :class:`OnnxModelError` naming the expected
    and the actual inputs when they do not fit image restoration (``want_kernel``: None = either)."""
    image, kernel = (inputs + [None, None])[:2]
    channels = image.shape[1] if image is not None and len(image.shape) == 4 else None
    k = kernel.shape[-1] if kernel is not None and len(kernel.shape) == 4 else None
    fits = (
        image is not None and image.type == 'tensor(float)' and channels in (1, 3) and len(inputs) <= 2
        and (kernel is None or
             (kernel.type == 'tensor(float)' and isinstance(k, int) and kernel.shape[1] == 1 and kernel.shape[2] == k)))
    if fits and want_kernel is not None and want_kernel != (kernel is not None):
        fits = False
    if not fits:
        expected = _expected(k if isinstance(k, int) else 'k') if want_kernel or (want_kernel is None and kernel) \
            else _expected(0)
        raise OnnxModelError(f'{path}: inputs do not fit the task: expected {expected}; '
                             f'the file has {_describe_inputs(inputs)}')
    return channels, (k if kernel is not None else 0)


def load_onnx(path, threads=None, want_kernel=None, scale=None):
    """The :class:`OnnxModel` (or :class:`OnnxKernelModel`) for the ONNX file ``path``.

    ``want_kernel``: True / False when the task needs / forbids a kernel input (None: either); ``scale``:
    the output scale the task needs (None: any). Mismatches and files that are not ONNX raise
    :class:`OnnxModelError` naming the file, the expected and the actual inputs.
    """
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f'ONNX model {path} does not exist')
    try:
        session = session_for(os.fspath(path), threads)
    except Exception as err:  # noqa: BLE001  onnxruntime's own exception types: the file is not usable ONNX
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OnnxModelError(f'{path} is not an ONNX model ONNX Runtime can load: {reason[:200]}') from None
    channels, kernel_size = _check_inputs(path, session.get_inputs(), want_kernel)
    meta = read_metadata(session)
    if scale is not None and meta.get('scale', scale) != scale:
        raise OnnxModelError(f'{path}: the task needs scale {scale}, the file upscales by {meta["scale"]}')
    cls = OnnxKernelModel if kernel_size else OnnxModel
    return cls(session, path, channels, kernel_size, meta)


class OnnxModel(torch.nn.Module):
    """An exported model as a callable module (no parameters): ``forward(x)`` runs ONNX Runtime on the CPU."""

    def __init__(self, session, path, channels, kernel_size, meta):
        super().__init__()
        self.session, self.path, self.meta = session, Path(path), meta
        self.num_in_ch, self.kernel_size = channels, kernel_size
        self.min_size = int(meta.get('min_size', 1))
        self.upscale = meta.get('scale')  # Restorer cross-checks its measured scale against this
        self.input_names = [i.name for i in session.get_inputs()]
        self.periodic_boundary = bool(meta.get('periodic_boundary', False))

    def __repr__(self):
        return f'{type(self).__name__}({self.path})'

    def _run(self, *tensors):
        x = tensors[0]
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(f'{self.path} takes (N, {self.num_in_ch}, H, W) input, got {tuple(x.shape)}')
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f'{self.path} needs inputs of at least {self.min_size}x{self.min_size}, got '
                             f'{x.shape[-1]}x{x.shape[-2]}')
        feeds = {
            name: np.ascontiguousarray(t.detach().to('cpu', torch.float32).numpy())
            for name, t in zip(self.input_names, tensors)
        }
        try:
            out = self.session.run(None, feeds)[0]
        except Exception as err:  # noqa: BLE001  onnxruntime's exceptions are not RuntimeErrors
            raise RuntimeError(f'ONNX Runtime failed on {self.path}: {str(err).splitlines()[0]}') from None
        return torch.from_numpy(out).to(x.device, x.dtype)

    def forward(self, x):
        return self._run(x)


class OnnxKernelModel(OnnxModel):
    """An exported kernel-conditioned model: ``forward(x, kernel, sf)``, ``sf`` fixed at export."""

    def forward(self, x, kernel, sf=1):
        exported = self.meta.get('scale', 1)
        if sf != exported:
            raise ValueError(f'{self.path} was exported with sf={exported}; got sf={sf} (export again with --scale)')
        if kernel.shape[0] != x.shape[0]:
            kernel = kernel.expand(x.shape[0], *kernel.shape[1:])
        return self._run(x, kernel)


def load_for_task(path, task, scale=1):
    """:func:`load_onnx` for a ``converse-compare`` protocol: ``denoise`` and ``sr`` take no kernel input, an
    ``sr`` model must upscale by ``scale`` and the others by 1 (``deblur`` takes a model with or without one)."""
    want_kernel = False if task in ('denoise', 'sr') else None
    return load_onnx(path, want_kernel=want_kernel, scale=scale if task == 'sr' else 1)
