"""The one front door for models: :func:`resolve` turns any model source into a module, its description and a label.

Sources (:data:`ROUTES`, chosen from the source's form, a file's type and its content, never from an error):

- ``zoo``: a published name (``converse_dncnn``, ...): checksum-verified file, the zoo table's arch;
- ``arch``: a registered arch (``arch=``, ``arch_kwargs=``), with a checkpoint file or untrained (``source=None``);
  a file's own description wins where the user is silent, and a value contradicting it is an error naming both;
- ``described``: a checkpoint this package wrote (:mod:`.description`), or one inside a BasicSR run folder whose
  option file (``<run>/*.yml``) names its network;
- ``spandrel``: any other checkpoint spandrel recognises (with this package's archs installed; a network
  fine-tuned through ``SpandrelNet`` too); for a Converse arch, the settings the shapes cannot tell are the
  arch's defaults, and ONE line on stderr names each and how to give it;
- ``callable``: ``package.module:callable`` returning an ``nn.Module`` (``arch_kwargs`` its arguments);
- ``onnx``: an exported ``.onnx`` file, run by ONNX Runtime (the ``export`` extra).

Each file is read once. Labels: ``LABEL=SOURCE`` (:func:`parse_model_arg`) or :func:`default_labels`.
"""
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from converse_basicsr.utils.imports import import_target

from .description import full_kwargs, make_description, plain, read_description, run_yaml_network
from .public import canonical_state_dict, detect, read_checkpoint
from .shape_inference import infer_arch
from .zoo import ZOO, ZooError, build_arch, checkpoint_path, sha256sum

KINDS = ('zoo', 'arch', 'described', 'spandrel', 'callable', 'onnx')
CALLABLE = re.compile(r'^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$')


@dataclass
class ResolvedModel:
    """A model ready to run: ``module`` (eval mode), ``info`` (``type``, ``kwargs``, ``scale``, ``in_channels``,
    ``out_channels``, ``source``; also ``entry`` (a zoo entry or None), ``assumed`` (settings taken from defaults),
    ``description`` (what a checkpoint of it should carry)), ``label`` and ``kind`` (one of :data:`KINDS`)."""
    module: torch.nn.Module
    info: dict = field(default_factory=dict)
    label: str = ''
    kind: str = ''


def parse_model_arg(text):
    """``'LABEL=SOURCE'`` → ``(LABEL, SOURCE)``; ``'SOURCE'`` → ``(None, SOURCE)``. A text that is itself an
    existing file, or whose part before ``=`` looks like a path, is a source."""
    text = str(text)
    label, sep, source = text.partition('=')
    if not sep or not label.strip() or not source or os.path.exists(text) or re.search(r'[/\\:]', label):
        return None, text
    return label.strip(), source


def _base_label(item):
    if isinstance(item, ResolvedModel):
        return item.label or item.info.get('type') or 'model'
    return str(item)


def _stem(item):
    source = item.info.get('source') if isinstance(item, ResolvedModel) else str(item)
    return Path(str(source)).stem if source else None


def default_labels(items):
    """One readable, unique label per item (a :class:`ResolvedModel` or a source): its label (zoo name, arch type,
    callable, file stem), the file stem where two would share one, then ``#2``, ``#3`` ... as a last resort."""
    labels = [_base_label(i) for i in items]
    for index, label in enumerate(labels):
        if labels.count(label) > 1:
            stems = [_stem(items[j]) if labels[j] == label else None for j in range(len(items))]
            labels = [s if s and labels[j] == label else labels[j] for j, s in enumerate(stems)]
    seen = {}
    for index, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[index] = f'{label}#{seen[label]}'
    return labels


def _info(arch, kwargs, source, entry=None, description=None, **known):
    description = description or make_description(arch, kwargs)
    info = {key: description.get(key) for key in ('type', 'kwargs', 'scale', 'in_channels', 'out_channels')}
    info.update(source=str(source), entry=entry, assumed=[], description=description)
    info.update({k: v for k, v in known.items() if v is not None})
    return info


def _load_weights(module, state, source, arch, kwargs):
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ZooError(f'checkpoint {source} does not fit arch {arch} {kwargs or {}}: {err}') from None
    return module


def _contradictions(path, description, arch, arch_kwargs):
    """An error naming both values when the user's ``arch`` / ``arch_kwargs`` contradict the file's description."""
    if arch is not None and arch != description['type']:
        raise ZooError(f'--arch {arch} contradicts {path}, which describes a {description["type"]}; '
                       'leave --arch out to use the file\'s description')
    given = plain(arch_kwargs or {}, '--arch-kwargs')
    for key, value in given.items():
        if key in description['kwargs'] and description['kwargs'][key] != value:
            raise ZooError(f'--arch-kwargs {key}={json.dumps(value)} contradicts {path}, which was saved with '
                           f'{key}={json.dumps(description["kwargs"][key])}; leave it out to use the file\'s value')


def _described(path, state, description, arch_kwargs):
    """A network from its description (``SpandrelNet`` fine-tunes: detected again from the weights themselves)."""
    arch, kwargs = description['type'], dict(description['kwargs'], **(arch_kwargs or {}))
    if arch == 'SpandrelNet':
        module, _ = detect(state, path)
    else:
        module = _load_weights(build_arch(arch, kwargs), state, path, arch, kwargs)
    return module, _info(arch, kwargs, path, description=dict(description, kwargs=kwargs))


def _assumed_note(path, arch, kwargs, inferred_keys):
    """The settings of ``arch`` not read from the file, as one line naming each and how to give it."""
    assumed = {k: v for k, v in full_kwargs(arch, kwargs).items() if k not in inferred_keys}
    if not assumed:
        return []
    settings = ', '.join(f'{k}={json.dumps(plain(v))}' for k, v in assumed.items())
    return [
        f'note: {path} carries no description of its network: assumed the {arch} defaults {settings}; give '
        f"others with --arch {arch} --arch-kwargs '{{\"<name>\": <value>}}' (or keep the run's YAML beside models/)"
    ]


def _detected(path, state):
    """The zoo entry of a published file (same sha256), else spandrel's detection (our archs included)."""
    digest = sha256sum(path)
    entry = next((e for e in ZOO.values() if e.sha256 == digest), None)
    if entry is not None:
        module = _load_weights(build_arch(entry.arch, entry.kwargs), state, path, entry.arch, entry.kwargs)
        return module, _info(entry.arch, entry.kwargs, path, entry=entry), 'zoo'
    module, found = detect(state, path)
    guess = infer_arch(state, found.arch)
    if guess is not None:  # one of ours: the shapes tell some settings, the others are the arch's defaults
        arch, kwargs = guess
        info = _info(arch, kwargs, path)
        info['assumed'] = _assumed_note(path, arch, kwargs, set(kwargs))
    else:  # spandrel reads the hyper-parameters from the weights
        info = _plain_info(found.arch, f'{path}', found.scale, found.in_channels, found.out_channels)
    return module, info, 'spandrel'


def _own_description(path, checkpoint, metadata):
    """``(description, where it came from)`` of a read checkpoint: its own, else its run's YAML; (None, None)."""
    description = read_description(checkpoint, path, metadata)
    if description is not None:
        return description, str(path)
    found = run_yaml_network(path)
    if found is None:
        return None, None
    return make_description(found[0], found[1], name=Path(found[2]).stem), found[2]


def describe_file(path, checkpoint, metadata=None):
    """The description a read checkpoint should carry: its own, its run's YAML's, the zoo entry of a published
    file (same sha256), or the Converse arch its shapes show with the defaults for the rest (the one "assumed"
    line printed); None for other projects' archs."""
    description, _ = _own_description(path, checkpoint, metadata)
    if description is not None:
        return description
    digest = sha256sum(path)
    entry = next((e for e in ZOO.values() if e.sha256 == digest), None)
    if entry is not None:
        return make_description(entry.arch, entry.kwargs)
    guess = infer_arch(canonical_state_dict(checkpoint, path))
    if guess is None:
        return None
    for note in _assumed_note(path, guess[0], guess[1], set(guess[1])):
        print(note, file=sys.stderr)
    return make_description(*guess)


def _file(path, arch=None, arch_kwargs=None):
    """A checkpoint file: read once, then routed by its description, its run folder, its checksum or its keys."""
    checkpoint, metadata = read_checkpoint(path)
    description, origin = _own_description(path, checkpoint, metadata)
    state = canonical_state_dict(checkpoint, path)
    if description is not None:
        _contradictions(path, description, arch, arch_kwargs)
        module, info = _described(path, state, description, arch_kwargs)
        info['network_from'] = origin
        return module, info, 'arch' if arch else 'described'
    if arch is not None:
        module = _load_weights(build_arch(arch, arch_kwargs), state, path, arch, arch_kwargs)
        return module, _info(arch, arch_kwargs, path), 'arch'
    return _detected(path, state)


def _zoo(name, model_dir=None, url=None, progress=True):
    entry = ZOO[name]
    path = checkpoint_path(name, model_dir, url, progress)
    state = canonical_state_dict(read_checkpoint(path)[0], path)
    module = _load_weights(build_arch(entry.arch, entry.kwargs), state, path, entry.arch, entry.kwargs)
    return module, _info(entry.arch, entry.kwargs, path, entry=entry)


def _plain_info(arch, source, scale=None, in_channels=None, out_channels=None, kwargs=None):
    """The info of a model no registered constructor describes (spandrel's archs, callables, ONNX files)."""
    return {
        'type': arch, 'kwargs': dict(kwargs or {}), 'scale': scale, 'in_channels': in_channels,
        'out_channels': out_channels, 'source': source, 'entry': None, 'assumed': [], 'description': None
    }


def _callable(target, kwargs):
    module = import_target(target, 'model')(**(kwargs or {}))
    if not isinstance(module, torch.nn.Module):
        raise ZooError(f'{target} returned {type(module).__name__}, not a torch.nn.Module')
    return module, _plain_info(type(module).__name__, target, kwargs=kwargs)


def _onnx(path):
    from converse_basicsr.export.runtime import load_onnx  # the export extra, imported only for an .onnx source
    module = load_onnx(path)
    channels = getattr(module, 'num_in_ch', None)
    return module, _plain_info('onnx', path, (getattr(module, 'meta', None) or {}).get('scale'), channels, channels)


def route(source, arch=None):
    """Which :data:`KINDS` route ``source`` takes (``'file'`` for a checkpoint file, decided once it is read)."""
    text = None if source is None else str(source)
    if text is None:
        if arch is None:
            raise ZooError('no model given: a zoo name, a checkpoint file, package.module:callable or --arch')
        return 'arch'
    if text.lower().endswith('.onnx'):
        return 'onnx'
    if text in ZOO and arch is None:
        return 'zoo'
    if os.path.isfile(text):
        return 'file'
    if text in ZOO:
        return 'zoo_file'
    if CALLABLE.match(text):
        return 'callable'
    raise ZooError(f'unknown model {text!r}: neither a zoo name ({", ".join(ZOO)}), an existing checkpoint file, '
                   'package.module:callable nor an .onnx file')


def resolve(source, *, arch=None, arch_kwargs=None, model_dir=None, device='cpu', label=None, url=None, progress=True,
            seed=0):
    """``source`` (see the module docstring) as a :class:`ResolvedModel` on ``device``. ``arch`` /
    ``arch_kwargs``: the registered arch to build (for a file, checked against its description); ``seed``: the
    initialisation of an untrained ``arch`` (``source=None``). Errors are :class:`~.zoo.ZooError` naming the
    source."""
    kind = route(source, arch)
    if kind == 'zoo':
        module, info = _zoo(str(source), model_dir, url, progress)
    elif kind == 'zoo_file':  # a zoo name with the user's arch: its file, built as they say
        module, info, kind = _file(checkpoint_path(str(source), model_dir, url, progress), arch, arch_kwargs)
    elif kind == 'file':
        module, info, kind = _file(Path(source), arch, arch_kwargs)
    elif kind == 'arch':
        torch.manual_seed(seed)
        module = build_arch(arch, arch_kwargs)
        info = _info(arch, arch_kwargs, f'{arch} untrained (random init, seed {seed})')
    elif kind == 'callable':
        module, info = _callable(str(source), arch_kwargs)
    else:
        module, info = _onnx(str(source))
    for note in info['assumed']:
        print(note, file=sys.stderr)
    if kind == 'zoo':
        default = str(source)
    elif kind == 'callable':
        default = str(source)
    elif kind == 'onnx':
        default = Path(str(source)).name
    else:
        default = info['type']
    return ResolvedModel(module.to(device).eval(), info, label or default, kind)
