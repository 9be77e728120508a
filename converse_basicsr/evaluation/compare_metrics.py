"""converse-compare's metrics: the names of ``--metric`` (``psnr_y``, ``psnr_rgb``, ``ssim_y``, ``ssim_rgb``,
``niqe``, ``lpips``) as BasicSR metric options, their check before anything runs, their description in words,
and the per-image measurement (BasicSR's ``calculate_metric`` for PSNR/SSIM/NIQE, :mod:`.lpips` for LPIPS).

NIQE is BasicSR's own implementation (its parameters ship with BasicSR: nothing is downloaded); it is a
no-reference score, lower is better, and undefined on images under 192 pixels a side (96-pixel blocks at two
scales): such an image gets an empty cell and the footnote says so.
"""
import os
import warnings

import numpy as np

from basicsr.utils import tensor2img
from basicsr.utils.registry import METRIC_REGISTRY
from converse_basicsr.evaluation.protocols import measure
from converse_basicsr.utils.options import OptionError

__all__ = [
    'NAMES', 'LPIPS_HOW_TO', 'metric_options', 'check_metric_options', 'kind', 'decimals', 'lower_is_better',
    'describe', 'measure_all'
]

NAMES = {
    'psnr_y': ('calculate_psnr', True),
    'psnr_rgb': ('calculate_psnr', False),
    'ssim_y': ('calculate_ssim', True),
    'ssim_rgb': ('calculate_ssim', False),
    'niqe': ('calculate_niqe', True),
    'lpips': ('calculate_lpips', False),
}
"""``--metric`` name → (metric type, on the Y channel)."""
OWN_TYPES = ('calculate_lpips', )  # metric types this package computes (BasicSR 1.4.2 has no LPIPS)
LPIPS_HOW_TO = ("LPIPS needs its weights file: --lpips-weights FILE (YAML lpips_weights:), the state dict of "
                "lpips.LPIPS(net='alex'), e.g. made once with: pip install lpips && python -c \"import lpips, torch; "
                "torch.save(lpips.LPIPS(net='alex').state_dict(), 'lpips_alex.pth')\"")
DECIMALS = {'psnr': 2, 'ssim': 4, 'niqe': 2, 'lpips': 4}
LOWER_IS_BETTER = ('niqe', 'lpips')
TITLES = {
    'psnr': 'PSNR', 'ssim': 'SSIM', 'niqe': 'NIQE', 'lpips': 'LPIPS', 'psnr_y': 'PSNR (Y)', 'psnr_rgb': 'PSNR (RGB)',
    'ssim_y': 'SSIM (Y)', 'ssim_rgb': 'SSIM (RGB)'
}


def metric_options(names, crop_border):
    """``{name: BasicSR metric options}`` for ``--metric`` names under a protocol whose crop is ``crop_border``."""
    options = {}
    for name in names:
        if name not in NAMES:
            raise OptionError(f"--metric {name!r} is not one of {', '.join(NAMES)}")
        metric_type, y_channel = NAMES[name]
        options[name] = dict(type=metric_type, crop_border=crop_border)
        if metric_type in ('calculate_psnr', 'calculate_ssim'):
            options[name]['test_y_channel'] = y_channel
    return options


def check_metric_options(metrics, lpips_weights=None, where='protocol.metrics'):
    """Raise :class:`OptionError` for a metric type neither BasicSR's registry nor this package has, or for
    LPIPS without a weights file that exists (one line saying how to get it). Creates nothing."""
    for name, option in (metrics or {}).items():
        metric_type = option.get('type') if isinstance(option, dict) else None
        if metric_type in OWN_TYPES:
            if not lpips_weights:
                raise OptionError(f'{where}.{name}: {LPIPS_HOW_TO}')
            if not os.path.isfile(lpips_weights):
                raise OptionError(f'lpips_weights {lpips_weights}: no such file. {LPIPS_HOW_TO}')
        elif metric_type not in METRIC_REGISTRY._obj_map:
            known = ', '.join(sorted(set(METRIC_REGISTRY._obj_map) | set(OWN_TYPES)))
            raise OptionError(f'{where}.{name}: metric type {metric_type!r} is not one BasicSR or converse-compare '
                              f'has ({known}); for LPIPS: --metric lpips --lpips-weights FILE')


def kind(name, option):
    """psnr, ssim, niqe or lpips: what a metric column measures (from its type)."""
    return str(option.get('type', name)).replace('calculate_', '').replace('_pt', '')


def decimals(name, option):
    """Decimals as papers print the metric: PSNR and NIQE 2, SSIM and LPIPS 4."""
    return DECIMALS.get(kind(name, option), 4)


def lower_is_better(name, option):
    return kind(name, option) in LOWER_IS_BETTER


def title(name, option):
    """A column title: ``PSNR``, ``PSNR (Y)``, ``SSIM (RGB)``, ...; another name in capitals."""
    return TITLES.get(name, name.upper())


def describe(metrics):
    """The metrics in words, e.g. ``PSNR: BasicSR calculate_psnr on the Y channel, crop 4`` (one per metric)."""
    parts = []
    for name, option in metrics.items():
        what = kind(name, option)
        if what == 'lpips':
            how = 'LPIPS (AlexNet, version 0.1 layout) on RGB'
        elif what == 'niqe':
            how = 'BasicSR calculate_niqe (no reference; empty under 192 px a side) on the Y channel'
        else:
            channel = 'the Y channel' if option.get('test_y_channel') else 'all channels'
            how = f"BasicSR {option.get('type')} on {channel}"
        better = 'lower is better' if lower_is_better(name, option) else 'higher is better'
        parts.append(f"{name}: {how}, crop {option.get('crop_border', 0)}, {better}")
    return '; '.join(parts)


def measure_all(output, gt, metrics, lpips_net=None):
    """``{name: value}`` of one output against its ground truth; a metric undefined on this image (NIQE on a
    small one, SSIM on one under 11 pixels after the crop) is ``''``, never a non-finite number."""
    basic = {k: v for k, v in metrics.items() if v.get('type') not in OWN_TYPES}
    values = {}
    for name, option in basic.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', RuntimeWarning)  # SSIM on a crop under its window: NaN, dropped
                values.update(measure(output, gt, {name: option}))
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            values[name] = ''  # NIQE below 192 px a side
    for name, option in metrics.items():
        if option.get('type') in OWN_TYPES:
            crop = option.get('crop_border', 0)
            out = tensor2img([output if output.dim() == 4 else output[None]], rgb2bgr=False)
            ref = tensor2img([gt if gt.dim() == 4 else gt[None]], rgb2bgr=False)
            if crop:
                out, ref = out[crop:-crop, crop:-crop], ref[crop:-crop, crop:-crop]
            values[name] = lpips_net.distance(out, ref)
    return {k: v if v == '' or np.isfinite(v) else '' for k, v in values.items()}  # SSIM on a tiny crop: NaN
