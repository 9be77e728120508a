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
from converse_basicsr.training.compat import OPTIMIZERS
from converse_basicsr.utils.imports import IMPORT_HINT, IMPORTS_KEY
from converse_basicsr.utils.options import OptionError, Spec, check_entry, check_value, did_you_mean

S = Spec
TEXT, FLAG, MAPPING, ANY = S('str'), S('bool'), S('dict'), None
FREQUENCY = S('number', minimum=1, nullable=False)  # BasicSR divides by it (``iter % freq``, ``len * ratio``)
PROBABILITY, PROBABILITIES = S('number', minimum=0, maximum=1), S('numbers', minimum=0, maximum=1)
# The top-level keys BasicSR's RealESRNetModel / RealESRGANModel read for their degradations (all required while
# ``high_order_degradation`` is on, BasicSR's default), with each model's own USM keys.
DEGRADATION = {
    'resize_prob': PROBABILITIES, 'resize_range': S('numbers', minimum=0), 'gaussian_noise_prob': PROBABILITY,
    'noise_range': S('numbers', minimum=0), 'poisson_scale_range': S('numbers', minimum=0),
    'gray_noise_prob': PROBABILITY, 'jpeg_range': S('numbers', minimum=0, maximum=100)
}
REAL_ESRGAN = {f'{key}{n}': spec for n in ('', '2') for key, spec in DEGRADATION.items()}
REAL_ESRGAN.update(second_blur_prob=PROBABILITY, gt_size=S('int', minimum=1))
# BasicSR's RealESRGANDataset: every key it reads (all required but the loader's), for its first and second blur
_BLUR = {
    'blur_kernel_size': S('int', minimum=3, maximum=21), 'kernel_list': S('list'), 'kernel_prob': PROBABILITIES,
    'sinc_prob': PROBABILITY, 'blur_sigma': S('numbers', minimum=0), 'betag_range': S('numbers', minimum=0),
    'betap_range': S('numbers', minimum=0)
}
REAL_ESRGAN_DATASET = {f'{key}{n}': spec for n in ('', '2') for key, spec in _BLUR.items()}
REAL_ESRGAN_DATASET.update(final_sinc_prob=PROBABILITY, gt_size=S('int', minimum=1), use_hflip=FLAG, use_rot=FLAG,
                           dataroot_gt=TEXT, meta_info=TEXT)
REAL_ESRGAN_USM = {'RealESRNetModel': ('gt_usm', ), 'RealESRGANModel': ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm')}
USM_FLAGS = {key: FLAG for keys in REAL_ESRGAN_USM.values() for key in keys}
# IMPORTS_KEY (custom_imports) is this package's: the user's modules, imported before the checks
TOP = {
    'name': TEXT, 'model_type': TEXT, 'scale': S('int', minimum=1), 'num_gpu': ANY, 'manual_seed': S('int'),
    'datasets': MAPPING, 'network_*': MAPPING, 'path': MAPPING, 'train': MAPPING, 'val': MAPPING, 'logger': MAPPING,
    'dist_params': MAPPING, 'find_unused_parameters': FLAG, 'is_train': FLAG, 'dist': FLAG, 'rank': S('int'),
    'world_size': S('int'), 'auto_resume': FLAG, 'root_path': TEXT, 'high_order_degradation': FLAG,
    'queue_size': S('int', minimum=1), **REAL_ESRGAN, **USM_FLAGS, IMPORTS_KEY: S('list')
}
BLOCKS = {
    'train': {
        'total_iter': S('number', minimum=1), 'warmup_iter': S('number', minimum=-1),
        'ema_decay': S('number', minimum=0, maximum=1), 'optim_{net}': MAPPING, 'scheduler': MAPPING,
        **{f'{loss}_opt': MAPPING
           for loss in ('pixel', 'perceptual', 'gan', 'ldl', 'feature_matching')}, 'net_d_iters': S('int', minimum=1),
        'net_d_init_iters': S('int', minimum=0)
    },
    'val': {
        'val_freq': FREQUENCY, 'save_img': FLAG, 'suffix': S('str'), 'metrics': MAPPING, 'pbar': FLAG,
        'num_val_samples': S('int', minimum=1)
    },
    'path': {
        'pretrain_network_{net}': TEXT, 'strict_load_{net}': FLAG, 'param_key_{net}': TEXT, 'resume_state': TEXT,
        'ignore_resume_networks': S('list'), 'experiments_root': TEXT, 'models': TEXT, 'training_states': TEXT,
        'log': TEXT, 'visualization': TEXT, 'results_root': TEXT, 'root': TEXT
    },
    'logger': {'print_freq': FREQUENCY, 'save_checkpoint_freq': FREQUENCY, 'use_tb_logger': FLAG, 'wandb': MAPPING},
    'dist_params': {'backend': TEXT, 'port': S('int', minimum=1, maximum=65535)},
}
WANDB = {'project': TEXT, 'resume_id': TEXT, 'entity': TEXT}
# Loader keys BasicSR reads from any dataset entry (the package's datasets declare theirs in OPTIONS).
LOADER = {
    'batch_size_per_gpu': S('int', minimum=1), 'num_worker_per_gpu': S('int', minimum=0),
    'dataset_enlarge_ratio': FREQUENCY, 'gt_size': S('int', minimum=1),
    'prefetch_mode': S('str', choices=('cpu', 'cuda')), 'num_prefetch_queue': S('int', minimum=1), 'pin_memory': FLAG
}
IO_BACKEND = {
    'type': S('str', choices=('disk', 'lmdb', 'memcached')), 'db_paths': ANY, 'client_keys': ANY, 'readonly': FLAG,
    'lock': FLAG, 'readahead': FLAG, 'server_list_cfg': TEXT, 'client_cfg': TEXT, 'sys_path': TEXT
}
METRIC_KEYS = {'type': TEXT, 'better': S('str', choices=('higher', 'lower')), 'crop_border': S('int', minimum=0)}
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
# What BasicSR's SR models do with each loss: ``pixel_opt`` / ``ldl_opt`` call ``loss(output, gt)``,
# ``perceptual_opt`` unpacks ``(percep, style)``, ``gan_opt`` takes ``(pred, target_is_real, is_disc)``. BasicSR's
# own losses must fit their slot; a loss registered by someone else is taken at its word.
LOSS_SLOTS = {
    'pixel_opt': ('L1Loss', 'MSELoss', 'CharbonnierLoss'), 'ldl_opt': ('L1Loss', 'MSELoss', 'CharbonnierLoss'),
    'perceptual_opt': ('PerceptualLoss', ), 'gan_opt': ('GANLoss', 'MultiScaleGANLoss')
}
LISTS = {k: S('numbers') for k in ('milestones', 'restarts', 'restart_weights', 'periods', 'eta_mins', 'betas')}
LISTS['betas'] = S('numbers', minimum=0, maximum=1)


def registered(registry, name):
    """What BasicSR's ``registry.get(name)`` finds (``name``, else ``name + '_basicsr'``), or None; without its
    print."""
    if not isinstance(name, str):
        return None
    return registry._obj_map.get(name) or registry._obj_map.get(f'{name}_basicsr')


def _table_get(table, key):
    """The spec of ``key`` in a table whose keys may hold ``*`` patterns; KeyError if none matches."""
    if key in table:
        return table[key]
    for pattern, spec in table.items():
        if '*' in pattern and fnmatch.fnmatchcase(str(key), pattern):
            return spec
    raise KeyError(key)


def networks(opt):
    """The network names of ``opt`` (``g`` for ``network_g``, ...); ``g`` always (BasicSR's models need it)."""
    return ['g'] + [
        k[len('network_'):] for k in opt if isinstance(k, str) and k.startswith('network_') and k != 'network_g'
    ]


def _concrete(table, nets):
    """``table`` with each ``{net}`` key spelled out for the networks ``nets`` (for :func:`check_entry`)."""
    out = {}
    for key, spec in table.items():
        for name in (nets if '{net}' in key else [None]):
            out[key.replace('{net}', name) if name else key] = spec
    return out


def _network_key_errors(opt, errors):
    """``network_<name>`` keys that look like a typo of ``network_g``/``network_d`` (a short or empty name, or
    ``g``/``d`` with extra underscores) while that key is absent."""
    for key in opt:
        name = key[len('network_'):] if isinstance(key, str) and key.startswith('network_') else None
        if name is None or name in ('g', 'd'):
            continue
        missing = [f'network_{n}' for n in ('g', 'd') if f'network_{n}' not in opt]
        if missing and (len(name) <= 2 or name.strip('_') in ('g', 'd')) and did_you_mean(key, missing):
            errors.append(f'{key} is not a BasicSR option{did_you_mean(key, missing)}')


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
        kind = (
            'bool' if isinstance(default, bool) else
            int_kind if isinstance(default, numbers.Integral) else 'number' if isinstance(default, numbers.Real) else
            'str' if isinstance(default, str) else 'numbers' if isinstance(default, (tuple, list)) and default and all(
                isinstance(x, numbers.Real) and not isinstance(x, bool) for x in default) else None)
        table[name] = None if kind is None else Spec(kind, empty=default == '')
    table.update({k: v for k, v in (overrides or {}).items() if k in table})
    return table, open_ended


def _registered(where, kind, value, names, errors, entry=None):
    """True if ``value`` is one of ``names``, or is with BasicSR's ``_basicsr`` suffix (as ``Registry.get`` reads it);
    else an error line with "did you mean". With the ``entry`` it is the ``type`` of, a missing ``type`` is named, or
    the key that looks like a typo of it."""
    if isinstance(value, str) and (value in names or f'{value}_basicsr' in names):
        return True
    if entry is not None and 'type' not in entry:
        near = [k for k in entry if did_you_mean(k, ['type'])]
        prefix = where[:-len('type')]
        errors.append(f"{prefix}{near[0]} is not an option (did you mean 'type'?)"
                      if near else f'{where} is missing: the {kind} to use')
        return False
    if not isinstance(value, str):
        errors.append(f'{where} must be the name of a {kind}, got {value!r} ({type(value).__name__})')
        return False
    hint = f'; {IMPORT_HINT}' if kind.startswith('arch') else ''
    errors.append(f'{where} {value!r} is not a known {kind}{did_you_mean(value, names)}{hint}')
    return False


def _typed_entry(where, entry, kind, names, table_of, errors):
    """A ``{type: NAME, ...}`` entry: a mapping, a known type, and the keys ``table_of(NAME)`` allows."""
    if not isinstance(entry, dict):
        errors.append(f'{where} must be a mapping with a type, got {entry!r} ({type(entry).__name__})')
        return
    if not _registered(f'{where}.type', kind, entry.get('type'), names, errors, entry):
        return
    table, open_ended = table_of(entry['type'])
    if open_ended:
        table = dict(dict.fromkeys(entry), **table)
    check_entry(f'{where}.', entry, dict(table, type=TEXT), entry['type'], errors)


def _optimizer_table(name):
    return signature_table(
        getattr(torch.optim, name), skip=('params', ), int_kind='number',
        overrides={k: v
                   for k, v in LISTS.items() if k == 'betas'})


def _scheduler_table(name):
    from basicsr.models import lr_scheduler
    cls = lr_scheduler.MultiStepRestartLR if name in SCHEDULERS[:2] else lr_scheduler.CosineAnnealingRestartLR
    return signature_table(cls, skip=('optimizer', 'last_epoch'), int_kind='number',
                           overrides={k: v
                                      for k, v in LISTS.items() if k != 'betas'})


def _loss_table(name):
    return signature_table(LOSS_REGISTRY.get(name), int_kind='number')


def _metric_table(name):  # metric functions take **kwargs only to ignore them: a typo there is silently lost
    table, _ = signature_table(METRIC_REGISTRY.get(name), skip=('img', 'img2'), open_ended_ok=False)
    return dict(table, **METRIC_KEYS), False


def _optimizers():
    """The optimizers converse-train builds (BasicSR's ``get_optimizer`` with ``compat.fix_optimizers``)."""
    return list(OPTIMIZERS)


def _perceptual_errors(key, entry, errors):
    """``PerceptualLoss.layer_weights``: a mapping of the VGG's layer names to numbers."""
    from basicsr.archs.vgg_arch import NAMES
    weights, vgg = entry.get('layer_weights'), entry.get('vgg_type', 'vgg19')
    if getattr(registered(LOSS_REGISTRY, entry.get('type')), '__name__', None) != 'PerceptualLoss':
        return
    if not isinstance(weights, dict) or not weights:
        errors.append(f'train.{key}.layer_weights must be a mapping of VGG layer names to weights, such as '
                      f'{{conv5_4: 1}}, got {weights!r}')
        return
    names = NAMES.get(vgg, []) if isinstance(vgg, str) else []
    for layer, weight in weights.items():
        if names and layer not in names:
            errors.append(f'train.{key}.layer_weights.{layer} is not a layer of {vgg}{did_you_mean(layer, names)}')
        try:
            check_value(f'train.{key}.layer_weights.{layer}', weight, S('number', minimum=0, nullable=False))
        except OptionError as error:
            errors.append(str(error))


def _loss_slot_errors(key, entry, errors):
    """A BasicSR loss in a slot whose call it does not fit (an L1Loss as ``gan_opt``)."""
    loss = registered(LOSS_REGISTRY, entry.get('type'))
    fits = LOSS_SLOTS.get(key)
    if loss is not None and fits and loss.__module__.startswith('basicsr.') and loss.__name__ not in fits:
        errors.append(f"train.{key}.type {entry['type']!r} does not fit there: BasicSR's models call "
                      f"{key} as one of {', '.join(fits)}")


def _block_errors(opt, is_train, errors):
    for block, table in BLOCKS.items():
        entry = opt.get(block)
        if not isinstance(entry, dict):
            continue
        check_entry(f'{block}.', entry, _concrete(table, networks(opt)), f'BasicSR\'s {block}:', errors)
        if block == 'logger' and isinstance(entry.get('wandb'), dict):
            check_entry('logger.wandb.', entry['wandb'], WANDB, 'logger.wandb', errors)
    train = opt.get('train')
    if isinstance(train, dict):
        if is_train and 'total_iter' not in train and not any('total_iter' in e for e in errors):
            errors.append('train.total_iter is missing: the number of iterations to train (an integer >= 1)')
        for key, value in train.items():
            if key in [f'optim_{n}' for n in networks(opt)]:
                _typed_entry(f'train.{key}', value, 'torch.optim optimizer', _optimizers(), _optimizer_table, errors)
            elif key == 'scheduler':
                _typed_entry('train.scheduler', value, 'BasicSR scheduler', SCHEDULERS, _scheduler_table, errors)
            elif key in BLOCKS['train'] and key.endswith('_opt') and value is not None:  # ``~``: that loss is off
                _typed_entry(f'train.{key}', value, 'loss', sorted(LOSS_REGISTRY._obj_map), _loss_table, errors)
                if isinstance(value, dict):
                    _loss_slot_errors(key, value, errors)
                    _perceptual_errors(key, value, errors)
    val = opt.get('val')
    if isinstance(val, dict) and isinstance(val.get('metrics'), dict):
        for key, value in val['metrics'].items():
            _typed_entry(f'val.metrics.{key}', value, 'metric', sorted(METRIC_REGISTRY._obj_map), _metric_table, errors)


def _model_errors(opt, errors):
    """For training: what the model of ``model_type`` reads without a default (BasicSR's SR models and their
    subclasses): its optimizers and scheduler, a loss, a GAN model's discriminator and GAN loss, Real-ESRGAN's
    degradation keys and a queue that the batch divides."""
    from basicsr.models.realesrgan_model import RealESRGANModel
    from basicsr.models.realesrnet_model import RealESRNetModel
    from basicsr.models.sr_model import SRModel
    from basicsr.models.srgan_model import SRGANModel
    model, name = registered(MODEL_REGISTRY, opt.get('model_type')), opt.get('model_type')
    train = opt.get('train')
    if not (isinstance(model, type) and issubclass(model, SRModel) and isinstance(train, dict)):
        return
    needed = ['optim_g', 'scheduler']
    if issubclass(model, SRGANModel):
        needed.append('optim_d')
        if not isinstance(opt.get('network_d'), dict):
            errors.append(f'network_d is missing: {name} trains a discriminator (e.g. {{type: VGGStyleDiscriminator}})')
        if not train.get('gan_opt'):
            errors.append(f'train.gan_opt is missing or ~: {name} needs its GAN loss (e.g. {{type: GANLoss}})')
    elif not train.get('pixel_opt') and not train.get('perceptual_opt'):
        errors.append(f'train.pixel_opt and train.perceptual_opt are both off: {name} needs at least one of them')
    errors += [f'train.{key} is missing: {name} reads it' for key in needed if key not in train]
    if issubclass(model, (RealESRGANModel, RealESRNetModel)) and opt.get('high_order_degradation', True) is not False:
        usm = REAL_ESRGAN_USM['RealESRGANModel' if issubclass(model, RealESRGANModel) else 'RealESRNetModel']
        missing = [key for key in [*REAL_ESRGAN, *usm] if key not in opt]
        if missing:
            errors.append(f'{name} makes its training pairs from top-level degradation keys; missing: '
                          f'{", ".join(missing)} (see BasicSR\'s options/train/RealESRGAN)')
        queue = opt.get('queue_size', 180)
        datasets = opt.get('datasets') if isinstance(opt.get('datasets'), dict) else {}
        train_set = datasets.get('train') if isinstance(datasets.get('train'), dict) else {}
        batch = train_set.get('batch_size_per_gpu')
        if isinstance(queue, int) and isinstance(batch, int) and batch > 0 and queue % batch:
            errors.append(f'queue_size ({queue}) must be a multiple of datasets.train.batch_size_per_gpu ({batch})')


def _top_errors(opt, errors):
    for key, value in opt.items():
        try:
            spec = _table_get(TOP, key)
        except KeyError:
            hint = did_you_mean(key, [k for k in TOP if '*' not in k] + ['network_g', 'network_d'])
            if hint:
                errors.append(f'{key} is not a BasicSR option{hint}')
            else:
                print(
                    f'warning: top-level option {key!r} is read neither by BasicSR nor by this package; it is '
                    'ignored unless your model reads it', file=sys.stderr)
            continue
        if spec is not None:
            try:
                check_value(key, value, spec)
            except OptionError as error:
                errors.append(str(error))
    num_gpu = opt.get('num_gpu')
    if num_gpu not in (None,
                       'auto') and not (isinstance(num_gpu, int) and not isinstance(num_gpu, bool) and num_gpu >= 0):
        errors.append(f"num_gpu must be an integer or 'auto', got {num_gpu!r} ({type(num_gpu).__name__}); 0: CPU")
    if opt.get('model_type') is not None and isinstance(opt['model_type'], str):
        _registered('model_type', 'BasicSR model', opt['model_type'], sorted(MODEL_REGISTRY._obj_map), errors)


def _dataset_errors(opt, errors):
    for phase, dataset in (opt.get('datasets') or {}).items() if isinstance(opt.get('datasets'), dict) else ():
        where = f'datasets.{phase}'
        if not isinstance(dataset, dict):
            errors.append(f'{where} must be a mapping (a dataset entry with a type), got {dataset!r}')
            continue
        if not _registered(f'{where}.type', 'dataset', dataset.get('type'), sorted(DATASET_REGISTRY._obj_map), errors,
                           dataset):
            continue
        if isinstance(dataset.get('io_backend'), dict):
            check_entry(f'{where}.io_backend.', dataset['io_backend'], IO_BACKEND, 'io_backend', errors)
        if getattr(registered(DATASET_REGISTRY, dataset['type']), '__name__', None) == 'RealESRGANDataset':
            table = dict(REAL_ESRGAN_DATASET, **LOADER, name=TEXT, type=TEXT, io_backend=MAPPING, phase=TEXT, scale=ANY)
            check_entry(f'{where}.', dataset, table, 'RealESRGANDataset', errors)
            errors += [
                f'{where}.{key} is missing: RealESRGANDataset reads it' for key in REAL_ESRGAN_DATASET
                if key not in dataset
            ]
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
    _network_key_errors(opt, errors)
    _block_errors(opt, is_train, errors)
    if is_train:
        _model_errors(opt, errors)
    _dataset_errors(opt, errors)
    for key, net in opt.items():
        if fnmatch.fnmatchcase(str(key), 'network_*') and isinstance(net, dict):
            if _registered(f'{key}.type', 'arch', net.get('type'), sorted(ARCH_REGISTRY._obj_map), errors, net) and \
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
        return [
            f'{where}.base must be a mapping such as {{type: EDSR, num_feat: 64, upscale: 4}}, got {base!r} '
            f'({type(base).__name__})'
        ]
    errors = []
    names = sorted(n for n in ARCH_REGISTRY._obj_map if n != 'ConverseUp')
    if not _registered(f'{where}.base.type', 'arch (ConverseUp converts a registered SR arch)', base.get('type'), names,
                       errors, base):
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
            return [
                f'{where}.base ({cls.__name__}) cannot be converted: {error}; ConverseUp needs an SR arch with '
                'an upsampler (EDSR, RRDBNet, MSRResNet, ...)'
            ]
        except (TypeError, ValueError, AssertionError, RuntimeError, NotImplementedError) as error:
            if device == 'meta' and isinstance(error, (RuntimeError, NotImplementedError)):
                continue  # e.g. Tensor.item() in the constructor: try on the CPU
            return [
                f'{where}.base: {cls.__name__}({", ".join(f"{k}={v!r}" for k, v in kwargs.items())}) cannot '
                f'be built: {type(error).__name__}: {error}'
            ]
    return []


def dataroot_errors(opt):
    """Error lines for the files and folders ``opt`` reads that do not exist: datasets' ``dataroot_*`` and
    ``meta_info`` (entries marked ``optional: true`` excepted) and ``path.pretrain_network_*``. Checked before
    BasicSR creates the experiment or results folders."""
    where = f'relative paths are taken from the current folder, {os.getcwd()}'
    errors = []
    for phase, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict) or dataset.get('optional'):
            continue
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info', 'meta_info_file'):
            value = dataset.get(key)
            if isinstance(value, str) and value and not os.path.exists(value):
                errors.append(f'datasets.{phase}.{key}: {value!r} does not exist ({where})')
    for key, value in (opt.get('path') or {}).items():
        if fnmatch.fnmatchcase(key, 'pretrain_network_*') and isinstance(value, str) and not os.path.isfile(value):
            errors.append(f'path.{key}: {value!r} is not a file ({where})')
    return errors
