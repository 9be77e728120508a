"""Train a model from a BasicSR YAML: ``python -m converse_basicsr.train -opt FILE [--launcher
pytorch|slurm] [--auto_resume]`` (console script ``converse-train``).

BasicSR's own ``train_pipeline`` does the work; importing ``converse_basicsr`` first applies the
compatibility fixes and registers the Converse archs, datasets and models. Experiments, logs and
``tb_logger`` go under the current directory. Before training, the option file is checked for a
grayscale/RGB mismatch between each dataset's ``color`` and the network's input channels.
"""
import argparse
import inspect
import os
import sys

import yaml

import converse_basicsr  # noqa: F401  (compat fixes and registries, before basicsr.train)
from basicsr.train import train_pipeline
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.compat import apply_training_fixes
from converse_basicsr.configs import resolve_config
from converse_basicsr.runtime import retain_freed_memory

COLOR_CHANNELS = {'gray': 1, 'y': 1, 'rgb': 3}
# Datasets whose images are RGB unless ``color`` says otherwise; others are checked only with a ``color`` key.
RGB_BY_DEFAULT = ('GaussianNoiseDataset', 'BicubicDownsampleDataset', 'BlurKernelDataset', 'PairedImageDataset',
                  'SingleImageDataset')
IN_CHANNEL_KEYS = ('num_in_ch', 'in_channels', 'in_chans')


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
    """Raise ``ValueError`` naming ``datasets.<phase>.color`` and ``network_g.<key>`` when a dataset
    delivers 1-channel (``gray``, ``y``) or 3-channel (``rgb``, the default of the datasets in
    ``RGB_BY_DEFAULT``) images to a network built for the other."""
    net_opt = opt.get('network_g') or {}
    key, channels = network_in_channels(net_opt) if 'type' in net_opt else (None, None)
    for phase, dataset in (opt.get('datasets') or {}).items():
        if 'color' not in dataset and dataset.get('type') not in RGB_BY_DEFAULT:
            continue
        color = dataset.get('color', 'rgb')
        if str(color).lower() not in COLOR_CHANNELS:
            raise ValueError(f'datasets.{phase}.color must be one of {sorted(COLOR_CHANNELS)}, got {color!r}')
        found = COLOR_CHANNELS[str(color).lower()]
        if key is not None and found != channels:
            want = 'gray' if channels == 1 else 'rgb'
            raise ValueError(
                f'datasets.{phase}.color is {color!r} ({found}-channel images) but network_g.{key} is {channels} '
                f'({net_opt["type"]}): set datasets.{phase}.color: {want} or network_g.{key}: {found}')


def load_options(path):
    with open(path, encoding='utf-8') as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def main(argv=None, root_path=None):
    """Run BasicSR's training pipeline; ``argv`` defaults to ``sys.argv[1:]`` (BasicSR's own
    arguments: ``-opt``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``).
    ``experiments/`` (and ``tb_logger/``) go under ``root_path``, by default the current directory."""
    retain_freed_memory()
    apply_training_fixes()
    saved_argv = sys.argv
    if argv is not None:  # BasicSR's parse_options reads sys.argv
        sys.argv = [sys.argv[0]] + list(argv)
    try:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument('-opt')
        parser.add_argument('--config', help='a shipped config by name, e.g. denoising/train_ConverseDnCNN_gray_sigma25')
        known, rest = parser.parse_known_args(sys.argv[1:])
        if known.config:  # replace --config NAME by BasicSR's -opt PATH
            if known.opt:
                raise SystemExit('converse-train: give -opt PATH or --config NAME, not both')
            known.opt = resolve_config(known.config, 'train')
            sys.argv = [sys.argv[0], '-opt', known.opt] + rest
        if known.opt:  # without -opt, BasicSR's parser prints the usage
            check_color_channels(load_options(known.opt))
        train_pipeline(os.path.abspath(root_path or os.getcwd()))
    finally:
        sys.argv = saved_argv


if __name__ == '__main__':
    main()
