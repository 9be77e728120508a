"""converse-compare's runner: every model on every degraded input through the converse-restore run
(:func:`converse_basicsr.inference.run.run`), timed and measured, then the report.

Driven by one YAML (``-opt options/compare/*.yml``) or by flags::

    converse-compare --name dncnn --task denoise --sigma 25 --color gray --dataset Set12=../shared/testsets/Set12 \\
        --model input --model converse_dncnn --model-dir ../shared/reference/zoo --plot

YAML keys: ``name``; ``protocol`` (``task: denoise`` with ``sigma``, ``color``; ``task: sr`` with ``scale``;
``task: deblur`` with ``kernel_path`` (a .npy, a folder or a list) and ``sigma``); ``datasets`` (a mapping
name → folder or → BasicSR dataset keys such as ``dataroot_gt``, ``meta_info``, ``optional``); ``models``
(a list, see :func:`converse_basicsr.evaluation.model_entries.load_model`); ``device``, ``tile``, ``threads``,
``model_dir``, ``flops_size``, ``crop`` (the automatic crop's side), ``crops`` (chosen crops, ``IMAGE:X,Y,SIZE``),
``grid_tile``, ``save_outputs``, ``metrics`` (``--metric`` names), ``lpips_weights``, ``tex_columns``, ``plot``,
``warmup``, ``results_root``. Outputs in ``results/<name>/``: ``comparison.md``, ``comparison.csv``,
``comparison.tex``, ``report.html``, ``per_image.csv``, ``grids/<dataset>/<image>.png``, with ``plot``
``psnr_vs_time.png`` and with ``save_outputs`` ``outputs/<model>/<dataset>/<image>.png``.

A model that fails (an exception, wrong output shape, non-finite output, out of memory) gets its error in its
rows; the other models still run; the exit status is 1.
"""
import dataclasses
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from os import path as osp

import numpy as np
import torch
from tqdm import tqdm

from converse_basicsr.evaluation import compare_metrics, public_models
from converse_basicsr.evaluation.compare_inputs import CompareError, Sample, make_inputs, protocol_datasets
from converse_basicsr.evaluation.compare_options import check_compare_options, check_grid_names, datasets_from_flags
from converse_basicsr.evaluation.figures import crop_boxes, to_rgb_uint8
from converse_basicsr.evaluation.lpips import load_lpips
from converse_basicsr.evaluation.measurement import PeakMemory, count_flops
from converse_basicsr.evaluation.model_entries import DegradedInput, load_model, model_label
from converse_basicsr.evaluation.protocols import file_tag
from converse_basicsr.evaluation.report import write_outputs, write_png
from converse_basicsr.hub import zoo
from converse_basicsr.inference.description import ModelInfo, describe, takes_kernel
from converse_basicsr.inference.memory import MemoryPlanner
from converse_basicsr.inference.run import run
from converse_basicsr.inference.tiling import parse_tile
from converse_basicsr.utils.safe_yaml import load_yaml

__all__ = ['Comparison', 'CompareOptions', 'Sample', 'compare', 'prepare_model', 'run_model', 'run_from_args']


def prepare_model(module, sample, scale, device, tile, tile_pad=32):
    """(:class:`ModelInfo`, tile planner or None) of one model, built once before its timed runs. A model run
    in tiles is probed as converse-restore probes it (its minimum input, so a short last tile is merged into the
    one before it); ``tile='auto'`` gets converse-restore's planner for models with convolutions (the others
    run whole)."""
    name, kernel = type(module).__name__, takes_kernel(module)
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in module.modules())
    if tile is None or (tile == 'auto' and not has_conv):
        kernel_size = getattr(module, 'kernel_size', 7) if kernel else 0
        return ModelInfo(module, name, device, torch.float32, sample.lq.shape[1], kernel_size, scale,
                         periodic=bool(getattr(module, 'periodic_boundary', False))), None
    info = describe(module, name, device, channels=sample.lq.shape[1], scale=scale if kernel else None)
    return info, MemoryPlanner(info, tile_pad) if tile == 'auto' else None


def run_model(info, sample, tile, tile_pad=32, planner=None):
    """The model's output for one sample (float32 on the CPU), whole or in ``tile``×``tile`` tiles: the
    converse-restore run (:func:`converse_basicsr.inference.run.run`)."""
    kernel = None if sample.kernel is None else sample.kernel.to(info.device)
    return run(info, sample.lq.to(info.device), kernel, tile, tile_pad, planner, source=sample.image)


def check_output(out, sample):
    """The protocol's check on a run's output: the ground truth's shape (channels and scale). Finiteness is
    checked by :func:`converse_basicsr.inference.run.run`, which produced ``out``."""
    if tuple(out.shape) != tuple(sample.gt.shape):
        raise CompareError(f'output of shape {tuple(out.shape)} for input {tuple(sample.lq.shape)}; '
                           f'expected {tuple(sample.gt.shape)} (channels or scale do not match the protocol)')


def short_error(err):
    """An exception as one line of at most 300 characters (the row's ``error`` column)."""
    text = f'{type(err).__name__}: {err}'.replace('\n', ' ')
    return text if len(text) <= 300 else text[:297] + '...'


@dataclass
class Comparison:
    """What :func:`compare` returns: the table rows, the per-image rows, the files written, and the failures."""
    rows: list
    per_image: list
    files: dict
    failed: list = field(default_factory=list)


@dataclass
class CompareOptions:
    """How a comparison runs and where it writes (the YAML keys besides ``protocol``, ``datasets``, ``models``)."""
    name: str = 'compare'
    results_root: str = 'results'
    device: str = 'cpu'
    tile: object = None  # None (whole images), a side in input pixels, or 'auto'
    threads: int = None
    model_dir: str = None
    flops_size: int = 256
    crop: int = 48  # side of the automatic crop box
    crops: tuple = ()  # chosen crop boxes, 'IMAGE:X,Y,SIZE' or {image, x, y, size}
    grid_tile: int = 128
    save_outputs: bool = False
    metrics: tuple = None  # --metric names; None: the protocol's (or protocol.metrics)
    lpips_weights: str = None
    tex_columns: tuple = ('params', 'flops')
    warmup: int = 1
    plot: bool = False
    progress: bool = True


@dataclass
class _Inputs:
    """The degraded inputs of one comparison, their crop boxes, and the panels (ground truth, degraded input,
    each model: label, image, per-image values) collected per image."""
    samples: list
    metrics: dict
    gts: list
    boxes: list
    panels: list
    lpips: object = None


def compare(models, datasets, protocol, options=None, **keywords):
    """Compare ``models`` on ``datasets`` under ``protocol``; write ``results_root/name/``; return a
    :class:`Comparison`. The options are a :class:`CompareOptions` and/or its fields as keywords
    (``name=``, ``results_root=``, ``device=``, ``tile=``, ...), as the YAML keys in the module docstring;
    ``models`` entries as :func:`converse_basicsr.evaluation.model_entries.load_model` accepts."""
    opts = dataclasses.replace(options or CompareOptions(), **keywords)
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    device = torch.device(opts.device)
    task, scale, dataset_opts, metrics = protocol_datasets(protocol, datasets)
    metrics = _chosen_metrics(metrics, protocol, opts)  # an unknown metric or LPIPS without weights: stop here
    lpips = load_lpips(opts.lpips_weights) if any(m['type'] in compare_metrics.OWN_TYPES
                                                  for m in metrics.values()) else None
    samples = make_inputs(dataset_opts)
    public_models.check_paths(models, scale, samples[0].lq.shape[1])  # exit 2 before any row
    check_grid_names([(s.dataset, s.image) for s in samples])  # two images, one grid name: stop, naming both
    inputs = _degraded_inputs(samples, metrics, scale, opts, lpips)  # a chosen crop off its image: stop here
    out_dir = osp.join(opts.results_root, file_tag(opts.name))
    os.makedirs(out_dir, exist_ok=True)  # nothing is created before this line
    rows, per_image, failed, folders = [], [], [], set()
    bar = tqdm(total=len(models) * len(samples), desc='models x images', disable=not opts.progress, unit='img')
    for index, entry in enumerate(models):
        result, outputs, is_input = _run_entry(entry, index, inputs, task, scale, device, opts, bar)
        if result['error']:
            failed.append(result['model'])
        elif opts.save_outputs:
            _save_outputs(out_dir, result['model'], outputs, samples, folders)
        model_rows = _image_rows(result, outputs, inputs, is_input)
        per_image += model_rows
        rows += _dataset_rows(result, model_rows, samples, metrics)
    bar.close()
    setup = dict(task=task, protocol=protocol, device=str(device), threads=torch.get_num_threads(),
                 flops_size=opts.flops_size, tile=opts.tile, warmup=opts.warmup, plot=opts.plot,
                 grid_tile=opts.grid_tile, tex_columns=opts.tex_columns)
    images = list(zip(samples, inputs.gts, inputs.boxes, inputs.panels))
    files = write_outputs(out_dir, rows, per_image, metrics, images, setup)
    return Comparison(rows, per_image, files, failed)


def _chosen_metrics(metrics, protocol, opts):
    """The protocol's metrics, or those of ``--metric`` names (at the protocol's crop); checked."""
    if opts.metrics:
        if (protocol or {}).get('metrics'):
            raise CompareError('give the metrics once: --metric / metrics: or protocol.metrics, not both')
        metrics = compare_metrics.metric_options(opts.metrics, next(iter(metrics.values()))['crop_border'])
    compare_metrics.check_metric_options(metrics, opts.lpips_weights)
    return metrics


def _save_outputs(out_dir, label, outputs, samples, folders):
    """Each output of one model as a lossless PNG under ``outputs/<model>/<dataset>/`` (as measured: uint8)."""
    folder = file_tag(label)
    folder = next(f'{folder}_{n}' for n in range(1, len(folders) + 2) if f'{folder}_{n}' not in folders) \
        if folder in folders else folder  # two models whose labels give one folder name
    folders.add(folder)
    for i, out in outputs.items():
        sample = samples[i]
        image = to_rgb_uint8(out) if out.shape[1] == 3 else to_rgb_uint8(out)[..., 0]
        write_png(
            osp.join(out_dir, 'outputs', folder, file_tag(sample.dataset),
                     osp.splitext(sample.image)[0] + '.png'), image)


def _degraded_inputs(samples, metrics, scale, opts, lpips):
    """The ground truths as uint8, their crop boxes, and each image's first panels: the ground truth and the
    degraded input."""
    gts = [to_rgb_uint8(s.gt) for s in samples]
    boxes = crop_boxes(samples, gts, opts.crops, opts.crop)  # (top, left, side) in ground-truth pixels
    degraded = [DegradedInput(scale)(s.lq) for s in samples]
    panels = [[
        dict(label='ground truth', image=gt, values={}),
        dict(label='degraded input', image=to_rgb_uint8(lq),
             values=compare_metrics.measure_all(lq, s.gt, metrics, lpips))
    ] for gt, lq, s in zip(gts, degraded, samples)]
    return _Inputs(samples, metrics, gts, boxes, panels, lpips)


def _run_entry(entry, index, inputs, task, scale, device, opts, bar):
    """One model on every sample: (its table fields, {sample index: output}, whether it is the input row). A
    failure is caught and written into ``result['error']``."""
    samples = inputs.samples
    result = {
        'entry': index, 'model': model_label(entry, index), 'source': '', 'params': '', 'gflops_counted': '',
        'gflops_fft': '', 'gflops_total': '', 'seconds_per_image': '', 'peak_memory_mib': '', 'error': ''
    }
    bar.set_postfix_str(' '.join(result['model'].split()))
    outputs, is_input = {}, False
    try:
        spec = load_model(entry, task, scale, opts.model_dir)
        result['model'], result['source'] = spec.name, spec.source
        module = spec.module.to(device).eval()
        is_input = isinstance(module, DegradedInput)
        result['params'] = sum(p.numel() for p in module.parameters())
        info, planner = prepare_model(module, samples[0], scale, device, opts.tile)
        times = []
        for i, sample in enumerate(samples):
            with PeakMemory(device if i == 0 else 'meta') as memory:  # measured on the first image only
                for _ in range(opts.warmup if i == 0 else 0):
                    run_model(info, sample, opts.tile, planner=planner)
                start = time.perf_counter()
                out = run_model(info, sample, opts.tile, planner=planner)
                times.append(time.perf_counter() - start)
            if i == 0:
                result['peak_memory_mib'] = '' if memory.peak is None else memory.peak / 2**20
            check_output(out, sample)
            outputs[i] = out
            bar.update(1)
        result['seconds_per_image'] = statistics.median(times)
        kernel = samples[0].kernel.to(device) if samples[0].kernel is not None else None
        counted, fft = count_flops(info, samples[0].lq.shape[1], opts.flops_size, scale, kernel)
        result.update(gflops_counted=counted / 1e9, gflops_fft=fft / 1e9, gflops_total=(counted + fft) / 1e9)
    except (Exception, torch.cuda.OutOfMemoryError) as err:  # a failing model is reported, not fatal
        result['error'] = short_error(err)
        bar.update(len(samples) - len(outputs))
    finally:
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return result, outputs, is_input


def _image_rows(result, outputs, inputs, is_input):
    """One entry's per-image rows (two entries may share a label); adds its crops to the grids."""
    rows, label, metrics = [], result['model'], inputs.metrics
    for i, sample in enumerate(inputs.samples):
        values = compare_metrics.measure_all(outputs[i], sample.gt, metrics, inputs.lpips) \
            if i in outputs and not result['error'] else {}
        rows.append(
            dict(dataset=sample.dataset, image=sample.image, model=label, input_sha256=sample.sha256,
                 **{k: values.get(k, '')
                    for k in metrics}, crop_box='{1},{0},{2}'.format(*inputs.boxes[i]), error=result['error']))
        if values and not is_input:
            inputs.panels[i].append(dict(label=label, image=to_rgb_uint8(outputs[i]), values=values))
    return rows


def _dataset_rows(result, model_rows, samples, metrics):
    """One entry's table rows: the metric means per dataset, and the entry's fields."""
    rows = []
    for dataset in dict.fromkeys(s.dataset for s in samples):
        measured = [r for r in model_rows if r['dataset'] == dataset]
        means = {k: _mean([r[k] for r in measured]) if not result['error'] else '' for k in metrics}
        rows.append(dict(dataset=dataset, images=len(measured), **means, **result))
    return rows


def _mean(values):
    """The mean of the defined values (NIQE is undefined on small images), or '' when none is."""
    values = [v for v in values if v != '']
    return float(np.mean(values)) if values else ''


def options_from_args(args, loaded=None):
    """The comparison options from the command line (``args``: the parsed ``converse-compare`` flags) over the
    YAML given with ``-opt`` (``loaded``: its content where the caller has read it already)."""
    opt = {}
    if args.opt:
        opt = (load_yaml(args.opt) if loaded is None else loaded) or {}
    if args.task:
        opt['protocol'] = {'task': args.task}
    protocol = opt.setdefault('protocol', {})
    for key in ('sigma', 'color', 'scale'):
        if getattr(args, key) is not None:
            protocol[key] = getattr(args, key)
    if args.kernel_path:
        protocol['kernel_path'] = args.kernel_path
    opt['datasets'] = datasets_from_flags(args.dataset, opt.get('datasets'))  # a repeated NAME is an error
    if args.model:
        opt['models'] = list(args.model)
    for key in ('name', 'model_dir', 'device', 'tile', 'threads', 'flops_size', 'grid_tile', 'lpips_weights',
                'results_root', 'tex_columns'):
        if getattr(args, key, None) is not None:
            opt[key] = getattr(args, key)
    for key, flag in (('crops', 'crop'), ('metrics', 'metric')):
        if getattr(args, flag, None):
            opt[key] = list(getattr(args, flag))
    for key in ('plot', 'save_outputs'):
        opt[key] = bool(getattr(args, key, False) or opt.get(key))
    opt['tile'] = parse_tile(opt.get('tile'))
    return check_compare_options(opt, args.opt)  # before anything runs or is written


def run_from_args(args, loaded=None):
    """``converse-compare`` after argparse: 0 when every model ran, 1 when one failed, 2 bad options
    (``loaded``: the ``-opt`` YAML's content where the caller has read it already)."""
    try:
        opt = options_from_args(args, loaded)
        fields = {f.name for f in dataclasses.fields(CompareOptions)}
        options = CompareOptions(**{k: v for k, v in opt.items() if k in fields and k != 'progress'})
        result = compare(opt['models'], opt.get('datasets'), opt.get('protocol'), options)
    except (CompareError, zoo.ZooError, FileNotFoundError, KeyError, ValueError) as err:  # OptionError too
        print(f'converse-compare: error: {err}', file=sys.stderr)
        return 2
    with open(result.files['comparison.md'], encoding='utf-8') as f:
        print(f.read())
    print(f"Results: {osp.dirname(result.files['comparison.md'])}")
    if result.failed:
        print(f"converse-compare: {len(result.failed)} model(s) failed: {', '.join(result.failed)}", file=sys.stderr)
        return 1
    return 0
