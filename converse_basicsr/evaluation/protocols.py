"""Evaluation shared by ``converse-test`` and ``converse-compare``: optional test sets, per-image metrics with
BasicSR's ``calculate_metric`` on uint8 images, and the per-image CSV files.

Both entry points quantise a result exactly as BasicSR's validation does (``tensor2img``: clamp to [0, 1],
×255, round, RGB → BGR for colour) and measure it against ``tensor2img`` of the ground truth, so a number
here is the number BasicSR logs for the same output.
"""
import csv
import os
import re
import sys
import tempfile
from os import path as osp

import cv2
import numpy as np
import yaml

from basicsr.data import build_dataset
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, tensor2img
from basicsr.utils.options import ordered_yaml
from converse_basicsr.data.io import write_atomic
from converse_basicsr.utils.safe_yaml import basicsr_reads_safely, load_yaml


def drop_absent_optional_datasets(opt):
    """Remove ``optional: true`` dataset entries whose ``dataroot_gt`` is missing; return their names."""
    skipped = []
    for key in list(opt.get('datasets', {})):
        entry = opt['datasets'][key]
        if entry.get('optional') and not osp.exists(osp.expanduser(str(entry.get('dataroot_gt')))):
            skipped.append(f"{entry.get('name', key)} ({entry.get('dataroot_gt')})")
            del opt['datasets'][key]
    return skipped


def load_present_datasets(opt_file):
    """The options of ``opt_file`` without its absent optional datasets, and the path of a YAML file holding
    them (a temporary file when something was dropped: remove it after use; else ``opt_file`` itself)."""
    opt = load_yaml(opt_file)
    skipped = drop_absent_optional_datasets(opt)
    if not opt.get('datasets'):
        raise FileNotFoundError(f'none of the datasets of {opt_file!r} is present; skipped: {", ".join(skipped)}')
    if not skipped:
        return opt, opt_file
    print(f'WARNING: skipping optional datasets that are not present: {", ".join(skipped)}', file=sys.stderr)
    opt['skipped_datasets'] = skipped  # logged with the options
    fd, temp_file = tempfile.mkstemp(suffix='.yml', prefix=osp.splitext(osp.basename(opt_file))[0] + '_')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        yaml.dump(opt, f, Dumper=ordered_yaml()[1])
    return opt, temp_file


def file_tag(name):
    """``name`` with every character outside ``[A-Za-z0-9_.-]`` replaced by ``_`` (for file names)."""
    return re.sub(r'[^A-Za-z0-9_.-]', '_', str(name))


def per_image_csv_name(dataset_name):
    return f'per_image_{file_tag(dataset_name)}.csv'


def measure(result, gt, metrics_opt):
    """``{metric name: value}`` of ``result`` against ``gt``, BasicSR's metrics on uint8 images.

    ``result``: a uint8 image as BasicSR saves it (BGR for colour) or a float tensor (1, C, H, W) / (C, H, W)
    in RGB, quantised here with ``tensor2img``; ``gt``: the dataset's RGB float tensor."""
    if not isinstance(result, np.ndarray):
        result = tensor2img([result if result.dim() == 4 else result[None]])
    data = {'img': result, 'img2': tensor2img([gt if gt.dim() == 4 else gt[None]])}
    return {name: float(calculate_metric(data, metric_opt)) for name, metric_opt in metrics_opt.items()}


def atomic_write_csv(path, rows, fieldnames=None):
    """Write ``rows`` (dicts) to ``path`` through a temporary file and ``os.replace``; floats with 6 decimals."""
    if fieldnames is None:
        fieldnames = list(rows[0]) if rows else ['image']
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)

    def write(temp):
        with open(temp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction='ignore')
            writer.writeheader()
            writer.writerows({k: f'{v:.6f}' if isinstance(v, float) else v for k, v in row.items()} for row in rows)

    write_atomic(path, write)
    return path


def result_image_path(opt, dataset_name, lq_path):
    """Where SRModel's validation saved the result for ``lq_path`` (test runs)."""
    img_name = osp.splitext(osp.basename(lq_path))[0]
    suffix = opt['val'].get('suffix') or opt['name']
    return osp.join(opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}.png')


def saved_results_metrics(opt, dataset_opt):
    """Rows ``{'image': name, <metric>: value}`` for one dataset entry, from the images a test run saved."""
    dataset = build_dataset(dataset_opt)
    rows = []
    for index in range(len(dataset)):
        sample = dataset[index]
        saved = result_image_path(opt, dataset_opt['name'], sample['lq_path'])
        result = cv2.imread(saved, cv2.IMREAD_UNCHANGED)
        if result is None:
            raise FileNotFoundError(f'result image {saved!r} is missing; per-image metrics need val.save_img: true')
        rows.append(dict(image=osp.basename(sample['lq_path']), **measure(result, sample['gt'], opt['val']['metrics'])))
    return rows


def write_per_image_csv(opt):
    """Write ``per_image_<dataset>.csv`` next to the log of a test run for every dataset; return their paths."""
    logger = get_root_logger()
    if not opt.get('val', {}).get('metrics'):
        return []
    if not opt['val'].get('save_img'):
        logger.warning('per-image CSV files need val.save_img: true; none written')
        return []
    paths = []
    for dataset_opt in opt['datasets'].values():
        path = atomic_write_csv(
            osp.join(opt['path']['log'], per_image_csv_name(dataset_opt['name'])),
            saved_results_metrics(opt, dataset_opt))
        logger.info(f"Per-image metrics of {dataset_opt['name']}: {path}")
        paths.append(path)
    return paths


def run_test_config(opt_file, extra_argv=()):
    """converse-test's run: BasicSR's ``test_pipeline`` on ``opt_file`` without its absent optional test sets
    (``extra_argv``: further BasicSR flags), then the per-image CSV files; returns their paths."""
    from basicsr.test import test_pipeline
    from basicsr.utils.options import parse_options
    _, run_file = load_present_datasets(opt_file)
    saved_argv, sys.argv = sys.argv, [sys.argv[0], '-opt', run_file] + list(extra_argv)  # parse_options reads it
    try:
        with basicsr_reads_safely():  # BasicSR reads the file again: with the same safe loader
            test_pipeline(os.getcwd())
            return write_per_image_csv(parse_options(os.getcwd(), is_train=False)[0])
    finally:
        sys.argv = saved_argv
        if run_file != opt_file:
            os.remove(run_file)
