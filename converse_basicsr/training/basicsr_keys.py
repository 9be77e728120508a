"""The keys of a BasicSR option file, declared once: top level, ``train:``, ``val:``, ``path:``, ``logger:``,
``dist_params:``, and the registry-typed entries (optimizer, scheduler, losses, metrics, ``ConverseUp.base``).

:func:`basicsr_key_errors` lists, with the shared checker of :mod:`converse_basicsr.utils.options`, every
unknown key that is a near miss of a known one ("did you mean"), every value of the wrong kind or range,
a missing ``train.total_iter``, an optimizer/scheduler/loss/metric/arch ``type`` that does not exist and keys
its constructor does not take. ``ConverseUp``'s ``base`` block is checked against the signature of the base
arch it names, and the base is built on the ``meta`` device (no memory, no weights) to see that it has an
upsampler to convert. A top-level key that is close to no known key is left to the model that may read it
(a warning names it).
"""
import fnmatch
import inspect
import numbers
import os
import sys

import torch

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from converse_basicsr.utils.options import OptionError, Spec, check_entry, check_value, did_you_mean

S = Spec
TEXT, FLAG, MAPPING, ANY = S('str'), S('bool'), S('dict'), None
POSITIVE = S('number', positive=True)
TOP = {
    'name': TEXT, 'model_type': TEXT, 'scale': S('int', minimum=1), 'num_gpu': ANY, 'manual_seed': S('int'),
    'datasets': MAPPING, 'network_*': MAPPING, 'path': MAPPING, 'train': MAPPING, 'val': MAPPING, 'logger': MAPPING,
    'dist_params': MAPPING, 'find_unused_parameters': FLAG, 'is_train': FLAG, 'dist': FLAG, 'rank': S('int'),
    'world_size': S('int'), 'auto_resume': FLAG, 'root_path': TEXT, 'high_order_degradation': FLAG
}
BLOCKS = {
    'train': {
        'total_iter': S('number', minimum=1), 'warmup_iter': S('number', minimum=-1),
        'ema_decay': S('number', minimum=0, maximum=1), 'optim_*': MAPPING, 'scheduler': MAPPING, '*_opt': MAPPING,
        'net_d_iters': S('int', minimum=1), 'net_d_init_iters': S('int', minimum=0)
    },
    'val': {
        'val_freq': POSITIVE, 'save_img': FLAG, 'suffix': S('str'), 'metrics': MAPPING, 'pbar': FLAG,
        'num_val_samples': S('int', minimum=1)
    },
    'path': {
        'pretrain_network_*': TEXT, 'strict_load_*': FLAG, 'param_key_*': TEXT, 'resume_state': TEXT,
        'ignore_resume_networks': S('list'), 'experiments_root': TEXT, 'models': TEXT, 'training_states': TEXT,
        'log': TEXT, 'visualization': TEXT, 'results_root': TEXT, 'root': TEXT
    },
    'logger': {'print_freq': POSITIVE, 'save_checkpoint_freq': POSITIVE, 'use_tb_logger': FLAG, 'wandb': MAPPING},
    'dist_params': {'backend': TEXT, 'port': S('int', minimum=1, maximum=65535)},
}
WANDB = {'project': TEXT, 'resume_id': TEXT, 'entity': TEXT}
# Loader keys BasicSR reads from any dataset entry (the package's datasets declare theirs in OPTIONS).
LOADER = {
    'batch_size_per_gpu': S('int', minimum=1), 'num_worker_per_gpu': S('int', minimum=0),
    'dataset_enlarge_ratio': POSITIVE, 'gt_size': S('int', minimum=1),
    'prefetch_mode': S('str', choices=('cpu', 'cuda')), 'num_prefetch_queue': S('int', minimum=1),
    'pin_memory': FLAG
}
METRIC_KEYS = {'type': TEXT, 'better': S('str', choices=('higher', 'lower')), 'crop_border': S('int', minimum=0)}
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
LISTS = {k: S('numbers') for k in ('milestones', 'restarts', 'restart_weights', 'periods', 'eta_mins', 'betas')}
LISTS['betas'] = S('numbers', minimum=0, maximum=1)
NEAR_MISS = 0.75  # an unknown top-level key this close to a known one is taken as a typo


def _table_get(table, key):
    """The spec of ``key`` in a table whose keys may hold ``*`` patterns; KeyError if none matches."""
    if key in table:
        return table[key]
    for pattern, spec in table.items():
        if '*' in pattern and fnmatch.fnmatchcase(str(key), pattern):
            return spec
    raise KeyError(key)


def _concrete(table, entry):
    """``table`` with each pattern key that matches a key of ``entry`` spelled out (for :func:`check_entry`)."""
    out = {k: v for k, v in table.items() if '*' not in k}
    for key in entry:
        try:
            out.setdefault(key, _table_get(table, key))
        except KeyError:
            pass
    return out


def signature_table(target, skip=(), overrides=None, open_ended_ok=True, int_kind='int'):
    """``{argument: Spec or None}`` of a callable's signature (kind from the default's type, ``int_kind`` for an
    integer default: ``'number'`` where a float is as good, as ``eta_min=0``; required arguments and other
    defaults: any value), and whether it takes ``**kwargs``."""
    table, open_ended = {}, False
    for name, param in inspect.signature(target).parameters.items():
        if name in skip or param.kind is param.VAR_POSITIONAL:
            continue
        if param.kind is param.VAR_KEYWORD:
            open_ended = open_ended_ok
            continue
        default = param.default
        kind = ('bool' if isinstance(default, bool) else int_kind if isinstance(default, numbers.Integral) else
                'number' if isinstance(default, numbers.Real) else 'str' if isinstance(default, str) else None)
        table[name] = None if kind is None else Spec(kind, empty=True)
    table.update({k: v for k, v in (overrides or {}).items() if k in table})
    return table, open_ended


def _registered(where, kind, value, names, errors):
    """True if ``value`` is one of ``names``; else an error line with "did you mean"."""
    if isinstance(value, str) and value in names:
        return True
    errors.append(f'{where} {value!r} is not a known {kind}{did_you_mean(value, names)}')
    return False


def _typed_entry(where, entry, kind, names, table_of, errors):
    """A ``{type: NAME, ...}`` entry: a mapping, a known type, and the keys ``table_of(NAME)`` allows."""
    if not isinstance(entry, dict):
        errors.append(f'{where} must be a mapping with a type, got {entry!r} ({type(entry).__name__})')
        return
    if not _registered(f'{where}.type', kind, entry.get('type'), names, errors):
        return
    table, open_ended = table_of(entry['type'])
    if open_ended:
        table = dict(dict.fromkeys(entry), **table)
    check_entry(f'{where}.', entry, dict(table, type=TEXT), entry['type'], errors)


def _optimizer_table(name):
    return signature_table(getattr(torch.optim, name), skip=('params', ), int_kind='number',
                           overrides={k: v for k, v in LISTS.items() if k == 'betas'})


def _scheduler_table(name):
    from basicsr.models import lr_scheduler
    cls = lr_scheduler.MultiStepRestartLR if name in SCHEDULERS[:2] else lr_scheduler.CosineAnnealingRestartLR
    return signature_table(cls, skip=('optimizer', 'last_epoch'), int_kind='number',
                           overrides={k: v for k, v in LISTS.items() if k != 'betas'})


def _loss_table(name):
    return signature_table(LOSS_REGISTRY.get(name), int_kind='number')


def _metric_table(name):  # metric functions take **kwargs only to ignore them: a typo there is silently lost
    table, _ = signature_table(METRIC_REGISTRY.get(name), skip=('img', 'img2'), open_ended_ok=False)
    return dict(table, **METRIC_KEYS), False


def _optimizers():
    return sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                  and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != 'Optimizer')


def _block_errors(opt, is_train, errors):
    for block, table in BLOCKS.items():
        entry = opt.get(block)
        if not isinstance(entry, dict):
            continue
        check_entry(f'{block}.', entry, _concrete(table, entry), f'BasicSR\'s {block}:', errors)
        if block == 'logger' and isinstance(entry.get('wandb'), dict):
            check_entry('logger.wandb.', entry['wandb'], WANDB, 'logger.wandb', errors)
    train = opt.get('train')
    if isinstance(train, dict):
        if is_train and 'total_iter' not in train and not any('total_iter' in e for e in errors):
            errors.append('train.total_iter is missing: the number of iterations to train (an integer >= 1)')
        for key, value in train.items():
            if fnmatch.fnmatchcase(key, 'optim_*'):
                _typed_entry(f'train.{key}', value, 'torch.optim optimizer', _optimizers(), _optimizer_table, errors)
            elif key == 'scheduler':
                _typed_entry('train.scheduler', value, 'BasicSR scheduler', SCHEDULERS, _scheduler_table, errors)
            elif fnmatch.fnmatchcase(key, '*_opt'):
                _typed_entry(f'train.{key}', value, 'loss', sorted(LOSS_REGISTRY._obj_map), _loss_table, errors)
    val = opt.get('val')
    if isinstance(val, dict) and isinstance(val.get('metrics'), dict):
        for key, value in val['metrics'].items():
            _typed_entry(f'val.metrics.{key}', value, 'metric', sorted(METRIC_REGISTRY._obj_map), _metric_table,
                         errors)


def _top_errors(opt, errors):
    for key, value in opt.items():
        try:
            spec = _table_get(TOP, key)
        except KeyError:
            hint = did_you_mean(key, [k for k in TOP if '*' not in k] + list(BLOCKS))
            if hint:
                errors.append(f'{key} is not a BasicSR option{hint}')
            else:
                print(f'warning: top-level option {key!r} is read neither by BasicSR nor by this package; it is '
                      'ignored unless your model reads it', file=sys.stderr)
            continue
        if spec is not None:
            try:
                check_value(key, value, spec)
            except OptionError as error:
                errors.append(str(error))
    num_gpu = opt.get('num_gpu')
    if num_gpu not in (None, 'auto') and not (isinstance(num_gpu, int) and not isinstance(num_gpu, bool)
                                              and num_gpu >= 0):
        errors.append(f"num_gpu must be an integer or 'auto', got {num_gpu!r} ({type(num_gpu).__name__}); 0: CPU")
    if opt.get('model_type') is not None and isinstance(opt['model_type'], str):
        _registered('model_type', 'BasicSR model', opt['model_type'], sorted(MODEL_REGISTRY._obj_map), errors)


def _dataset_errors(opt, errors):
    for phase, dataset in (opt.get('datasets') or {}).items() if isinstance(opt.get('datasets'), dict) else ():
        where = f'datasets.{phase}'
        if not isinstance(dataset, dict):
            errors.append(f'{where} must be a mapping (a dataset entry with a type), got {dataset!r}')
            continue
        if not _registered(f'{where}.type', 'dataset', dataset.get('type'), sorted(DATASET_REGISTRY._obj_map),
                           errors):
            continue
        for key, value in dataset.items():  # the loader keys BasicSR reads, in any dataset
            if key in LOADER:
                try:
                    check_value(f'{where}.{key}', value, LOADER[key])
                except OptionError as error:
                    errors.append(str(error))


def basicsr_key_errors(opt, is_train=True):
    """Error lines for BasicSR's own keys in ``opt`` (see the module docstring); networks via
    :func:`converse_up_errors` and ``option_checks``."""
    errors = []
    if not isinstance(opt, dict):
        return [f'the file must hold a mapping of options, got {type(opt).__name__}']
    _top_errors(opt, errors)
    _block_errors(opt, is_train, errors)
    _dataset_errors(opt, errors)
    for key, net in opt.items():
        if fnmatch.fnmatchcase(str(key), 'network_*') and isinstance(net, dict):
            if _registered(f'{key}.type', 'arch', net.get('type'), sorted(ARCH_REGISTRY._obj_map), errors) and \
                    net['type'] == 'ConverseUp':
                errors += converse_up_errors(key, net)
    return errors


def converse_up_errors(where, net):
    """Error lines for a ``ConverseUp`` entry's ``base``: a mapping naming a registered arch (not ConverseUp), whose
    keys and kinds fit that arch's signature, and which has an upsampler the converter can replace."""
    base = net.get('base')
    if base is None:
        return []
    if not isinstance(base, dict):
        return [f'{where}.base must be a mapping such as {{type: EDSR, num_feat: 64, upscale: 4}}, got {base!r} '
                f'({type(base).__name__})']
    errors = []
    names = sorted(n for n in ARCH_REGISTRY._obj_map if n != 'ConverseUp')
    if 'type' not in base:
        return [f"{where}.base needs a 'type': a registered arch such as EDSR or RRDBNet"]
    if not _registered(f'{where}.base.type', 'arch (ConverseUp converts a registered SR arch)', base['type'], names,
                       errors):
        return errors
    cls = ARCH_REGISTRY.get(base['type'])
    table, open_ended = signature_table(cls)
    if open_ended:
        table = dict(dict.fromkeys(base), **table)
    check_entry(f'{where}.base.', base, dict(table, type=TEXT), base['type'], errors)
    if errors:
        return errors
    return _conversion_errors(where, net, cls)


def _conversion_errors(where, net, cls):
    """Build the base (on the meta device: no memory, no weights; on the CPU if its constructor computes with
    its tensors) and plan its conversion: an arch without an upsampler is an error."""
    from converse_basicsr.nn.convert import ConversionError, convert_upsamplers
    kwargs = {k: v for k, v in net['base'].items() if k != 'type'}
    for device in ('meta', 'cpu'):
        try:
            with torch.device(device):
                model = cls(**kwargs)
                convert_upsamplers(model, net.get('kernel_size'), net.get('padding', 2),
                                   net.get('padding_mode', 'replicate'), net.get('eps', 1e-3),
                                   exclude=net.get('exclude', ()), inplace=True)
            return []
        except ConversionError as error:
            return [f'{where}.base ({cls.__name__}) cannot be converted: {error}; ConverseUp needs an SR arch with '
                    'an upsampler (EDSR, RRDBNet, MSRResNet, ...)']
        except (TypeError, ValueError, AssertionError, RuntimeError, NotImplementedError) as error:
            if device == 'meta' and isinstance(error, (RuntimeError, NotImplementedError)):
                continue  # e.g. Tensor.item() in the constructor: try on the CPU
            return [f'{where}.base: {cls.__name__}({", ".join(f"{k}={v!r}" for k, v in kwargs.items())}) cannot '
                    f'be built: {type(error).__name__}: {error}']
    return []


def dataroot_errors(opt):
    """Error lines for the ``dataroot_*`` folders/files of ``opt``'s datasets that do not exist (entries marked
    ``optional: true`` excepted): checked before BasicSR creates the experiment folders."""
    errors = []
    for phase, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict) or dataset.get('optional'):
            continue
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info', 'meta_info_file'):
            value = dataset.get(key)
            if isinstance(value, str) and value and not os.path.exists(value):
                errors.append(f'datasets.{phase}.{key}: {value!r} does not exist (relative paths are taken from the '
                              f'current folder, {os.getcwd()})')
    return errors
