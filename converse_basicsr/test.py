"""``python -m converse_basicsr.test -opt FILE`` (or ``converse-test -opt FILE``): BasicSR's test pipeline
with this package's archs, datasets and models registered.

On top of ``basicsr.test.test_pipeline`` it

- skips dataset entries marked ``optional: true`` whose ``dataroot_gt`` does not exist (the slots for
  test sets not shipped, e.g. BSD100), with a warning; a missing non-optional dataroot is an error;
- writes ``results/<name>/per_image_<dataset>.csv`` (one row per image: the ``val.metrics``, e.g. PSNR
  and SSIM), computed with BasicSR's metrics from the images BasicSR saved (``val.save_img: true``)
  against the dataset's ground truth, so they are exactly the values behind BasicSR's logged means.

Results go under ``results/`` of the current directory; other BasicSR flags (``--force_yml``, ...) pass through.
"""
import argparse
import csv
import os
import re
import sys
import tempfile
from os import path as osp

import cv2
import yaml

import converse_basicsr  # noqa: F401  (compat fixes and registries)
from basicsr.data import build_dataset
from basicsr.metrics import calculate_metric
from basicsr.test import test_pipeline
from basicsr.utils import get_root_logger, tensor2img
from basicsr.utils.options import ordered_yaml, parse_options
from converse_basicsr.compat import apply_training_fixes
from converse_basicsr.configs import resolve_config
from converse_basicsr.runtime import retain_freed_memory


def drop_absent_optional_datasets(opt):
    """Remove ``optional: true`` dataset entries whose ``dataroot_gt`` is missing; return their names."""
    skipped = []
    for key in list(opt.get('datasets', {})):
        entry = opt['datasets'][key]
        if entry.get('optional') and not osp.exists(osp.expanduser(str(entry.get('dataroot_gt')))):
            skipped.append(f"{entry.get('name', key)} ({entry.get('dataroot_gt')})")
            del opt['datasets'][key]
    return skipped


def result_image_path(opt, dataset_name, lq_path):
    """Where SRModel's validation saved the result for ``lq_path`` (test runs)."""
    img_name = osp.splitext(osp.basename(lq_path))[0]
    suffix = opt['val'].get('suffix') or opt['name']
    return osp.join(opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}.png')


def per_image_metrics(opt, dataset_opt):
    """Rows ``{'image': name, <metric>: value}`` for one dataset entry, from the saved results."""
    dataset = build_dataset(dataset_opt)
    rows = []
    for index in range(len(dataset)):
        sample = dataset[index]
        saved = result_image_path(opt, dataset_opt['name'], sample['lq_path'])
        result = cv2.imread(saved, cv2.IMREAD_UNCHANGED)
        if result is None:
            raise FileNotFoundError(f'result image {saved!r} is missing; per-image metrics need val.save_img: true')
        data = {'img': result, 'img2': tensor2img([sample['gt'][None]])}
        row = {'image': osp.basename(sample['lq_path'])}
        row.update({name: calculate_metric(data, metric_opt) for name, metric_opt in opt['val']['metrics'].items()})
        rows.append(row)
    return rows


def write_per_image_csv(opt):
    """Write ``per_image_<dataset>.csv`` next to the log for every test dataset; return their paths."""
    logger = get_root_logger()
    if not opt.get('val', {}).get('metrics'):
        return []
    if not opt['val'].get('save_img'):
        logger.warning('per-image CSV files need val.save_img: true; none written')
        return []
    paths = []
    for dataset_opt in opt['datasets'].values():
        rows = per_image_metrics(opt, dataset_opt)
        path = osp.join(opt['path']['log'], f"per_image_{re.sub(r'[^A-Za-z0-9_.-]', '_', dataset_opt['name'])}.csv")
        with open(path, 'w', newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: f'{v:.6f}' if isinstance(v, float) else v for k, v in row.items()} for row in rows)
        logger.info(f"Per-image metrics of {dataset_opt['name']}: {path}")
        paths.append(path)
    return paths


def run(argv=None):
    """Run the test config given by ``-opt`` in ``argv``; return the paths of the per-image CSV files."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('-opt', help='path to the test option YAML file')
    source.add_argument('--config', help='a shipped test config by name, e.g. test_converse_dncnn_sigma25')
    known, rest = parser.parse_known_args(argv)
    opt_file = known.opt or resolve_config(known.config, 'test')
    with open(opt_file, encoding='utf-8') as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    skipped = drop_absent_optional_datasets(opt)
    if not opt.get('datasets'):
        raise FileNotFoundError(f'none of the datasets of {opt_file!r} is present; skipped: {", ".join(skipped)}')
    temp_file = None
    if skipped:
        print(f'WARNING: skipping optional datasets that are not present: {", ".join(skipped)}', file=sys.stderr)
        opt['skipped_datasets'] = skipped  # logged with the options
        fd, temp_file = tempfile.mkstemp(suffix='.yml', prefix=osp.splitext(osp.basename(opt_file))[0] + '_')
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            yaml.dump(opt, f, Dumper=ordered_yaml()[1])
    # BasicSR's parse_options reads sys.argv
    saved_argv, sys.argv = sys.argv, [sys.argv[0], '-opt', temp_file or opt_file] + rest
    try:
        root_path = os.getcwd()
        test_pipeline(root_path)
        opt, _ = parse_options(root_path, is_train=False)
        return write_per_image_csv(opt)
    finally:
        sys.argv = saved_argv
        if temp_file:
            os.remove(temp_file)


def main(argv=None):
    """Console entry point (``converse-test``): exit status 0 on success."""
    retain_freed_memory()
    apply_training_fixes()
    run(argv)
    return 0


if __name__ == '__main__':
    sys.exit(main())
