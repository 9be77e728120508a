"""Self-describing checkpoints: how to rebuild a network, written beside its weights and read back.

A description is a dict of plain values (str, int, float, bool, None, lists and dicts of them): the registered
``type``, every constructor argument (``kwargs``, the defaults filled in), ``scale``, ``in_channels``,
``out_channels``, the package ``version`` and the experiment ``name``. Where it goes:

- ``.pth`` in BasicSR's layout: the top-level key :data:`KEY` beside ``params`` / ``params_ema`` (BasicSR's
  ``load_network`` indexes the file by its ``param_key`` and never looks at other keys), and also
- the state dict's ``_metadata`` (the per-module dict ``torch.nn.Module.state_dict()`` already carries and
  ``load_state_dict`` ignores for names that are no module's), so a plain state dict and spandrel, which
  only sees the state dict, carry it too;
- ``.safetensors``: the file's string metadata, :data:`KEY` → JSON.

A checkpoint without one (the published zoo, other projects) may sit in a BasicSR run
(``experiments/NAME/models/net_g_*.pth``): :func:`run_yaml_network` reads the run's option file beside ``models/``.
"""
import inspect
import json
import math
from collections import OrderedDict
from pathlib import Path

from converse_basicsr.utils.safe_yaml import YAMLRefused, load_yaml
from converse_basicsr.version import __version__

from .state_dicts import ZooError

KEY = 'converse_basicsr'
FIELDS = ('type', 'kwargs', 'scale', 'in_channels', 'out_channels', 'version', 'name')
IN_KEYS, OUT_KEYS = ('num_in_ch', 'in_chans', 'in_nc', 'in_channels'), ('num_out_ch', 'out_nc', 'out_channels')


def plain(value, where='description'):
    """``value`` with tuples as lists; a :class:`ZooError` naming ``where`` for anything that is not a plain value
    (a tensor, an object, a non-finite float: a checkpoint must load with ``weights_only=True``)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ZooError(f'{where}: {value!r} is not a finite number')
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v, f'{where}[{i}]') for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): plain(v, f'{where}.{k}') for k, v in value.items()}
    raise ZooError(f'{where}: {type(value).__name__} {value!r} cannot be written into a checkpoint description')


def is_plain(value):
    """Whether :func:`plain` accepts ``value``."""
    try:
        plain(value)
        return True
    except ZooError:
        return False


def full_kwargs(arch, kwargs=None):
    """Every constructor argument of the registered ``arch``: ``kwargs`` over the signature's defaults (a default
    that is no plain value, such as SwinIR's ``norm_layer=nn.LayerNorm``, is left to the constructor)."""
    from basicsr.utils.registry import ARCH_REGISTRY
    kwargs = dict(kwargs or {})
    if arch not in ARCH_REGISTRY:
        return kwargs
    try:
        params = inspect.signature(ARCH_REGISTRY.get(arch)).parameters
    except (TypeError, ValueError):
        return kwargs
    full = {
        name: p.default
        for name, p in params.items()
        if p.default is not inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL,
                                                                       p.VAR_KEYWORD) and is_plain(p.default)
    }
    full.update(kwargs)
    return full


def _channels(kwargs, keys):
    base = kwargs.get('base') if isinstance(kwargs.get('base'), dict) else {}
    for source in (kwargs, base):
        for key in keys:
            if isinstance(source.get(key), int):
                return source[key]
    return None


def scale_of(arch, kwargs):
    """The output scale a ``network_g`` entry declares (``upscale`` / ``scale``, ConverseUp's base's), else 1."""
    if arch == 'ConverseUp':
        base = kwargs.get('base') or {'type': 'MSRResNet'}
        return scale_of(base.get('type'), full_kwargs(base.get('type'), {k: v for k, v in base.items() if k != 'type'}))
    for key in ('upscale', 'scale', 'sf'):
        if isinstance(kwargs.get(key), int) and not isinstance(kwargs.get(key), bool):
            return kwargs[key]
    return 1


def make_description(arch, kwargs=None, scale=None, in_channels=None, out_channels=None, name=None):
    """The description of a ``{type: arch, **kwargs}`` network (plain values only; see the module docstring)."""
    kwargs = full_kwargs(arch, kwargs)
    in_channels = in_channels or _channels(kwargs, IN_KEYS)
    out_channels = out_channels or _channels(kwargs, OUT_KEYS) or in_channels
    return plain({
        'type': arch, 'kwargs': kwargs, 'scale': scale or scale_of(arch, kwargs), 'in_channels': in_channels,
        'out_channels': out_channels, 'version': __version__, 'name': name
    })


def describe_network(net_opt, net=None, name=None):
    """The description of the network built from the ``network_g`` entry ``net_opt`` (``net``: the built network,
    whose detected values a ``SpandrelNet`` carries); None when ``net_opt`` names no type."""
    if not isinstance(net_opt, dict) or not isinstance(net_opt.get('type'), str):
        return None
    kwargs = {k: v for k, v in net_opt.items() if k != 'type'}
    detected = getattr(net, 'spandrel_info', None) or {}
    return make_description(net_opt['type'], kwargs, detected.get('scale'), detected.get('in_channels'),
                            detected.get('out_channels'), name)


def attach(state_dict, description):
    """``state_dict`` as an OrderedDict whose ``_metadata`` carries ``description`` (the tensors are not copied)."""
    out = OrderedDict(state_dict)
    out._metadata = OrderedDict(getattr(state_dict, '_metadata', None) or {})
    out._metadata[KEY] = description
    return out


def check_description(description, source):
    """``description`` if it is a mapping with a ``type`` string and ``kwargs`` mapping; a ZooError otherwise."""
    if not isinstance(description, dict) or not isinstance(description.get('type'), str) \
            or not isinstance(description.get('kwargs', {}), dict):
        raise ZooError(f'{source}: its {KEY!r} description is not a mapping with a type and kwargs '
                       f'(got {description!r:.200})')
    return dict(description, kwargs=dict(description.get('kwargs') or {}))


def read_description(checkpoint, source='checkpoint', metadata=None):
    """The description in a loaded checkpoint (top-level key, else the state dict's ``_metadata``) or in a
    ``.safetensors`` file's ``metadata``; None when it has none."""
    if metadata and KEY in metadata:
        try:
            return check_description(json.loads(metadata[KEY]), source)
        except json.JSONDecodeError as err:
            raise ZooError(f'{source}: its {KEY!r} metadata is not JSON ({err})') from None
    if not isinstance(checkpoint, dict):
        return None
    if KEY in checkpoint:
        return check_description(checkpoint[KEY], source)
    for candidate in [checkpoint] + [v for v in checkpoint.values() if isinstance(v, dict)]:
        found = (getattr(candidate, '_metadata', None) or {}).get(KEY)
        if found is not None:
            return check_description(found, source)
    return None


def safetensors_metadata(description):
    """The ``.safetensors`` metadata holding ``description`` (strings only, as the format requires)."""
    return {'format': 'pt', KEY: json.dumps(description)}


def run_yaml_network(path, net='network_g'):
    """``(type, kwargs, yml path)`` from the option file of the BasicSR run a checkpoint sits in
    (``<run>/models/<file>`` with ``<run>/*.yml``), read with a safe loader; None when there is none or it
    holds no ``network_g`` with a ``type``. Two option files that disagree are an error naming both."""
    path = Path(path)
    if path.parent.name != 'models':
        return None
    found = {}
    for yml in sorted(path.parent.parent.glob('*.yml')):
        try:  # the package's one safe loader: plain data, aliases bounded (a run folder is someone else's)
            opt = load_yaml(yml)
        except (OSError, YAMLRefused):
            continue
        entry = opt.get(net) if isinstance(opt, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get('type'), str):
            found[yml] = dict(entry)
    if not found:
        return None
    (first, entry), *others = found.items()
    for yml, other in others:
        if other != entry:
            raise ZooError(f'{path}: the run folder holds two option files with different {net}: {first} and {yml}')
    arch = entry.pop('type')
    return arch, entry, str(first)
