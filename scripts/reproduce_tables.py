"""Run the paper's test configs and print a markdown table: published vs measured, per dataset and kernel.

    python scripts/reproduce_tables.py                  # run every config in options/test, then tabulate
    python scripts/reproduce_tables.py --no-run         # tabulate the CSVs already under results/
    python scripts/reproduce_tables.py options/test/test_converse_srresnet_x4.yml my_test.yml

Any BasicSR test config is tabulated from its per-image CSVs; the paper's numbers are attached to the rows of
the published archs under the paper's protocols (``PAPER_MODELS``), "—" elsewhere.

Each config runs as ``python -m converse_basicsr.test -opt FILE`` (datasets that are not present are
skipped by the entry point); the measured numbers come from its per-image CSVs in ``results/<name>/``.
"Published" is the paper's table (on BSD100 for deblurring); "reference" is the published code on the
same test images measured with BasicSR's metrics (``paper_tables.json``), where it exists.
"""
import argparse
import csv
import glob
import json
import os
import re
import subprocess
import sys
from os import path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
from converse_basicsr.evaluation.protocols import per_image_csv_name  # noqa: E402
from converse_basicsr.utils.safe_yaml import load_yaml  # noqa: E402

DEFAULT_CONFIGS = sorted(glob.glob(osp.join(REPO, 'options', 'test', '*.yml')))
# The paper's models: network_g.type → (section of paper_tables.json, model name there, keys of its per-image
# PSNR and SSIM references, the dataset options the paper's protocol fixes). A config gets the paper's
# references only when its arch is the published one (operator: converse) and its datasets follow the protocol.
PAPER_MODELS = {
    'ConverseDnCNN': ('denoising_sigma25_gray', 'Converse-DnCNN', 'psnr', 'ssim', {'sigma': 25, 'color': 'gray'}),
    'ConverseMSRResNet': ('sr_x4_y_channel', 'Converse-SRResNet', 'psnr_y', 'ssim_y', {'scale': 4}),
    'ConverseNet': ('deblurring_sigma2.55', 'ConverseNet', 'psnr', None, {'sigma': 2.55}),
    'ConverseUSRNet': ('deblurring_sigma2.55', 'Converse-USRNet', 'psnr', None, {'sigma': 2.55}),
}


def read_csv(path):
    with open(path, newline='', encoding='utf-8') as f:
        return {row['image']: {k: float(v) for k, v in row.items() if k != 'image'} for row in csv.DictReader(f)}


def paper_model(opt, entry):
    """The PAPER_MODELS entry that applies to this config and dataset entry, or None."""
    network = opt.get('network_g', {})
    known = PAPER_MODELS.get(network.get('type'))
    if known is None or network.get('operator', 'converse') != 'converse':
        return None
    protocol = dict(known[4])
    if 'scale' in protocol and opt.get('scale', entry.get('scale')) != protocol['scale']:
        return None
    protocol.pop('scale', None)
    defaults = {'sigma': 2.55} if entry.get('type') == 'BlurKernelDataset' else {}
    return known if all(entry.get(k, defaults.get(k)) == v for k, v in protocol.items()) else None


def references(tables, known, dataset):
    """(published mean, per-image references {image: {'psnr', 'ssim'?}} or None, reference mean or None)."""
    section, model, psnr_key, ssim_key, _ = known
    part = tables[section]
    kernel = re.fullmatch(r'(.+)_kernel_(\d+)', dataset)
    if kernel:  # deblurring: published per kernel on BSD100/Urban100, references on CBSD68_4
        name, k = kernel.group(1), int(kernel.group(2))
        published = (part['published'].get(name, {}).get(model) or [None] * 5)[k - 1]
        ref = part['reference_per_image'].get(name, {}).get(model, {}).get('per_kernel', {}).get(f'kernel_{k}')
        per_image = {img: {'psnr': v} for img, v in (ref or {}).get('per_image', {}).items()} or None
        return published, per_image, (ref or {}).get('mean')
    published = part['published'].get(model, {}).get(dataset)
    ref = part['reference_per_image'].get(model, {}).get(dataset)
    means = part.get('reference_mean') or part.get('reference_mean_basicsr_metric') or {}
    per_image = {
        img: {'psnr': v[psnr_key], **({'ssim': v[ssim_key]} if ssim_key in v else {})}
        for img, v in ref.items()
    } if ref else None
    return published, per_image, means.get(model, {}).get(dataset)


def max_abs_difference(measured, per_image, key):
    """Largest abs difference in ``key`` over the measured images that have a reference, else None."""
    common = [img for img in measured if img in (per_image or {}) and key in per_image[img]]
    return max(abs(measured[img][key] - per_image[img][key]) for img in common) if common else None


def table_rows(config, tables):
    """One row per dataset entry of ``config`` whose per-image CSV is under results/<name>/."""
    opt = load_yaml(config)
    rows = []
    for entry in opt.get('datasets', {}).values():
        path = osp.join('results', opt['name'], per_image_csv_name(entry['name']))
        if not osp.isfile(path):
            continue
        measured = read_csv(path)
        if not measured:
            continue
        known = paper_model(opt, entry)
        published, per_image, ref_mean = references(tables, known, entry['name']) if known else (None, None, None)
        first = next(iter(measured.values()))
        psnr = sum(v['psnr'] for v in measured.values()) / len(measured) if 'psnr' in first else None
        ssim = sum(v['ssim'] for v in measured.values()) / len(measured) if 'ssim' in first else None
        rows.append((known[1] if known else opt['name'], entry['name'], len(measured), published, ref_mean, psnr, ssim,
                     max_abs_difference(measured, per_image, 'psnr'), max_abs_difference(measured, per_image, 'ssim')))
    return rows


def fmt(value, digits):
    return '—' if value is None else f'{value:.{digits}f}'


def markdown(rows):
    lines = [
        '| Model | Test set | Images | Published PSNR | Reference PSNR | Measured PSNR | Measured SSIM '
        '| Max per-image abs(Δ) vs reference: PSNR | SSIM |', '|---|---|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for model, dataset, count, published, ref_mean, psnr, ssim, worst_psnr, worst_ssim in rows:
        lines.append(f'| {model} | {dataset} | {count} | {fmt(published, 2)} | {fmt(ref_mean, 4)} | {fmt(psnr, 4)} '
                     f'| {fmt(ssim, 4)} | {fmt(worst_psnr, 4)} | {fmt(worst_ssim, 4)} |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*', default=DEFAULT_CONFIGS,
                        help='test configs, any BasicSR test YAML (default: every options/test/*.yml)')
    parser.add_argument('--no-run', action='store_true', help='only tabulate the CSVs already in results/')
    shared = os.environ.get('CONVERSE_SHARED', osp.join(REPO, '..', 'shared'))
    parser.add_argument('--tables', default=osp.join(shared, 'reference', 'paper_tables.json'),
                        help='paper_tables.json (default: $CONVERSE_SHARED or ../shared, reference/)')
    args = parser.parse_args()
    configs = [c if osp.isfile(c) else osp.join(REPO, c) for c in args.configs]
    missing = [c for c in configs if not osp.isfile(c)]
    if missing:
        parser.error(f'config file(s) not found: {missing}')
    with open(args.tables, encoding='utf-8') as f:
        tables = json.load(f)
    rows = []
    for config in configs:
        if not args.no_run:
            subprocess.run([sys.executable, '-m', 'converse_basicsr.test', '-opt', config], check=True)
        rows += table_rows(config, tables)
    print(markdown(rows))


if __name__ == '__main__':
    main()
