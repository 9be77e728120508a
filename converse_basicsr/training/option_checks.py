"""Checks of a training option file before anything is built: key names, value types, channels, and the data.

- :func:`check_options`: unknown keys in the entries of the package's own datasets (their ``OPTIONS``) and
  archs (their constructor's arguments), and values of the wrong kind there and in the numeric options
  BasicSR reads (``lr: 2e-3``, which YAML reads as a string, or ``num_feat: '16'``); one error lists them all,
  each naming the file, the key and the expected kind.
- :func:`check_color_channels`: a grayscale/RGB mismatch between a dataset's ``color`` and the network.
- :func:`check_data`: decode every image / LMDB key of the package's datasets once (``converse-train
  --check-data``), listing each one that fails.
"""
import difflib
import fnmatch
import inspect
import numbers
import sys

import yaml

from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY

COLOR_CHANNELS = {'gray': 1, 'y': 1, 'rgb': 3}
# Datasets whose images are RGB unless ``color`` says otherwise; others are checked only with a ``color`` key.
RGB_BY_DEFAULT = ('GaussianNoiseDataset', 'BicubicDownsampleDataset', 'BlurKernelDataset', 'PairedImageDataset',
                  'SingleImageDataset')
IN_CHANNEL_KEYS = ('num_in_ch', 'in_channels', 'in_chans')
PACKAGE = __name__.split('.', 1)[0]  # 'converse_basicsr'

# Numeric options BasicSR reads (dotted paths, ``*`` matches one level): their kind.
BASICSR_NUMBERS = {
    'manual_seed': 'int',
    'scale': 'int',
    'datasets.*.batch_size_per_gpu': 'int',
    'datasets.*.num_worker_per_gpu': 'int',
    'datasets.*.dataset_enlarge_ratio': 'number',
    'datasets.*.gt_size': 'int',
    'train.total_iter': 'number',
    'train.warmup_iter': 'number',
    'train.ema_decay': 'number',
    'train.optim_*.lr': 'number',
    'train.optim_*.weight_decay': 'number',
    'train.optim_*.eps': 'number',
    'train.optim_*.momentum': 'number',
    'train.optim_*.betas': 'numbers',
    'train.scheduler.milestones': 'numbers',
    'train.scheduler.gamma': 'number',
    'train.scheduler.periods': 'numbers',
    'train.scheduler.restart_weights': 'numbers',
    'train.scheduler.eta_min': 'number',
    'train.scheduler.eta_mins': 'numbers',
    'train.*_opt.loss_weight': 'number',
    'val.val_freq': 'number',
    'logger.print_freq': 'number',
    'logger.save_checkpoint_freq': 'number',
}
KINDS = {  # kind: (description, test)
    'int': ('an integer', lambda v: isinstance(v, numbers.Integral)),
    'number': ('a number', lambda v: isinstance(v, numbers.Real)),
    'bool': ('true or false', lambda v: isinstance(v, bool)),
    'str': ('a string', lambda v: isinstance(v, str)),
    'dict': ('a mapping', lambda v: isinstance(v, dict)),
    'list': ('a list', lambda v: isinstance(v, (list, tuple))),
    'paths': ('a path or a list of paths', lambda v: isinstance(v, str) or (
        isinstance(v, (list, tuple)) and all(isinstance(p, str) for p in v))),
    'numbers': ('a list of numbers', lambda v: isinstance(v, (list, tuple)) and all(
        isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v)),
    'range': ('a list [lo, hi] of two numbers', lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(
        isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v)),
}


class OptionError(ValueError):
    """A training option file that cannot work; the message names the file and every bad key."""


def load_options(path):
    with open(path, encoding='utf-8') as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def _number_text(value):
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def kind_error(key, value, kind):
    """A message if ``value`` of option ``key`` is not of ``kind``, else None (``~``/null is always allowed)."""
    description, test = KINDS[kind]
    if value is None or (test(value) and not (isinstance(value, bool) and kind not in ('bool', 'any'))):
        return None
    message = f'{key} must be {description}, got {value!r} ({type(value).__name__})'
    texts = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(v, str) and _number_text(v) for v in texts):
        message += ('; YAML reads a number without a decimal point in its mantissa, such as 2e-3, as a string: '
                    'write 2.0e-3, or unquote it')
    return message


def arch_options(arch):
    """``{argument: kind}`` of an arch class's constructor (kind from the default's type, None: any), and whether
    it takes ``**kwargs`` (then any key is accepted)."""
    params = inspect.signature(arch).parameters
    kinds, open_ended = {}, False
    for name, param in params.items():
        if param.kind is param.VAR_KEYWORD:
            open_ended = True
            continue
        default = param.default
        if isinstance(default, bool):
            kinds[name] = 'bool'
        elif isinstance(default, numbers.Integral):
            kinds[name] = 'int'
        elif isinstance(default, numbers.Real):
            kinds[name] = 'number'
        elif isinstance(default, str):
            kinds[name] = 'str'
        else:
            kinds[name] = None
    return kinds, open_ended


def _is_ours(cls):
    return getattr(cls, '__module__', '').startswith(PACKAGE + '.')


def _entry_errors(where, entry, allowed, owner):
    """Unknown keys and wrong kinds in one dataset or network entry; ``allowed`` maps key → kind (None: any)."""
    errors = []
    for key, value in entry.items():
        if key == 'type':
            continue
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            errors.append(f'{where}.{key} is not an option of {owner}{hint}; its options: {", ".join(sorted(allowed))}')
        elif allowed[key] is not None:
            message = kind_error(f'{where}.{key}', value, allowed[key])
            if message:
                errors.append(message)
    return errors


def _flatten(opt, prefix=''):
    for key, value in opt.items():
        path = f'{prefix}{key}'
        if isinstance(value, dict):
            yield from _flatten(value, path + '.')
        else:
            yield path, value


def check_options(opt, path='<options>'):
    """Raise :class:`OptionError` listing every unknown key and wrong kind of value (see the module docstring)."""
    errors = []
    for phase, dataset in (opt.get('datasets') or {}).items():
        cls = DATASET_REGISTRY._obj_map.get(dataset.get('type')) if isinstance(dataset, dict) else None
        if cls is not None and _is_ours(cls) and hasattr(cls, 'OPTIONS'):
            errors += _entry_errors(f'datasets.{phase}', dataset, cls.OPTIONS, cls.__name__)
    for key, net in opt.items():
        if not (key.startswith('network_') and isinstance(net, dict)):
            continue
        cls = ARCH_REGISTRY._obj_map.get(net.get('type'))
        if cls is not None and _is_ours(cls):
            allowed, open_ended = arch_options(cls)
            if open_ended:
                allowed = dict.fromkeys(set(allowed) | set(net), None) | allowed
            errors += _entry_errors(key, net, allowed, cls.__name__)
    for key, value in _flatten(opt):
        kind = next((k for pattern, k in BASICSR_NUMBERS.items()
                     if fnmatch.fnmatchcase(key, pattern) and key.count('.') == pattern.count('.')), None)
        if kind is not None:
            message = kind_error(key, value, kind)
        elif key.split('.')[0] in ('train', 'val', 'logger') and isinstance(value, str) and _number_text(value):
            message = kind_error(key, value, 'number')  # a number YAML read as a string
        else:
            message = None
        if message:
            errors.append(message)
    if opt.get('num_gpu') not in (None, 'auto') and kind_error('num_gpu', opt['num_gpu'], 'int'):
        errors.append(f"num_gpu must be an integer or 'auto', got {opt['num_gpu']!r}")
    errors = list(dict.fromkeys(errors))  # a key checked as a dataset option and as BasicSR's: once
    if errors:
        raise OptionError(f'{path}: {len(errors)} bad option(s):\n  ' + '\n  '.join(errors))


def network_in_channels(net_opt):
    """``(key, channels)`` of a ``network_g`` option dict: its input-channel key and value (the
    arch's default when the YAML leaves it out), or ``(None, None)`` if the arch has none."""
    for key in IN_CHANNEL_KEYS:
        if key in net_opt:
            return key, net_opt[key]
    try:
        arch = ARCH_REGISTRY.get(net_opt['type'])
    except KeyError:
        return None, None
    params = inspect.signature(arch).parameters
    for key in IN_CHANNEL_KEYS:
        if key in params and params[key].default is not inspect.Parameter.empty:
            return key, params[key].default
    return None, None


def check_color_channels(opt):
    """Raise :class:`OptionError` naming ``datasets.<phase>.color`` and ``network_g.<key>`` when a dataset
    delivers 1-channel (``gray``, ``y``) or 3-channel (``rgb``, the default of the datasets in
    ``RGB_BY_DEFAULT``) images to a network built for the other."""
    net_opt = opt.get('network_g') or {}
    key, channels = network_in_channels(net_opt) if 'type' in net_opt else (None, None)
    for phase, dataset in (opt.get('datasets') or {}).items():
        if 'color' not in dataset and dataset.get('type') not in RGB_BY_DEFAULT:
            continue
        color = dataset.get('color', 'rgb')
        if str(color).lower() not in COLOR_CHANNELS:
            raise OptionError(f'datasets.{phase}.color must be one of {sorted(COLOR_CHANNELS)}, got {color!r}')
        found = COLOR_CHANNELS[str(color).lower()]
        if key is not None and found != channels:
            want = 'gray' if channels == 1 else 'rgb'
            raise OptionError(
                f'datasets.{phase}.color is {color!r} ({found}-channel images) but network_g.{key} is {channels} '
                f'({net_opt["type"]}): set datasets.{phase}.color: {want} or network_g.{key}: {found}')


def check_data(opt, stream=None):
    """Decode every ground-truth image / LMDB key of the package's datasets in ``opt`` once, with a progress bar.

    Returns ``(checked, bad)``: the number of images decoded and a list of ``(dataset entry, image, error)``
    for each one that failed (a dataset that cannot even be listed counts as one bad entry). Datasets of
    other packages are reported on ``stream`` (default ``sys.stderr``) as not checked."""
    from tqdm import tqdm
    stream = stream or sys.stderr
    checked, bad, seen = 0, [], set()
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        cls = DATASET_REGISTRY._obj_map.get(dataset_opt.get('type'))
        where = f'datasets.{phase}'
        if cls is None or not _is_ours(cls):
            print(f'{where}: {dataset_opt.get("type")} is not a {PACKAGE} dataset; its images are not checked',
                  file=stream)
            continue
        entry = dict(dataset_opt, phase=phase.split('_')[0], scale=opt.get('scale', 1))
        try:
            images = cls(entry).gt_images
        except Exception as error:  # noqa: BLE001  (any failure to list the data is a finding to report)
            bad.append((where, dataset_opt.get('dataroot_gt'), f'{type(error).__name__}: {error}'))
            continue
        for index in tqdm(range(len(images)), desc=f'{where} ({dataset_opt.get("name")})', file=stream, unit='img'):
            key = (images.dataroot, images.backend, images.color, images.paths[index])
            if key in seen:
                continue
            seen.add(key)
            checked += 1
            try:
                images.read(index)
            except Exception as error:  # noqa: BLE001
                bad.append((where, images.paths[index], f'{type(error).__name__}: {error}'))
    return checked, bad
