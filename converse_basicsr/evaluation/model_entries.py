"""converse-compare's model entries: one ``models`` entry (zoo name, arch + options, ``module:callable``,
``nn.Module``, checkpoint path, ``.onnx``, or the trivial ``input`` / ``bicubic`` rows) → a labelled ``nn.Module``
(:class:`ModelSpec`), through a table of one small loader per entry kind (:data:`LOADERS`), each a call of the
model front door (:func:`converse_basicsr.hub.resolver.resolve`).

Checkpoint files (``--model PATH``, ``{path: PATH}``, ``{type: ARCH, path: PATH}``) are read once, before any
row runs, by :func:`check_paths`: resolved, given unique default labels (the arch, the file stem where two
would share it), and checked against the protocol (a file no loader recognises, or whose scale / channels do
not fit, ends the run with exit status 2); :func:`load_model` then takes each one's model from it."""
import json
import os
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from basicsr.utils.matlab_functions import imresize
from converse_basicsr.evaluation.compare_inputs import CompareError
from converse_basicsr.hub.public import check_protocol
from converse_basicsr.hub.resolver import default_labels, parse_model_arg, resolve, route
from converse_basicsr.hub.zoo import ZooError

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


def _spec(resolved, label):
    """The row of a resolved model; its Sources note says where it came from and, for a checkpoint, as what."""
    info = resolved.info
    if resolved.kind in ('zoo', 'callable', 'onnx'):
        source = f'{resolved.kind} {resolved.label if resolved.kind == "zoo" else info["source"]}'
    else:
        source = ' '.join(str(part) for part in (info['type'], info['kwargs'] or '', info['source']) if part != '')
    return ModelSpec(label or resolved.label, resolved.module, source)


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
    return _spec(resolve(entry['zoo'], model_dir=entry.get('model_dir', model_dir)), label)


def _callable(entry, label, task, scale, model_dir):
    return _spec(resolve(entry['callable'], arch_kwargs=entry.get('kwargs')), label)


def _arch(entry, label, task, scale, model_dir):
    arch, path, seed = entry.pop('type'), entry.pop('path', None), entry.pop('seed', 0)
    return _spec(resolve(path, arch=arch, arch_kwargs=entry, seed=seed), label)


def _onnx(entry, label, task, scale, model_dir):
    """An exported file run by ONNX Runtime (needs the ``export`` extra), checked against the task."""
    from converse_basicsr.export.runtime import load_for_task
    module = load_for_task(entry['onnx'], task, scale)
    return ModelSpec(label or os.path.basename(entry['onnx']), module, f"onnx {entry['onnx']}")


def _path(entry, label, task, scale, model_dir):
    return _spec(resolve(entry['path'], model_dir=model_dir), label)


LOADERS = {
    'trivial': _trivial,
    'module': _module,
    'zoo': _zoo,
    'callable': _callable,
    'type': _arch,
    'onnx': _onnx,
    'path': _path,
}
"""Entry kind (the key that names it) → loader ``(entry, label, task, scale, model_dir) -> ModelSpec``."""


def entry_kind(entry):
    """(kind, entry as a dict with its ``name`` when one is given): the kind is a key of :data:`LOADERS`. A string
    may be ``LABEL=SOURCE`` (:func:`converse_basicsr.hub.resolver.parse_model_arg`)."""
    if isinstance(entry, torch.nn.Module):
        return 'module', {'module': entry}
    if isinstance(entry, str):
        label, source = parse_model_arg(entry)
        named = {'name': label} if label else {}
        if source in TRIVIAL:
            return 'trivial', {'trivial': source, **named}
        try:
            kind = {'file': 'path', 'zoo_file': 'zoo'}.get(route(source), route(source))
        except ZooError:  # an unknown name: its row fails with the resolver's message
            kind = 'zoo'
        return kind, {kind: source, **named}
    entry = dict(entry)
    if entry.get('zoo') in TRIVIAL:
        return 'trivial', entry
    if 'path' in entry and 'type' not in entry and str(entry['path']).lower().endswith('.onnx'):
        entry['onnx'] = entry.pop('path')
    kind = next((key for key in LOADERS if key in entry), None)
    if kind is None:
        raise CompareError(
            f'cannot read model entry {entry!r}: give a zoo name, type (+ path), callable, path or module')
    return kind, entry


_PRELOADED = {}  # entry key -> (ResolvedModel, label): filled by check_paths, emptied by take_preloaded


def _key(entry):
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and not any(isinstance(v, torch.nn.Module) for v in entry.values()):
        return json.dumps(entry, sort_keys=True, default=str)
    return None


def _file_entry(entry):
    """``(label or None, path, arch, arch kwargs)`` of an entry naming a checkpoint file, else None."""
    try:
        kind, entry = entry_kind(entry)
    except CompareError:  # not a model entry at all: its row says so
        return None
    if kind == 'path':
        return entry.get('name'), entry['path'], None, None
    if kind == 'type' and entry.get('path'):
        kwargs = {k: v for k, v in entry.items() if k not in ('type', 'path', 'name', 'seed')}
        return entry.get('name'), entry['path'], entry['type'], kwargs
    return None


def check_paths(models, scale, channels):
    """Resolve every checkpoint-file entry of ``models`` once, label it, and check it against the protocol
    (``scale``, ``channels``); a ZooError names the file (converse-compare exits with status 2)."""
    _PRELOADED.clear()
    found = []
    for entry in models:
        named = _file_entry(entry)
        if named is not None:
            label, path, arch, kwargs = named
            resolved = resolve(path, arch=arch, arch_kwargs=kwargs)
            check_protocol(resolved, scale, channels)
            found.append((entry, resolved, label))
    labels = default_labels([resolved for _, resolved, _ in found])
    for (entry, resolved, label), default in zip(found, labels):
        if _key(entry) is not None:
            _PRELOADED[_key(entry)] = (resolved, label or default)


def take_preloaded(entry):
    """``(ResolvedModel, label)`` of an entry :func:`check_paths` read, once; None otherwise."""
    key = _key(entry)
    return _PRELOADED.pop(key, None) if key is not None else None


def load_model(entry, task, scale, model_dir=None):
    """A :class:`ModelSpec` for one ``models`` entry, through :func:`converse_basicsr.hub.resolver.resolve` (the
    model front door). Accepted entries:

    - ``'input'`` (the degraded input), ``'bicubic'`` (SR only);
    - a zoo name (``converse_dncnn``, ...), or ``{zoo: NAME, name: LABEL}``;
    - ``{type: ARCH, path: CHECKPOINT, <arch options>}``: any arch in BasicSR's ``ARCH_REGISTRY`` (BasicSR's
      own, this package's, or one a ``--import`` / ``custom_imports`` module registers); without ``path`` the
      arch is randomly initialised (``seed``, default 0); a checkpoint's own description must agree;
    - ``'package.module:callable'`` or ``{callable: 'package.module:callable', kwargs: {...}}`` returning an
      ``nn.Module``;
    - ``'FILE.onnx'`` or ``{onnx: FILE, name: LABEL}``: an exported model run by ONNX Runtime;
    - a checkpoint file (``'x.pth'`` or ``{path: FILE}`` without ``type``): rebuilt from its description, the
      run's YAML beside ``models/``, or detected (read once by :func:`check_paths`);
    - any string as ``'LABEL=SOURCE'``; in the Python API, an ``nn.Module`` or ``{module: nn.Module, name: LABEL}``.
    """
    preloaded = take_preloaded(entry)
    if preloaded is not None:  # read once, by check_paths
        return _spec(*preloaded)
    kind, entry = entry_kind(entry)
    label = entry.pop('name', None)
    return LOADERS[kind](entry, label, task, scale, model_dir)


def model_label(entry, index):
    """The label of a ``models`` entry before it is loaded (used when loading it fails)."""
    if isinstance(entry, dict) and entry.get('name'):
        return str(entry['name'])
    if isinstance(entry, str):
        return parse_model_arg(entry)[0] or entry
    return f'model {index + 1}'
