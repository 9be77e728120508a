"""converse-compare's report: the markdown table and its notes, the CSV files, the LaTeX table
(:mod:`.latex`), the HTML report (:mod:`.html_report`), one crop grid per image and the plot (:mod:`.figures`).
Every output names a model by its label in full, escaped for its format."""
import os
import platform
from os import path as osp

import torch

from converse_basicsr.data.io import write_image, write_text_atomic
from converse_basicsr.evaluation import compare_metrics, figures
from converse_basicsr.evaluation.html_report import html_report
from converse_basicsr.evaluation.latex import describe_rounding, latex_table
from converse_basicsr.evaluation.measurement import FLOPS_NOTE
from converse_basicsr.evaluation.protocols import atomic_write_csv, file_tag


def write_png(path, rgb):
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_image(path, rgb)


def write_outputs(out_dir, rows, per_image, metrics, images, setup):
    """Every output file of a comparison in ``out_dir``; returns ``{name: path}`` (``grids``: a list).
    ``images``: per image (sample, ground truth, crop box, panels) as :func:`.html_report.html_report` takes
    them; ``setup``: how it ran (``protocol``, ``device``, ``threads``, ``flops_size``, ``warmup``, ``tile``,
    ``plot``, ``grid_tile``, ``tex_columns``)."""
    files = {
        name: osp.join(out_dir, name)
        for name in ('comparison.csv', 'per_image.csv', 'comparison.md', 'comparison.tex', 'report.html')
    }
    files['grids'] = []
    metric_note = compare_metrics.describe(metrics)
    for row in rows:
        row.update(metric=metric_note, flops_size=f"{setup['flops_size']}x{setup['flops_size']}",
                   device=setup['device'], threads=setup['threads'])
    atomic_write_csv(files['comparison.csv'], rows, [
        'dataset', 'model', 'images', *metrics, 'metric', 'params', 'gflops_counted', 'gflops_fft', 'gflops_total',
        'flops_size', 'seconds_per_image', 'peak_memory_mib', 'device', 'threads', 'source', 'error'
    ])
    atomic_write_csv(files['per_image.csv'], per_image,
                     ['dataset', 'image', 'model', 'input_sha256', *metrics, 'crop_box', 'error'])
    tile = setup.get('grid_tile', figures.GRID_TILE)
    first = next(iter(metrics))
    for sample, gt, box, panels in images:
        path = osp.join(out_dir, 'grids', file_tag(sample.dataset), f'{osp.splitext(sample.image)[0]}.png')
        lines = [([p['label'], _score(first, metrics[first], p['values'])], p['image']) for p in panels]
        write_png(path, figures.crop_grid(gt, lines, box, tile))
        files['grids'].append(path)
    plot_metric = next((n for n in metrics if not compare_metrics.lower_is_better(n, metrics[n])), first)
    if setup.get('plot'):
        files['plot'] = figures.plot_psnr_time(osp.join(out_dir, 'psnr_vs_time.png'), rows, setup, plot_metric)
    notes = protocol_notes(rows, metrics, setup)
    write_text_atomic(files['comparison.md'], markdown(rows, metrics, notes))
    tex_notes = notes[:1] + [describe_rounding(metrics)] + notes[1:]
    write_text_atomic(files['comparison.tex'],
                      latex_table(rows, metrics, tex_notes, setup.get('tex_columns', ('params', 'flops'))))
    plot_png = figures.figure_png(figures.psnr_time_figure(rows, setup, plot_metric))
    write_text_atomic(files['report.html'], html_report(rows, metrics, notes, images, plot_png, tile))
    return files


def _score(name, option, values):
    value = values.get(name, '')
    return '' if value == '' else f"{compare_metrics.title(name, option)} " \
                                  f"{value:.{compare_metrics.decimals(name, option)}f}"


def fmt(value, spec):
    return '—' if value in ('', None) else format(value, spec)


def md_cell(value):
    """A markdown table cell: ``|`` escaped and line breaks as ``<br>``, so a label never breaks its row."""
    return str(value).replace('\\', '\\\\').replace('|', '\\|').replace('\r\n', '\n').replace('\r', '\n') \
        .replace('\n', '<br>')


def markdown(rows, metrics, notes):
    """The comparison table (one line per dataset and model) and how it was measured."""
    names = list(metrics)
    head = [
        'Dataset', 'Model', 'Images', *[compare_metrics.title(n, metrics[n]) for n in names], 'Params',
        'GFLOPs (counted + FFT)', 's / image', 'Peak MiB', 'Error'
    ]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * 2 + '---:|' * (len(head) - 3) + '---|']
    for r in rows:
        flops = '—' if r['gflops_counted'] == '' else f"{r['gflops_total']:.2f} ({r['gflops_counted']:.2f} + " \
                                                      f"{r['gflops_fft']:.2f})"
        values = [fmt(r[n], '.4f') for n in names]
        lines.append(f"| {md_cell(r['dataset'])} | {md_cell(r['model'])} | {r['images']} | {' | '.join(values)} | "
                     f"{fmt(r['params'], ',')} | {flops} | {fmt(r['seconds_per_image'], '.3f')} | "
                     f"{fmt(r['peak_memory_mib'], '.0f')} | {md_cell(r['error'] or '')} |")
    return '\n'.join(lines + [''] + notes + [''])


def describe_protocol(protocol):
    """The protocol as text, e.g. ``task sr, scale 4`` (lists joined, mappings as ``key value``)."""

    def plain(value):
        if isinstance(value, dict):
            return ', '.join(f'{k} {plain(v)}' for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return ', '.join(plain(v) for v in value)
        return str(value)

    return ', '.join(f'{k} {plain(v)}' for k, v in (protocol or {}).items() if k != 'metrics')


def protocol_notes(rows, metrics, setup):
    """The lines under every table: protocol, metrics, compute, time, memory, sources (plain text)."""
    sources = {r.get('entry', r['model']): r for r in rows if r['source']}.values()
    return [
        f"Protocol: {describe_protocol(setup['protocol'])}. Metrics on uint8 images: "
        f"{compare_metrics.describe(metrics)}.",
        f"Compute at a {setup['flops_size']}×{setup['flops_size']} output. {FLOPS_NOTE}",
        f"Time: median seconds per image after {setup['warmup']} warm-up pass(es) on the first image, "
        f"device {setup['device']}, "
        f"{setup['threads']} threads, tile {setup['tile'] or 'none (whole images)'}; torch {torch.__version__}, "
        f"{platform.machine()}.",
        'Peak memory: CUDA allocator peak on a GPU; on the CPU the resident-set growth during the warm-up '
        'and first timed pass on the first image (sampled every ms, after malloc_trim).',
        'Sources: ' + '; '.join(f"{' '.join(r['model'].split())}: {r['source']}" for r in sources) + '.'
    ]
