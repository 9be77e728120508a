"""converse-compare's report: the markdown table and its notes, the CSV files, one crop grid per image (the
ground truth with the crop box, then each model's crop zoomed) and the PSNR-vs-time plot."""
import os
import platform
from os import path as osp

import cv2
import numpy as np
import torch

from converse_basicsr.data.io import quantise, write_atomic, write_image, write_text_atomic
from converse_basicsr.evaluation.compare_inputs import describe_metrics
from converse_basicsr.evaluation.measurement import FLOPS_NOTE
from converse_basicsr.evaluation.protocols import atomic_write_csv, file_tag

GRID_TILE = 128  # side of a zoomed crop in the crop grid, pixels
GRID_LABEL = 34  # height of the text band under each tile
GRID_GAP = 4


def to_rgb_uint8(tensor):
    """(1, C, H, W) float RGB/gray → HWC uint8 RGB (quantised as BasicSR does)."""
    img = quantise(tensor[0].numpy().transpose(1, 2, 0), np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def choose_crop(gt, size):
    """(top, left, side) of the ``size`` square of ``gt`` (HWC uint8) with the most gradient energy."""
    h, w = gt.shape[:2]
    side = max(1, min(size, h, w))
    gray = cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    window = cv2.boxFilter(energy, -1, (side, side), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = window[:h - side + 1, :w - side + 1]
    top, left = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(top), int(left), side


def labelled(tile, lines):
    band = np.full((GRID_LABEL, tile.shape[1], 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(band, text[:22], (3, 13 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([tile, band], axis=0)


def crop_grid(gt, tiles, box):
    """One row: the full ground truth with the crop box drawn, then each image's crop zoomed (nearest) to
    ``GRID_TILE``, each with its label lines under it. ``tiles``: [(label lines, HWC uint8 RGB image)]."""
    top, left, side = box
    zoom = GRID_TILE / gt.shape[0]
    full = cv2.resize(gt, (max(1, round(gt.shape[1] * zoom)), GRID_TILE), interpolation=cv2.INTER_AREA)
    corner = (round(left * zoom), round(top * zoom))
    cv2.rectangle(full, corner, (round((left + side) * zoom) - 1, round((top + side) * zoom) - 1), (255, 0, 0), 1)
    panels = [labelled(full, ['ground truth', f'box {side}px at ({left},{top})'])]
    for lines, image in tiles:
        crop = image[top:top + side, left:left + side]
        panels.append(labelled(cv2.resize(crop, (GRID_TILE, GRID_TILE), interpolation=cv2.INTER_NEAREST), lines))
    gap = np.full((GRID_TILE + GRID_LABEL, GRID_GAP, 3), 255, np.uint8)
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    return np.concatenate(row, axis=1)


def write_png(path, rgb):
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_image(path, rgb)


def write_outputs(out_dir, rows, per_image, metrics, samples, gts, boxes, tiles, setup, plot):
    files = {
        'comparison.csv': osp.join(out_dir, 'comparison.csv'), 'per_image.csv': osp.join(out_dir, 'per_image.csv'),
        'comparison.md': osp.join(out_dir, 'comparison.md'), 'grids': []
    }
    metric_note = describe_metrics(metrics)
    for row in rows:
        row.update(metric=metric_note, flops_size=f"{setup['flops_size']}x{setup['flops_size']}",
                   device=setup['device'], threads=setup['threads'])
    atomic_write_csv(files['comparison.csv'], rows, [
        'dataset', 'model', 'images', *metrics, 'metric', 'params', 'gflops_counted', 'gflops_fft', 'gflops_total',
        'flops_size', 'seconds_per_image', 'peak_memory_mib', 'device', 'threads', 'source', 'error'
    ])
    atomic_write_csv(files['per_image.csv'], per_image,
                     ['dataset', 'image', 'model', 'input_sha256', *metrics, 'crop_box', 'error'])
    for i, sample in enumerate(samples):
        path = osp.join(out_dir, 'grids', file_tag(sample.dataset), f'{osp.splitext(sample.image)[0]}.png')
        write_png(path, crop_grid(gts[i], [(['ground truth', ''], gts[i])] + tiles[i], boxes[i]))
        files['grids'].append(path)
    if plot:
        files['plot'] = plot_psnr_time(osp.join(out_dir, 'psnr_vs_time.png'), rows, setup)
    text = markdown(rows, metrics, setup)
    write_text_atomic(files['comparison.md'], text)
    return files


def fmt(value, spec):
    return '—' if value in ('', None) else format(value, spec)


def markdown(rows, metrics, setup):
    """The comparison table (one line per dataset and model) and how it was measured."""
    names = list(metrics)
    head = [
        'Dataset', 'Model', 'Images', *[n.upper() for n in names], 'Params', 'GFLOPs (counted + FFT)', 's / image',
        'Peak MiB', 'Error'
    ]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * 2 + '---:|' * (len(head) - 3) + '---|']
    for r in rows:
        flops = '—' if r['gflops_counted'] == '' else f"{r['gflops_total']:.2f} ({r['gflops_counted']:.2f} + " \
                                                      f"{r['gflops_fft']:.2f})"
        values = [fmt(r[n], '.4f') for n in names]
        lines.append(f"| {r['dataset']} | {r['model']} | {r['images']} | {' | '.join(values)} | "
                     f"{fmt(r['params'], ',')} | {flops} | {fmt(r['seconds_per_image'], '.3f')} | "
                     f"{fmt(r['peak_memory_mib'], '.0f')} | {r['error'] or ''} |")
    protocol = ', '.join(f'{k}={v}' for k, v in (setup['protocol'] or {}).items())
    notes = [
        '', f"Protocol: {protocol}. Metrics: BasicSR calculate_psnr / calculate_ssim on uint8, "
        f"{describe_metrics(metrics)}.",
        f"Compute at a {setup['flops_size']}×{setup['flops_size']} output. {FLOPS_NOTE}",
        f"Time: median seconds per image after {setup['warmup']} warm-up pass(es) on the first image, "
        f"device {setup['device']}, "
        f"{setup['threads']} threads, tile {setup['tile']}; torch {torch.__version__}, {platform.machine()}.",
        'Peak memory: CUDA allocator peak on a GPU; on the CPU the resident-set growth during the warm-up '
        'and first timed pass on the first image (sampled every ms, after malloc_trim).',
        'Sources: ' + '; '.join(f"{r['model']}: {r['source']}"
                                for r in {r['model']: r
                                          for r in rows}.values() if r['source']) + '.', ''
    ]
    return '\n'.join(lines + notes)


def plot_psnr_time(path, rows, setup):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    datasets = list(dict.fromkeys(r['dataset'] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for r in rows:
            if r['dataset'] == dataset and not r['error'] and r.get('psnr') != '':
                ax.scatter(r['seconds_per_image'], r['psnr'])
                ax.annotate(r['model'], (r['seconds_per_image'], r['psnr']), fontsize=8, xytext=(3, 3),
                            textcoords='offset points')
        ax.set_xscale('symlog', linthresh=1e-3)
        ax.set(title=dataset, xlabel=f"seconds per image ({setup['device']}, {setup['threads']} threads)",
               ylabel='PSNR (dB)')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda temp: fig.savefig(temp, dpi=100))
    plt.close(fig)
    return path
