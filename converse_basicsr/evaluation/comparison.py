"""``converse-compare`` / ``python -m converse_basicsr.evaluation.comparison``: several models, one protocol, one table.

Every model sees the same degraded inputs: they are made once per dataset by the package's own datasets
(``GaussianNoiseDataset``, ``BicubicDownsampleDataset``, ``BlurKernelDataset``) under one of the paper's
protocols, and the sha256 of each input is written next to every row that used it. Metrics are BasicSR's
``calculate_psnr``/``calculate_ssim`` on uint8 images with the protocol's crop and channel
(:mod:`converse_basicsr.evaluation.protocols`), so a Converse row equals ``converse-test`` on the same config.

Driven by one YAML (``-opt options/compare/*.yml``) or by flags::

    converse-compare --name dncnn --task denoise --sigma 25 --color gray --dataset Set12=../shared/testsets/Set12 \\
        --model input --model converse_dncnn --model-dir ../shared/reference/zoo --plot

YAML keys: ``name``; ``protocol`` (``task: denoise`` with ``sigma``, ``color``; ``task: sr`` with ``scale``;
``task: deblur`` with ``kernel_path`` (a .npy, a folder or a list) and ``sigma``); ``datasets`` (a mapping
name → folder or → BasicSR dataset keys such as ``dataroot_gt``, ``meta_info``, ``optional``); ``models``
(a list, see :func:`load_model`); ``device``, ``tile``, ``threads``, ``model_dir``, ``flops_size``, ``crop``,
``plot``, ``warmup``. Outputs in ``results/<name>/``: ``comparison.md``, ``comparison.csv``,
``per_image.csv``, ``grids/<dataset>/<image>.png`` and, with ``plot``, ``psnr_vs_time.png``.

A model that fails (an exception, wrong output shape, non-finite output, out of memory) gets its error in its
rows; the other models still run; the exit status is 1.
"""
import argparse
import functools
import hashlib
import importlib
import inspect
import math
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from os import path as osp

import cv2
import numpy as np
import torch
import yaml
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

import converse_basicsr  # noqa: F401  (registries)
from basicsr.data import build_dataset
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.options import ordered_yaml
from converse_basicsr.data.io import quantise, write_atomic, write_image, write_text_atomic
from converse_basicsr.evaluation.protocols import atomic_write_csv, drop_absent_optional_datasets, file_tag, measure
from converse_basicsr.hub import zoo
from converse_basicsr.inference.restorer import Restorer, tiled_forward
from converse_basicsr.ops import Converse2D
from converse_basicsr.utils.runtime import retain_freed_memory

TRIVIAL = ('input', 'bicubic')
GRID_TILE = 128  # side of a zoomed crop in the crop grid, pixels
GRID_LABEL = 34  # height of the text band under each tile
GRID_GAP = 4
FLOPS_NOTE = ('FLOPs: torch.utils.flop_counter.FlopCounterMode on one forward pass at the stated output size '
              '(a multiply-add counts 2). The counter does not see FFTs (torch.fft or scipy pocketfft): for each '
              'Converse2D, `GFLOPs FFT` adds an analytic count of one forward real 2-D FFT of the padded input '
              '(h×w) and one inverse real 2-D FFT of the output (hs×ws) per channel, 2.5·N·log2(N) each '
              '(N points); its kernel spectra are matrix products, which the counter includes.')


class CompareError(ValueError):
    """A comparison option (protocol, dataset or model entry) that cannot be used."""


# ---------------------------------------------------------------------------------------------- protocols
def protocol_datasets(protocol, datasets):
    """BasicSR dataset options for every entry of ``datasets`` under ``protocol``, and the metric options.

    ``protocol``: ``{task: denoise, sigma, color}``, ``{task: sr, scale}`` or ``{task: deblur, kernel_path,
    sigma}``; optional ``metrics`` (BasicSR metric options) replace the protocol's own.
    """
    protocol = dict(protocol or {})
    task = protocol.pop('task', None)
    user_metrics = protocol.pop('metrics', None)
    if task == 'denoise':
        base = dict(type='GaussianNoiseDataset', color=protocol.pop('color', 'gray'), sigma=protocol.pop('sigma', 25),
                    noise_seed=protocol.pop('noise_seed', 0))
        crop, y_channel, scale = 0, False, 1
    elif task == 'sr':
        scale = protocol.pop('scale', 4)
        base = dict(type='BicubicDownsampleDataset', scale=scale)
        crop, y_channel = scale, True
    elif task == 'deblur':
        if 'kernel_path' not in protocol:
            raise CompareError('protocol deblur needs kernel_path (a .npy kernel, a folder of them, or a list)')
        base = dict(type='BlurKernelDataset', kernel_path=protocol.pop('kernel_path'),
                    sigma=protocol.pop('sigma', 2.55), noise_seed=protocol.pop('noise_seed', 0))
        crop, y_channel, scale = 1, False, 1
    else:
        raise CompareError(f"protocol.task must be 'denoise', 'sr' or 'deblur', got {task!r}")
    base.update(protocol)  # any further dataset key, e.g. mod_crop
    metrics = user_metrics or {
        name: dict(type=f'calculate_{name}', crop_border=crop, test_y_channel=y_channel)
        for name in ('psnr', 'ssim')
    }
    entries = []
    for name, entry in (datasets or {}).items():
        entry = dict(dataroot_gt=entry) if isinstance(entry, str) else dict(entry)
        entries.append(dict(base, name=name, phase='test', io_backend={'type': 'disk'}, **entry))
    if not entries:
        raise CompareError('no datasets given (datasets: {name: folder} or --dataset NAME=FOLDER)')
    return task, scale, entries, metrics


def describe_metrics(metrics):
    first = next(iter(metrics.values()))
    return f"{'Y' if first.get('test_y_channel') else 'all channels'}, crop {first.get('crop_border', 0)}"


@dataclass
class Sample:
    dataset: str
    image: str
    lq: torch.Tensor  # (1, C, h, w)
    gt: torch.Tensor  # (1, C, H, W)
    kernel: torch.Tensor = None  # (1, 1, k, k) for deblurring
    sha256: str = ''


def input_hash(sample):
    """sha256 of what a model receives: the degraded input's float32 bytes and shape (and the kernel's)."""
    digest = hashlib.sha256(str(tuple(sample.lq.shape)).encode())
    digest.update(sample.lq.numpy().astype(np.float32).tobytes())
    if sample.kernel is not None:
        digest.update(sample.kernel.numpy().astype(np.float32).tobytes())
    return digest.hexdigest()


def make_inputs(dataset_opts):
    """Every dataset's samples, degraded once; absent ``optional`` datasets are skipped with a warning."""
    opt = {'datasets': {str(i): entry for i, entry in enumerate(dataset_opts)}}
    skipped = drop_absent_optional_datasets(opt)
    if skipped:
        print(f'WARNING: skipping optional datasets that are not present: {", ".join(skipped)}', file=sys.stderr)
    samples = []
    for entry in opt['datasets'].values():
        dataset = build_dataset(entry)
        if len(dataset) == 0:
            raise CompareError(f"dataset {entry['name']!r} ({entry['dataroot_gt']}) holds no images")
        for index in range(len(dataset)):
            item = dataset[index]
            kernel = item.get('kernel')
            sample = Sample(entry['name'], osp.basename(item['lq_path']), item['lq'][None], item['gt'][None],
                            None if kernel is None else kernel.reshape(1, 1, *kernel.shape[-2:]))
            sample.sha256 = input_hash(sample)
            samples.append(sample)
    return samples


# ---------------------------------------------------------------------------------------------- models
class DegradedInput(torch.nn.Module):
    """The degraded input itself as a row; for SR enlarged by nearest-neighbour repetition to the output size."""

    def __init__(self, scale=1):
        super().__init__()
        self.upscale = scale

    def forward(self, x):
        return x.clone() if self.upscale == 1 else F.interpolate(x, scale_factor=self.upscale, mode='nearest')


class Bicubic(torch.nn.Module):
    """Bicubic upsampling by ``scale`` with BasicSR's MATLAB-style ``imresize`` (the usual SR baseline)."""

    def __init__(self, scale):
        super().__init__()
        self.upscale = scale

    def forward(self, x):
        return torch.stack([imresize(image, self.upscale) for image in x.float().cpu()]).to(x.device)


@dataclass
class ModelSpec:
    name: str
    module: torch.nn.Module = None
    source: str = ''
    error: str = None


def import_callable(target):
    """``package.module:callable`` → the callable."""
    module_name, _, attr = str(target).partition(':')
    if not module_name or not attr:
        raise CompareError(f"a custom model must be written 'package.module:callable', got {target!r}")
    obj = importlib.import_module(module_name)
    for part in attr.split('.'):
        obj = getattr(obj, part)
    return obj


def load_model(entry, task, scale, model_dir=None):
    """A :class:`ModelSpec` for one ``models`` entry. Accepted entries:

    - ``'input'`` (the degraded input), ``'bicubic'`` (SR only);
    - a zoo name (``converse_dncnn``, ...), or ``{zoo: NAME, name: LABEL}``;
    - ``{type: ARCH, path: CHECKPOINT, <arch options>}``: any arch in BasicSR's ``ARCH_REGISTRY`` (BasicSR's
      own or this package's); without ``path`` the arch is randomly initialised (``seed``, default 0);
    - ``'FILE.onnx'`` or ``{onnx: FILE, name: LABEL}``: an exported model run by ONNX Runtime;
    - ``'package.module:callable'`` or ``{callable: 'package.module:callable', kwargs: {...}}`` returning an
      ``nn.Module``;
    - in the Python API, an ``nn.Module`` or ``{module: nn.Module, name: LABEL}``.
    """
    if isinstance(entry, torch.nn.Module):
        entry = {'module': entry}
    if isinstance(entry, str) and entry.lower().endswith('.onnx'):
        entry = {'onnx': entry}
    if isinstance(entry, str):
        entry = {'callable': entry} if ':' in entry else {'zoo': entry} if entry not in TRIVIAL else {'trivial': entry}
    entry = dict(entry)
    label = entry.pop('name', None)
    if 'trivial' in entry or entry.get('zoo') in TRIVIAL:
        kind = entry.get('trivial') or entry.get('zoo')
        if kind == 'bicubic' and task != 'sr':
            raise CompareError('the bicubic row is for super-resolution protocols only')
        module = DegradedInput(scale) if kind == 'input' else Bicubic(scale)
        source = 'degraded input' + (f' (nearest ×{scale})' if kind == 'input' and scale > 1 else '') \
            if kind == 'input' else f'bicubic ×{scale} (MATLAB imresize)'
        return ModelSpec(label or kind, module, source)
    if 'module' in entry:
        module = entry['module']
        return ModelSpec(label or type(module).__name__, module, f'nn.Module {type(module).__name__}')
    if 'onnx' in entry:  # an exported file, run by ONNX Runtime (needs the export extra)
        from ..export.runtime import load_for_task
        module = load_for_task(entry['onnx'], task, scale)
        return ModelSpec(label or os.path.basename(entry['onnx']), module, f"onnx {entry['onnx']}")
    if 'zoo' in entry:
        module = zoo.load_pretrained(entry['zoo'], model_dir=entry.get('model_dir', model_dir))
        return ModelSpec(label or entry['zoo'], module, f"zoo {entry['zoo']}")
    if 'callable' in entry:
        module = import_callable(entry['callable'])(**(entry.get('kwargs') or {}))
        if not isinstance(module, torch.nn.Module):
            raise CompareError(f"{entry['callable']} returned {type(module).__name__}, not a torch.nn.Module")
        return ModelSpec(label or entry['callable'], module, f"callable {entry['callable']}")
    if 'type' in entry:
        arch = entry.pop('type')
        checkpoint = entry.pop('path', None)
        seed = entry.pop('seed', 0)
        if checkpoint is None:
            torch.manual_seed(seed)
            module = zoo.build_arch(arch, entry)
            source = f'{arch} {entry or ""} untrained (random init, seed {seed})'
        else:
            module = zoo.load_pretrained(checkpoint, arch=arch, arch_kwargs=entry)
            source = f'{arch} {entry or ""} {checkpoint}'
        return ModelSpec(label or arch, module, source.replace('  ', ' '))
    raise CompareError(f'cannot read model entry {entry!r}: give a zoo name, type (+ path), callable or module')


def model_label(entry, index):
    if isinstance(entry, dict) and entry.get('name'):
        return str(entry['name'])
    if isinstance(entry, str):
        return entry
    return f'model {index + 1}'


def takes_kernel(module):
    try:
        return 'kernel' in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------- measurement
class PeakMemory:
    """Peak memory of the code inside ``with``: CUDA's allocator peak on a GPU; on the CPU the growth of the
    resident set (read from /proc/self/statm every millisecond) after ``malloc_trim`` returned free heap."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak = None

    @staticmethod
    def _rss():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

    def _poll(self):
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            self._stop.wait(0.001)

    def __enter__(self):
        if self.device.type == 'meta':  # not measuring
            return self
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif osp.exists('/proc/self/statm'):
            try:
                import ctypes
                ctypes.CDLL(None).malloc_trim(0)
            except (OSError, AttributeError):
                pass
            self._base = self._max = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        elif hasattr(self, '_stop'):
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, self._rss()) - self._base
        return False


def fft_flops(module, inputs):
    """Analytic real-FFT flops of one Converse2D call (see ``FLOPS_NOTE``)."""
    n, c, h, w = inputs[0].shape
    h, w = h + 2 * module.padding, w + 2 * module.padding
    s = module.scale

    def real_fft(points):
        return 2.5 * points * math.log2(points) if points > 1 else 0.0

    return n * c * (real_fft(h * w) + real_fft(h * s * w * s))


def count_flops(spec, channels, size, scale, kernel, device):
    """(counted flops, analytic FFT flops) of one forward pass producing a ``size``×``size`` output."""
    side = max(size // scale, 1)
    x = torch.rand(1, channels, side, side, device=device)
    fft_total = [0.0]
    hooks = [
        m.register_forward_pre_hook(lambda m, args: fft_total.__setitem__(0, fft_total[0] + fft_flops(m, args)))
        for m in spec.module.modules() if isinstance(m, Converse2D)
    ]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward(spec.module, x, kernel, scale)
        return float(counter.get_total_flops()), fft_total[0]
    finally:
        for hook in hooks:
            hook.remove()


def forward(module, x, kernel, scale):
    if kernel is not None and takes_kernel(module):
        return module(x, kernel, scale)
    return module(x)


def synchronize(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def run_model(module, sample, device, tile, tile_pad=32):
    """The model's output for one sample (float32 on the CPU), whole or in ``tile``×``tile`` tiles."""
    x = sample.lq.to(device)
    kernel = None if sample.kernel is None else sample.kernel.to(device)
    scale = sample.gt.shape[-1] // sample.lq.shape[-1]
    if tile == 'auto':
        tile = auto_tile(module, device, *x.shape[-2:])
    with torch.no_grad():
        if tile is None or tile >= max(x.shape[-2:]):
            out = forward(module, x, kernel, scale)
        else:
            out = tiled_forward(lambda t: forward(module, t, kernel, scale), x, tile, tile_pad, scale,
                                wrap=getattr(module, 'periodic_boundary', False))
        synchronize(device)
    return out.float().cpu() if torch.is_tensor(out) else out


@functools.lru_cache(maxsize=4)
def _tile_planner(module, device):
    """One converse-restore planner per model (its probe forwards and memory measurement run once)."""
    return Restorer(module, device=device, tile='auto', scale=getattr(module, 'upscale', None))


def auto_tile(module, device, h, w):
    """``tile='auto'``: the converse-restore planner for models with convolutions; whole image otherwise."""
    if not any(isinstance(m, torch.nn.Conv2d) for m in module.modules()):
        return None
    return _tile_planner(module, str(device)).auto_tile(h, w)


def check_output(out, sample):
    if not torch.is_tensor(out):
        raise CompareError(f'the model returned {type(out).__name__}, not a tensor')
    if tuple(out.shape) != tuple(sample.gt.shape):
        raise CompareError(f'output of shape {tuple(out.shape)} for input {tuple(sample.lq.shape)}; '
                           f'expected {tuple(sample.gt.shape)} (channels or scale do not match the protocol)')
    if not torch.isfinite(out).all():
        raise CompareError('the output contains NaN or infinite values')


def short_error(err):
    text = f'{type(err).__name__}: {err}'.replace('\n', ' ')
    return text if len(text) <= 300 else text[:297] + '...'


# ---------------------------------------------------------------------------------------------- crop grid
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


# ---------------------------------------------------------------------------------------------- the comparison
@dataclass
class Comparison:
    """What :func:`compare` returns: the table rows, the per-image rows, the files written, and the failures."""
    rows: list
    per_image: list
    files: dict
    failed: list = field(default_factory=list)


def compare(models, datasets, protocol, name='compare', results_root='results', device='cpu', tile=None, threads=None,
            model_dir=None, flops_size=256, crop=48, warmup=1, plot=False, progress=True):
    """Compare ``models`` on ``datasets`` under ``protocol``; write ``results_root/name/``; return a
    :class:`Comparison`. Arguments as the YAML keys in the module docstring; ``models`` entries as
    :func:`load_model` accepts (``nn.Module`` objects included)."""
    if threads:
        torch.set_num_threads(int(threads))
    device = torch.device(device)
    task, scale, dataset_opts, metrics = protocol_datasets(protocol, datasets)
    samples = make_inputs(dataset_opts)
    out_dir = osp.join(results_root, file_tag(name))
    os.makedirs(out_dir, exist_ok=True)
    gts = [to_rgb_uint8(s.gt) for s in samples]
    boxes = [choose_crop(gt, crop) for gt in gts]  # (top, left, side) in ground-truth pixels
    degraded = [DegradedInput(scale)(s.lq) for s in samples]
    baseline = [measure(lq, s.gt, metrics) for lq, s in zip(degraded, samples)]
    tiles = [[(['degraded', f"PSNR {b.get('psnr', float('nan')):.2f} dB"], to_rgb_uint8(lq))]
             for lq, b in zip(degraded, baseline)]
    rows, per_image, failed = [], [], []
    bar = tqdm(total=len(models) * len(samples), desc='models x images', disable=not progress, unit='img')
    for index, entry in enumerate(models):
        label = model_label(entry, index)
        bar.set_postfix_str(label)
        result = {
            'model': label, 'source': '', 'params': '', 'gflops_counted': '', 'gflops_fft': '', 'gflops_total': '',
            'seconds_per_image': '', 'peak_memory_mib': '', 'error': ''
        }
        outputs = {}
        try:
            spec = load_model(entry, task, scale, model_dir)
            label = result['model'] = spec.name
            spec.module = spec.module.to(device).eval()
            result['source'] = spec.source
            result['params'] = sum(p.numel() for p in spec.module.parameters())
            times = []
            for i, sample in enumerate(samples):
                with PeakMemory(device if i == 0 else 'meta') as memory:  # measured on the first image only
                    for _ in range(warmup if i == 0 else 0):
                        run_model(spec.module, sample, device, tile)
                    start = time.perf_counter()
                    out = run_model(spec.module, sample, device, tile)
                    times.append(time.perf_counter() - start)
                if i == 0:
                    result['peak_memory_mib'] = '' if memory.peak is None else memory.peak / 2**20
                check_output(out, sample)
                outputs[i] = out
                bar.update(1)
            result['seconds_per_image'] = statistics.median(times)
            kernel = samples[0].kernel.to(device) if samples[0].kernel is not None else None
            counted, fft = count_flops(spec, samples[0].lq.shape[1], flops_size, scale, kernel, device)
            result.update(gflops_counted=counted / 1e9, gflops_fft=fft / 1e9, gflops_total=(counted + fft) / 1e9)
        except (Exception, torch.cuda.OutOfMemoryError) as err:  # a failing model is reported, not fatal
            result['error'] = short_error(err)
            failed.append(label)
            bar.update(len(samples) - len(outputs))
        finally:
            if device.type == 'cuda':
                torch.cuda.empty_cache()
        model_rows = []  # this entry's per-image rows (two entries may share a label)
        for i, sample in enumerate(samples):
            values = measure(outputs[i], sample.gt, metrics) if i in outputs and not result['error'] else {}
            model_rows.append(
                dict(dataset=sample.dataset, image=sample.image, model=label, input_sha256=sample.sha256,
                     **{k: values.get(k, '')
                        for k in metrics}, crop_box='{1},{0},{2}'.format(*boxes[i]), error=result['error']))
            if values and not isinstance(spec.module, DegradedInput):
                tiles[i].append(([label, f"PSNR {values.get('psnr', float('nan')):.2f} dB"], to_rgb_uint8(outputs[i])))
        per_image += model_rows
        for dataset in dict.fromkeys(s.dataset for s in samples):
            measured = [r for r in model_rows if r['dataset'] == dataset]
            means = {k: float(np.mean([r[k] for r in measured])) if not result['error'] else '' for k in metrics}
            rows.append(dict(dataset=dataset, images=len(measured), **means, **result))
    bar.close()
    files = write_outputs(
        out_dir, rows, per_image, metrics, samples, gts, boxes, tiles,
        dict(task=task, protocol=protocol, device=str(device), threads=torch.get_num_threads(), flops_size=flops_size,
             tile=tile, warmup=warmup), plot)
    return Comparison(rows, per_image, files, failed)


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


# ---------------------------------------------------------------------------------------------- command line
def build_parser():
    p = argparse.ArgumentParser(prog='converse-compare', description=__doc__.split('\n')[0])
    p.add_argument('-opt', help='comparison YAML (options/compare/*.yml)')
    p.add_argument('--name', help='results/<name>/ (default: the YAML name, else "compare")')
    p.add_argument('--task', choices=['denoise', 'sr', 'deblur'], help='protocol task (instead of a YAML)')
    p.add_argument('--sigma', type=float, help='noise level (0-255 units): denoise default 25, deblur 2.55')
    p.add_argument('--color', choices=['gray', 'rgb'], help='denoise: gray (default) or rgb')
    p.add_argument('--scale', type=int, help='sr: scale factor (default 4)')
    p.add_argument('--kernel-path', help='deblur: a .npy kernel or a folder of them')
    p.add_argument('--dataset', action='append', default=[], metavar='NAME=FOLDER', help='a test set (repeatable)')
    p.add_argument('--model', action='append', default=[], metavar='MODEL',
                   help="input, bicubic, a zoo name, or package.module:callable (repeatable)")
    p.add_argument('--model-dir', help='where zoo checkpoints are (default $CONVERSE_MODEL_DIR or the cache)')
    p.add_argument('--device', help='torch device (default cpu)')
    p.add_argument('--tile', help="tile size in input pixels, or 'auto'; default whole images")
    p.add_argument('--threads', type=int, help='torch threads for every model (default: torch default)')
    p.add_argument('--flops-size', type=int, help='output side at which compute is counted (default 256)')
    p.add_argument('--plot', action='store_true', help='also write psnr_vs_time.png')
    p.add_argument('--results-root', default='results', help='where results/<name>/ goes (default results)')
    return p


def options_from_args(args):
    opt = {}
    if args.opt:
        with open(args.opt, encoding='utf-8') as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0]) or {}
    if args.task:
        opt['protocol'] = {'task': args.task}
    protocol = opt.setdefault('protocol', {})
    for key in ('sigma', 'color', 'scale'):
        if getattr(args, key) is not None:
            protocol[key] = getattr(args, key)
    if args.kernel_path:
        protocol['kernel_path'] = args.kernel_path
    for item in args.dataset:
        dataset_name, sep, folder = item.partition('=')
        if not sep:
            raise CompareError(f'--dataset must be NAME=FOLDER, got {item!r}')
        opt.setdefault('datasets', {})[dataset_name] = folder
    if args.model:
        opt['models'] = list(args.model)
    for key in ('name', 'model_dir', 'device', 'tile', 'threads', 'flops_size'):
        if getattr(args, key) is not None:
            opt[key] = getattr(args, key)
    if opt.get('tile') not in (None, 'auto'):
        try:
            opt['tile'] = int(opt['tile'])
        except ValueError:
            raise CompareError(f"tile must be an integer or 'auto', got {opt['tile']!r}") from None
    opt['plot'] = bool(args.plot or opt.get('plot'))
    if not opt.get('models'):
        raise CompareError('no models given (models: [...] in the YAML or --model)')
    return opt


def main(argv=None):
    """Console entry point (``converse-compare``): 0 when every model ran, 1 when one failed, 2 bad options."""
    args = build_parser().parse_args(argv)
    retain_freed_memory()  # the same CPU memory policy as converse-test, for the same numbers and speed
    try:
        opt = options_from_args(args)
        result = compare(opt['models'], opt.get('datasets'), opt.get('protocol'), name=opt.get('name', 'compare'),
                         results_root=args.results_root, device=opt.get('device', 'cpu'), tile=opt.get('tile'),
                         threads=opt.get('threads'), model_dir=opt.get('model_dir'),
                         flops_size=opt.get('flops_size', 256), crop=opt.get('crop',
                                                                             48), warmup=opt.get('warmup',
                                                                                                 1), plot=opt['plot'])
    except (CompareError, zoo.ZooError, FileNotFoundError, KeyError, ValueError) as err:
        print(f'converse-compare: error: {err}', file=sys.stderr)
        return 2
    with open(result.files['comparison.md'], encoding='utf-8') as f:
        print(f.read())
    print(f"Results: {osp.dirname(result.files['comparison.md'])}")
    if result.failed:
        print(f"converse-compare: {len(result.failed)} model(s) failed: {', '.join(result.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
