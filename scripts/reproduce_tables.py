"""Run the paper's test configs and print a markdown table: published vs measured, per dataset and kernel.

    python scripts/reproduce_tables.py                  # run every config in options/test, then tabulate
    python scripts/reproduce_tables.py --no-run         # tabulate the CSVs already under results/
    python scripts/reproduce_tables.py options/test/test_converse_srresnet_x4.yml

Each config runs as ``python -m converse_basicsr.test -opt FILE`` (datasets that are not present are
skipped by the entry point); the measured numbers come from its per-image CSVs in ``results/<name>/``.
"Published" is the paper's table (on BSD100 for deblurring); "reference" is the published code on the
same test images measured with BasicSR's metrics (``paper_tables.json``), where it exists.
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
from os import path as osp

import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# config → (section of paper_tables.json, model name there, PSNR key of its per-image references)
CONFIGS = {
    'options/test/test_converse_dncnn_sigma25.yml': ('denoising_sigma25_gray', 'Converse-DnCNN', 'psnr'),
    'options/test/test_converse_srresnet_x4.yml': ('sr_x4_y_channel', 'Converse-SRResNet', 'psnr_y'),
    'options/test/test_conversenet_deblur.yml': ('deblurring_sigma2.55', 'ConverseNet', None),
    'options/test/test_converse_usrnet_deblur.yml': ('deblurring_sigma2.55', 'Converse-USRNet', None),
}


def read_csv(path):
    with open(path, newline='', encoding='utf-8') as f:
        return {row['image']: {k: float(v) for k, v in row.items() if k != 'image'} for row in csv.DictReader(f)}


def references(tables, section, model, psnr_key, dataset):
    """(published mean, per-image reference PSNRs or None, reference mean or None) for one dataset entry."""
    part = tables[section]
    kernel = re.fullmatch(r'(.+)_kernel_(\d+)', dataset)
    if kernel:  # deblurring: published per kernel on BSD100/Urban100, references on CBSD68_4
        name, k = kernel.group(1), int(kernel.group(2))
        published = part['published'].get(name, {}).get(model, [None] * 5)[k - 1]
        ref = part['reference_per_image'].get(name, {}).get(model, {}).get('per_kernel', {}).get(f'kernel_{k}')
        return published, (ref or {}).get('per_image'), (ref or {}).get('mean')
    published = part['published'].get(model, {}).get(dataset)
    ref = part['reference_per_image'].get(model, {}).get(dataset)
    means = part.get('reference_mean') or part.get('reference_mean_basicsr_metric') or {}
    per_image = {img: values[psnr_key] for img, values in ref.items()} if ref else None
    return published, per_image, means.get(model, {}).get(dataset)


def table_rows(config, tables):
    section, model, psnr_key = CONFIGS[config]
    with open(osp.join(REPO, config), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    rows = []
    for entry in opt['datasets'].values():
        path = osp.join('results', opt['name'], f"per_image_{re.sub(r'[^A-Za-z0-9_.-]', '_', entry['name'])}.csv")
        if not osp.isfile(path):
            continue
        measured = read_csv(path)
        published, per_image, ref_mean = references(tables, section, model, psnr_key, entry['name'])
        psnr = sum(v['psnr'] for v in measured.values()) / len(measured)
        ssim = sum(v['ssim'] for v in measured.values()) / len(measured) if 'ssim' in next(iter(measured.values())) \
            else None
        worst = max(abs(measured[img]['psnr'] - value) for img, value in per_image.items()) \
            if per_image and set(per_image) <= set(measured) else None
        rows.append((model, entry['name'], len(measured), published, ref_mean, psnr, ssim, worst))
    return rows


def fmt(value, digits):
    return '—' if value is None else f'{value:.{digits}f}'


def markdown(rows):
    lines = ['| Model | Test set | Images | Published PSNR | Reference PSNR | Measured PSNR | Measured SSIM '
             '| Max per-image abs(Δ) vs reference |', '|---|---|---:|---:|---:|---:|---:|---:|']
    for model, dataset, count, published, ref_mean, psnr, ssim, worst in rows:
        lines.append(f'| {model} | {dataset} | {count} | {fmt(published, 2)} | {fmt(ref_mean, 4)} | {psnr:.4f} '
                     f'| {fmt(ssim, 4)} | {fmt(worst, 4)} |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*', default=list(CONFIGS), help='test configs (default: all four)')
    parser.add_argument('--no-run', action='store_true', help='only tabulate the CSVs already in results/')
    shared = os.environ.get('CONVERSE_SHARED', osp.join(REPO, '..', 'shared'))
    parser.add_argument('--tables', default=osp.join(shared, 'reference', 'paper_tables.json'),
                        help='paper_tables.json (default: $CONVERSE_SHARED or ../shared, reference/)')
    args = parser.parse_args()
    configs = [osp.relpath(osp.abspath(c), REPO) if osp.exists(c) else c for c in args.configs]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f'unknown config(s) {unknown}; known: {list(CONFIGS)}')
    with open(args.tables, encoding='utf-8') as f:
        tables = json.load(f)
    rows = []
    for config in configs:
        if not args.no_run:
            subprocess.run([sys.executable, '-m', 'converse_basicsr.test', '-opt', osp.join(REPO, config)], check=True)
        rows += table_rows(config, tables)
    print(markdown(rows))


if __name__ == '__main__':
    main()
