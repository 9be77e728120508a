"""converse-compare's options, declared once and checked before anything runs or is written.

The same table serves the ``-opt`` YAML and the flags (:func:`flag_types` gives the argparse ``type=`` callables):
unknown keys with "did you mean", kinds and ranges (:mod:`converse_basicsr.utils.options`), a device this
machine has, a results folder that can be written, labels of datasets and models that occur once, and the
output names: two images of one dataset whose crop grids would get one name (``x.png`` and ``x.jpg`` both give
``grids/S/x.png``) stop the run before it starts, naming both, as converse-restore does
(:func:`converse_basicsr.data.io.plan_output_names`). Every failure is one :class:`OptionError` line.
"""
import os
from os import path as osp

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY
from converse_basicsr.data.io import OutputNameError, is_image_file, plan_output_names
from converse_basicsr.evaluation import compare_metrics
from converse_basicsr.evaluation.figures import parse_crop
from converse_basicsr.evaluation.latex import EXTRA_COLUMNS
from converse_basicsr.evaluation.protocols import file_tag
from converse_basicsr.utils.imports import IMPORT_HINT
from converse_basicsr.utils.options import (SPECS, OptionError, Spec, arg, check_device, check_entry, check_unique,
                                            check_writable_dir)

__all__ = ['KEYS', 'flag_types', 'datasets_from_flags', 'check_compare_options', 'check_grid_names', 'entry_label']

KEYS = {
    'name': Spec('str'), 'protocol': Spec('dict', nullable=False), 'datasets': Spec('dict'), 'models': Spec('list'),
    'device': Spec('str'), 'tile': SPECS['tile'], 'threads': SPECS['threads'], 'model_dir': Spec('str'),
    'flops_size': SPECS['positive_int'], 'crop': SPECS['positive_int'], 'plot': Spec('bool'),
    'warmup': SPECS['non_negative_int'], 'results_root': Spec('str'), 'crops': Spec('list'),
    'grid_tile': Spec('int', minimum=16), 'save_outputs': Spec('bool'), 'metrics': Spec('list'),
    'lpips_weights': Spec('str'), 'tex_columns': Spec('list'), 'custom_imports': Spec('list')
}
TASKS = {'denoise': 'GaussianNoiseDataset', 'sr': 'BicubicDownsampleDataset', 'deblur': 'BlurKernelDataset'}
PROTOCOL = {
    'task': Spec('str', choices=tuple(TASKS), nullable=False), 'metrics': Spec('dict'), 'sigma': SPECS['sigma'],
    'color': Spec('str', choices=('gray', 'rgb')), 'scale': SPECS['scale'], 'kernel_path': Spec('paths'),
    'noise_seed': Spec('int')
}
# The flags that carry a value: their spec (the YAML key of the same name, or the protocol's).
FLAGS = {
    'sigma': PROTOCOL['sigma'], 'scale': PROTOCOL['scale'], 'tile': KEYS['tile'], 'threads': KEYS['threads'],
    'flops_size': KEYS['flops_size'], 'name': KEYS['name'], 'model_dir': KEYS['model_dir'], 'kernel_path': Spec('str'),
    'grid_tile': KEYS['grid_tile'], 'lpips_weights': KEYS['lpips_weights']
}


def flag_types():
    """``{flag dest: argparse type callable}`` for the converse-compare flags that take a value."""
    types = {dest: arg(spec) for dest, spec in FLAGS.items()}
    types['device'] = arg(Spec('str'), lambda v: check_device(v, 'the value'))
    types['results_root'] = arg(Spec('str'), lambda v: check_writable_dir(v, 'the value'))
    types['dataset'] = arg(Spec('str'), _dataset_flag)
    types['model'] = arg(Spec('str'))
    types['crop'] = arg(Spec('str'), _crop_flag)
    types['tex_columns'] = arg(Spec('str'), _tex_columns_flag)
    return types


def _crop_flag(text):
    try:
        parse_crop(text)
    except ValueError as error:
        raise OptionError(str(error)) from None
    return text


def _tex_columns_flag(text):
    columns = [] if text.strip() == 'none' else [c.strip() for c in text.split(',') if c.strip()]
    wrong = [c for c in columns if c not in EXTRA_COLUMNS]
    if wrong:
        raise OptionError(f"{wrong[0]!r} is not one of {', '.join(EXTRA_COLUMNS)} (comma-separated)")
    return columns


def _extra_errors(opt, errors):
    """The keys of this issue's outputs: chosen crops, metric names, LaTeX columns, LPIPS weights."""
    for index, crop in enumerate(opt.get('crops') or []):
        try:
            parse_crop(crop)
        except ValueError as error:
            errors.append(f'crops[{index}]: {error}')
    names = opt.get('metrics') or []
    wrong = [n for n in names if n not in compare_metrics.NAMES]
    if wrong:
        errors.append(f"metrics: {wrong[0]!r} is not one of {', '.join(compare_metrics.NAMES)}")
    columns = [c for c in opt.get('tex_columns') or [] if c not in EXTRA_COLUMNS]
    if columns:
        errors.append(f"tex_columns: {columns[0]!r} is not one of {', '.join(EXTRA_COLUMNS)}")
    if errors:
        return
    protocol_metrics = (opt.get('protocol') or {}).get('metrics')
    if names and protocol_metrics:
        errors.append('give the metrics once: --metric / metrics: or protocol.metrics, not both')
    try:
        metrics = compare_metrics.metric_options(names, 0) if names else protocol_metrics
        compare_metrics.check_metric_options(metrics, opt.get('lpips_weights'),
                                             'metrics' if names else 'protocol.metrics')
    except OptionError as error:
        errors.append(str(error))


def _dataset_flag(text):
    name, sep, folder = text.partition('=')
    if not sep or not name.strip() or not folder.strip():
        raise OptionError(f'the value must be NAME=FOLDER, got {text!r}')
    return text


def datasets_from_flags(items, datasets=None):
    """``{name: folder}`` from repeated ``--dataset NAME=FOLDER`` (over the YAML's ``datasets``); a name given
    twice is an error (the second would silently replace the first)."""
    check_unique('--dataset', [item.partition('=')[0] for item in items])
    datasets = dict(datasets or {}) if items else datasets
    for item in items:
        name, _, folder = item.partition('=')
        datasets[name] = folder
    return datasets


def entry_label(entry):
    """The label a ``models`` entry gets in the table (before it is loaded), or None for an API module."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        for key in ('name', 'zoo', 'callable', 'path', 'trivial', 'type'):
            if entry.get(key):
                return str(entry[key])
    return None


def _protocol_errors(protocol, errors):
    task = protocol.get('task')
    table = dict(PROTOCOL)
    cls = DATASET_REGISTRY._obj_map.get(TASKS.get(task)) if isinstance(task, str) else None
    for key, kind in (getattr(cls, 'OPTIONS', None) or {}).items():  # any further key of the task's dataset
        table.setdefault(key, kind)
    for key in ('name', 'type', 'phase', 'dataroot_gt', 'io_backend', 'optional'):
        table.pop(key, None)  # set per dataset, not in the protocol
    check_entry('protocol.', protocol, table, 'the compare protocol', errors)
    if 'task' not in protocol:
        errors.append(f"protocol.task is missing: one of {', '.join(TASKS)} (or --task)")
    elif task == 'deblur' and 'kernel_path' not in protocol:
        errors.append('protocol.kernel_path is missing: deblur needs a .npy kernel, a folder of them, or a list')


def _dataset_errors(datasets, errors):
    for name, entry in datasets.items():
        if isinstance(entry, str):
            if not entry.strip():
                errors.append(f'datasets.{name} must be a folder, got an empty string')
        elif isinstance(entry, dict):
            table = dict(DATASET_REGISTRY._obj_map['GaussianNoiseDataset'].OPTIONS)
            table.update({k: None for cls in TASKS.values() for k in DATASET_REGISTRY._obj_map[cls].OPTIONS})
            check_entry(f'datasets.{name}.', entry, table, 'a compare dataset', errors)
        else:
            errors.append(f'datasets.{name} must be a folder or a mapping of dataset keys, got {entry!r} '
                          f'({type(entry).__name__})')


def _known_arch(name):
    """True for an arch BasicSR's ``ARCH_REGISTRY.get`` finds (its own archs also under the ``_basicsr`` suffix)."""
    return name in ARCH_REGISTRY or f'{name}_basicsr' in ARCH_REGISTRY


def _model_errors(models, errors):
    for index, entry in enumerate(models):
        where = f'models[{index}]'
        if isinstance(entry, str) and not entry.strip():
            errors.append(f'{where} must name a model, got an empty string')
        elif not isinstance(entry, (str, dict)) and type(entry).__module__.split('.')[0] != 'torch':
            errors.append(f'{where} must be a model name, a checkpoint path or a mapping, got {entry!r} '
                          f'({type(entry).__name__})')
        elif isinstance(entry, dict) and isinstance(entry.get('type'), str) and not _known_arch(entry['type']):
            errors.append(f"{where}.type {entry['type']!r} is not a known arch; {IMPORT_HINT}")
    labels = [label for label in map(entry_label, models) if label is not None]
    try:
        check_unique('model label', labels)
    except OptionError as error:
        errors.append(f'{error} (models: or --model): give one a name, e.g. {{zoo: NAME, name: LABEL}}')


def check_compare_options(opt, source=None):
    """Raise :class:`OptionError` (``<source>: <line>``; ``source``: the YAML file, if any) for the first problem
    of the comparison options ``opt`` (a YAML mapping merged with the flags); returns ``opt`` when all is well.
    Creates nothing."""
    errors = []
    if not isinstance(opt, dict):
        raise OptionError(
            f'{source or "the options"}: the file must hold a mapping of options, got {type(opt).__name__}')
    check_entry('', opt, KEYS, 'converse-compare', errors)
    if not errors:
        _protocol_errors(opt.get('protocol') or {}, errors)
        _dataset_errors(opt.get('datasets') or {}, errors)
        _model_errors(opt.get('models') or [], errors)
        _extra_errors(opt, errors)
    if not errors and not opt.get('datasets'):
        errors.append('no datasets given (datasets: {name: folder} or --dataset NAME=FOLDER)')
    if not errors and not opt.get('models'):
        errors.append('no models given (models: [...] in the YAML or --model)')
    try:
        if not errors:
            if opt.get('device') is not None:
                check_device(opt['device'], 'device')
            check_writable_dir(opt.get('results_root', 'results'), 'results_root')
            check_grid_names(_dataset_listing(opt['datasets']))
    except (OptionError, OutputNameError) as error:
        errors.append(str(error))
    if errors:
        raise OptionError(('' if source is None else f'{source}: ') + errors[0] +
                          (f' (and {len(errors) - 1} more)' if len(errors) > 1 else ''))
    return opt


def _dataset_listing(datasets):
    """``[(dataset label, image path)]`` of the dataset folders that exist (others fail later, naming them)."""
    pairs = []
    for name, entry in datasets.items():
        folder = entry if isinstance(entry, str) else entry.get('dataroot_gt')
        if isinstance(folder, str) and osp.isdir(folder) and not (isinstance(entry, dict) and entry.get('meta_info')):
            pairs += [(name, osp.join(folder, f)) for f in sorted(os.listdir(folder)) if is_image_file(f)]
    return pairs


def check_grid_names(pairs):
    """``pairs`` of (dataset label, image path or name) → their crop grids, ``grids/<dataset>/<stem>.png``; two
    images that would share one are an :class:`OutputNameError` naming both (nothing written)."""
    grids = {
        f'{label}: {image}': f'grids/{file_tag(label)}/{osp.splitext(osp.basename(image))[0]}.png'
        for label, image in pairs
    }
    return plan_output_names(list(grids), lambda item: [grids[item]], 'crop grid')
