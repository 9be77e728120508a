"""Checks of a training option file before anything is built: key names, value types, channels, and the data.

- :func:`check_options`: unknown keys in the entries of the package's own datasets (their ``OPTIONS``) and
  archs (their constructor's arguments), and values of the wrong kind there and in the numeric options
  BasicSR reads (``lr: 2e-3``, which YAML reads as a string, or ``num_feat: '16'``); one error lists them all,
  each naming the file, the key and the expected kind.
- :func:`check_color_channels`: a grayscale/RGB mismatch between a dataset's ``color`` and the network.
- :func:`check_data`: decode every image / LMDB key of the package's datasets once (``converse-train
  --check-data``), listing each one that fails.
- :func:`folder_name_errors`, :func:`input_file_errors`: names that become folders stay inside their folder
  (``name``, a dataset's ``name``, ``val.suffix``); pretrained and spandrel model files can be read, as data,
  and LMDB datasets are complete, before BasicSR creates anything.

The file itself is read by :func:`load_options`, the package's safe YAML loader: plain data, never code.
"""
import inspect
import os
import sys

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY
from converse_basicsr.data.io import check_lmdb
from converse_basicsr.training.basicsr_keys import basicsr_key_errors, registered, signature_table
from converse_basicsr.training.checkpoints import load_failure, load_model_file
from converse_basicsr.utils.imports import import_yaml_modules
from converse_basicsr.utils.options import OptionError, Spec, check_entry, check_folder_name, check_value
from converse_basicsr.utils.safe_yaml import load_yaml

__all__ = [
    'OptionError', 'check_options', 'check_color_channels', 'check_data', 'load_options', 'kind_error', 'arch_options',
    'folder_name_errors', 'input_file_errors'
]

COLOR_CHANNELS = {'gray': 1, 'y': 1, 'rgb': 3, 'luma': 3}
# Datasets whose images are RGB unless ``color`` says otherwise (the package's and BasicSR's image datasets);
# others are checked only with a ``color`` key.
RGB_BY_DEFAULT = ('GaussianNoiseDataset', 'BicubicDownsampleDataset', 'BlurKernelDataset', 'PairedImageDataset',
                  'SingleImageDataset', 'RealESRGANDataset', 'RealESRGANPairedDataset', 'FFHQDataset')
IN_CHANNEL_KEYS = ('num_in_ch', 'in_channels', 'in_chans')
PACKAGE = __name__.split('.', 1)[0]  # 'converse_basicsr'


def load_options(path):
    """The option file at ``path`` read as plain data by the package's safe loader (``utils.safe_yaml``): a tag
    that would run code, an alias bomb or a syntax error is an :class:`OptionError` naming the file and line."""
    return load_yaml(path)


def kind_error(key, value, kind):
    """A message if ``value`` of option ``key`` is not of ``kind``, else None (``~``/null is always allowed)."""
    try:
        check_value(key, value, Spec(kind, empty=True))
    except OptionError as error:
        return str(error)
    return None


def arch_options(arch):
    """``{argument: Spec or None}`` of an arch class's constructor (kind from the default's type, None: any), and
    whether it takes ``**kwargs`` (then any key is accepted)."""
    return signature_table(arch)


def _is_ours(cls):
    return getattr(cls, '__module__', '').startswith(PACKAGE + '.')


def _entry_errors(where, entry, allowed, owner):
    """Unknown keys and wrong kinds in one dataset or network entry; ``allowed`` maps key → kind (None: any)."""
    return check_entry(f'{where}.', {k: v for k, v in entry.items() if k != 'type'}, allowed, owner, [])


def check_options(opt, path='<options>', is_train=True):
    """Raise :class:`OptionError` listing every unknown key and wrong kind of value (see the module docstring),
    BasicSR's own keys included (:mod:`converse_basicsr.training.basicsr_keys`)."""
    errors = basicsr_key_errors(opt, is_train)
    if not isinstance(opt, dict):
        raise OptionError(f'{path}: {errors[0]}')
    errors = folder_name_errors(opt) + errors  # first: a name that leaves its folder is the gravest
    datasets = opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}
    for phase, dataset in datasets.items():
        cls = registered(DATASET_REGISTRY, dataset.get('type')) if isinstance(dataset, dict) else None
        if cls is not None and _is_ours(cls) and hasattr(cls, 'OPTIONS'):
            errors += _entry_errors(f'datasets.{phase}', dataset, cls.OPTIONS, cls.__name__)
    for key, net in opt.items():
        if not (key.startswith('network_') and isinstance(net, dict)):
            continue
        cls = registered(ARCH_REGISTRY, net.get('type'))
        if cls is not None:
            allowed, open_ended = arch_options(cls)
            if open_ended:
                allowed = dict.fromkeys(set(allowed) | set(net), None) | allowed
            errors += _entry_errors(key, net, allowed, cls.__name__)
    errors = list(dict.fromkeys(errors))  # a key checked as a dataset option and as BasicSR's: once
    if len(errors) == 1:
        raise OptionError(f'{path}: {errors[0]}')
    if errors:
        raise OptionError(f'{path}: {len(errors)} bad option(s):\n  ' + '\n  '.join(errors))


def folder_name_errors(opt):
    """Error lines for the option values BasicSR turns into folder or file names (``name``: ``experiments/<name>``,
    ``results/<name>``; a dataset's ``name``: a results sub-folder; ``val.suffix``: part of a result's file
    name) that would leave their folder: the rule of :func:`converse_basicsr.utils.options.check_folder_name`."""
    named = [('name', opt.get('name'))]
    datasets = opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}
    named += [(f'datasets.{phase}.name', entry.get('name')) for phase, entry in datasets.items()
              if isinstance(entry, dict)]
    if isinstance(opt.get('val'), dict):
        named.append(('val.suffix', opt['val'].get('suffix')))
    errors = []
    for where, value in named:
        try:
            if isinstance(value, str):
                check_folder_name(where, value)
        except OptionError as error:
            errors.append(str(error))
    return errors


def input_file_errors(opt):
    """Error lines for the files a run reads that exist but cannot be used, found before BasicSR creates a
    folder: a ``path.pretrain_network_*`` that does not load as a model file (read as data, ``weights_only``),
    a network's ``path`` (SpandrelNet) that cannot be read, an ``lmdb`` dataroot that is truncated."""
    errors = []
    for key, value in (opt.get('path') if isinstance(opt.get('path'), dict) else {}).items():
        if key.startswith('pretrain_network_') and isinstance(value, str) and os.path.isfile(value):
            try:
                load_model_file(value)
            except Exception as error:  # noqa: BLE001  (unreadable, truncated, not a checkpoint, code in it)
                errors.append(f'path.{key}: {value!r} cannot be read as a model file ({load_failure(value, error)})')
    for key, net in opt.items():
        if key.startswith('network_') and isinstance(net, dict) and isinstance(net.get('path'), str):
            try:
                with open(net['path'], 'rb') as f:
                    f.read(1)
            except OSError as error:
                errors.append(f'{key}.path: {net["path"]!r} cannot be read ({error.strerror or error})')
    for phase, dataset in (opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}).items():
        backend = dataset.get('io_backend') if isinstance(dataset, dict) else None
        if not (isinstance(backend, dict) and backend.get('type') == 'lmdb'):
            continue
        for key in ('dataroot_gt', 'dataroot_lq'):
            if isinstance(dataset.get(key), str) and os.path.isdir(dataset[key]):
                try:
                    check_lmdb(dataset[key])
                except ValueError as error:
                    errors.append(f'datasets.{phase}.{key}: {error}')
    return errors


def network_in_channels(net_opt):
    """``(key, channels)`` of a ``network_g`` option dict: its input-channel key and value (the
    arch's default when the YAML leaves it out; a ``ConverseUp``'s from its ``base``), or ``(None, None)`` if the
    arch has none."""
    for key in IN_CHANNEL_KEYS:
        if key in net_opt:
            return key, net_opt[key]
    arch = registered(ARCH_REGISTRY, net_opt.get('type'))
    if net_opt.get('type') == 'ConverseUp' and isinstance(net_opt.get('base'), dict):
        key, channels = network_in_channels(net_opt['base'])
        return (None, None) if key is None else (f'base.{key}', channels)
    if arch is None:
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
        cls = registered(DATASET_REGISTRY, dataset.get('type'))
        if 'color' not in dataset and getattr(cls, '__name__', None) not in RGB_BY_DEFAULT:
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

    Returns ``(checked, bad, skipped)``: the number of images decoded, a list of ``(dataset entry, image, error)``
    for each one that failed (a dataset that cannot even be listed counts as one bad entry), and the
    ``datasets.<phase> (type)`` entries it could not check (other packages' datasets, BasicSR's among them),
    each also reported on ``stream`` (default ``sys.stderr``) as it is met."""
    from tqdm import tqdm
    stream = stream or sys.stderr
    checked, bad, seen, skipped = 0, [], set(), []
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        cls = registered(DATASET_REGISTRY, dataset_opt.get('type'))
        where = f'datasets.{phase}'
        if cls is None or not _is_ours(cls):
            print(
                f'{where}: NOT CHECKED: {dataset_opt.get("type")} is not a {PACKAGE} dataset, and only those '
                'can be checked', file=stream)
            skipped.append(f'{where} ({dataset_opt.get("type")})')
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
    return checked, bad, skipped


def check_option_file(opt_file, is_train=False):
    """Raise :class:`OptionError` (one line naming the file and the key) for a BasicSR option file that cannot run:
    unknown keys, wrong kinds, a name that leaves its folder, a dataroot or pretrained model that does not exist
    or cannot be used. ``converse-test`` calls it before BasicSR creates ``results/<name>/``."""
    from converse_basicsr.training.basicsr_keys import dataroot_errors
    if not os.path.isfile(opt_file):
        raise OptionError(f'-opt {opt_file}: no such file')
    opt = load_options(opt_file)
    import_yaml_modules(opt, opt_file)  # custom_imports: [MODULE, ...], before the arch names are checked
    check_options(opt, opt_file, is_train=is_train)
    missing = dataroot_errors(opt)
    if missing:
        more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
        raise OptionError(f'{opt_file}: {missing[0]}{more}; run from a folder where these paths exist, or pass your '
                          'own copy with -opt FILE')
    unusable = input_file_errors(opt)
    if unusable:
        raise OptionError(f'{opt_file}: ' + '; '.join(unusable))
