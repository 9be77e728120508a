"""converse-compare's model entries: one ``models`` entry (zoo name, arch + options, ``module:callable``,
``nn.Module``, checkpoint path, or the trivial ``input`` / ``bicubic`` rows) → a labelled ``nn.Module``
(:class:`ModelSpec`), through a table of one small loader per entry kind (:data:`LOADERS`)."""
import os
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from basicsr.utils.matlab_functions import imresize
from converse_basicsr.evaluation import public_models
from converse_basicsr.evaluation.compare_inputs import CompareError
from converse_basicsr.hub import zoo
from converse_basicsr.utils.imports import import_target

TRIVIAL = ('input', 'bicubic')


class DegradedInput(torch.nn.Module):
    """The degraded input itself as a row; for SR enlarged by nearest-neighbour repetition to the output size."""

    def __init__(self, scale=1):
        super().__init__()
        self.upscale = scale

    def forward(self, x):
        return x.clone() if self.upscale == 1 else F.interpolate(x, scale_factor=self.upscale, mode='nearest')


class Bicubic(torch.nn.Module):
    """Bicubic upsampling by ``scale`` with BasicSR's MATLAB-style ``imresize`` (the usual SR baseline)."""

    def __init__(self, scale):
        super().__init__()
        self.upscale = scale

    def forward(self, x):
        return torch.stack([imresize(image, self.upscale) for image in x.float().cpu()]).to(x.device)


@dataclass
class ModelSpec:
    """One row's model: its label, the module, and where it came from (the table's Sources note)."""
    name: str
    module: torch.nn.Module = None
    source: str = ''
    error: str = None


def import_callable(target):
    """``package.module:callable`` → the callable (:func:`converse_basicsr.utils.imports.import_target`)."""
    return import_target(target, 'a custom model')  # from PYTHONPATH or the current folder


def _trivial(entry, label, task, scale, model_dir):
    kind = entry.get('trivial') or entry.get('zoo')
    if kind == 'bicubic' and task != 'sr':
        raise CompareError('the bicubic row is for super-resolution protocols only')
    if kind == 'input':
        return ModelSpec(label or kind, DegradedInput(scale),
                         'degraded input' + (f' (nearest ×{scale})' if scale > 1 else ''))
    return ModelSpec(label or kind, Bicubic(scale), f'bicubic ×{scale} (MATLAB imresize)')


def _module(entry, label, task, scale, model_dir):
    module = entry['module']
    return ModelSpec(label or type(module).__name__, module, f'nn.Module {type(module).__name__}')


def _zoo(entry, label, task, scale, model_dir):
    module = zoo.load_pretrained(entry['zoo'], model_dir=entry.get('model_dir', model_dir))
    return ModelSpec(label or entry['zoo'], module, f"zoo {entry['zoo']}")


def _callable(entry, label, task, scale, model_dir):
    module = import_callable(entry['callable'])(**(entry.get('kwargs') or {}))
    if not isinstance(module, torch.nn.Module):
        raise CompareError(f"{entry['callable']} returned {type(module).__name__}, not a torch.nn.Module")
    return ModelSpec(label or entry['callable'], module, f"callable {entry['callable']}")


def _arch(entry, label, task, scale, model_dir):
    arch = entry.pop('type')
    checkpoint = entry.pop('path', None)
    seed = entry.pop('seed', 0)
    if checkpoint is None:
        torch.manual_seed(seed)
        module = zoo.build_arch(arch, entry)
        source = f'{arch} {entry or ""} untrained (random init, seed {seed})'
    else:
        module = zoo.load_pretrained(checkpoint, arch=arch, arch_kwargs=entry)
        source = f'{arch} {entry or ""} {checkpoint}'
    return ModelSpec(label or arch, module, source.replace('  ', ' '))


def _onnx(entry, label, task, scale, model_dir):
    """An exported file run by ONNX Runtime (needs the ``export`` extra)."""
    from converse_basicsr.export.runtime import load_for_task
    module = load_for_task(entry['onnx'], task, scale)
    return ModelSpec(label or os.path.basename(entry['onnx']), module, f"onnx {entry['onnx']}")


LOADERS = {
    'trivial': _trivial,
    'module': _module,
    'zoo': _zoo,
    'callable': _callable,
    'type': _arch,
    'onnx': _onnx,
}
"""Entry kind (the key that names it) → loader ``(entry, label, task, scale, model_dir) -> ModelSpec``."""


def entry_kind(entry):
    """(kind, entry as a dict): the kind is a key of :data:`LOADERS`, or ``'path'`` for a checkpoint file."""
    if isinstance(entry, torch.nn.Module):
        return 'module', {'module': entry}
    if isinstance(entry, str) and entry.lower().endswith('.onnx'):
        return 'onnx', {'onnx': entry}
    if public_models.is_path_entry(entry):
        return 'path', entry
    if isinstance(entry, str):
        kind = 'callable' if ':' in entry else 'trivial' if entry in TRIVIAL else 'zoo'
        return kind, {kind: entry}
    entry = dict(entry)
    if entry.get('zoo') in TRIVIAL:
        return 'trivial', entry
    kind = next((key for key in LOADERS if key in entry), None)
    if kind is None:
        raise CompareError(f'cannot read model entry {entry!r}: give a zoo name, type (+ path), callable or module')
    return kind, entry


def load_model(entry, task, scale, model_dir=None):
    """A :class:`ModelSpec` for one ``models`` entry. Accepted entries:

    - ``'input'`` (the degraded input), ``'bicubic'`` (SR only);
    - a zoo name (``converse_dncnn``, ...), or ``{zoo: NAME, name: LABEL}``;
    - ``{type: ARCH, path: CHECKPOINT, <arch options>}``: any arch in BasicSR's ``ARCH_REGISTRY`` (BasicSR's
      own or this package's); without ``path`` the arch is randomly initialised (``seed``, default 0);
    - ``'package.module:callable'`` or ``{callable: 'package.module:callable', kwargs: {...}}`` returning an
      ``nn.Module``;
    - ``'FILE.onnx'`` or ``{onnx: FILE, name: LABEL}``: an exported model run by ONNX Runtime;
    - a checkpoint file (``'x.pth'`` or ``{path: FILE}`` without ``type``): arch detected
      (:mod:`converse_basicsr.evaluation.public_models`);
    - in the Python API, an ``nn.Module`` or ``{module: nn.Module, name: LABEL}``.
    """
    kind, entry = entry_kind(entry)
    if kind == 'path':
        return public_models.path_spec(entry, ModelSpec)
    label = entry.pop('name', None)
    return LOADERS[kind](entry, label, task, scale, model_dir)


def model_label(entry, index):
    """The label of a ``models`` entry before it is loaded (used when loading it fails)."""
    if isinstance(entry, dict) and entry.get('name'):
        return str(entry['name'])
    if isinstance(entry, str):
        return entry
    return f'model {index + 1}'
