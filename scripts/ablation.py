"""Ablation: train Converse vs Conv / ConvT / pixel-shuffle variants through converse-train and tabulate them.

Runs every config of ``options/train/ablation/`` for each seed of its task:

- ``denoise``: sigma 25, reduced DnCNN family, ``operator: converse | conv | convtranspose`` (small budget);
- ``deblur``: blind gray deblurring, reduced ConverseNet vs ConvNet, 400 iterations (small budget);
- ``deblur_medium``: the same networks and data trained 10× longer (4,000 iterations);
- ``deblur_k7``: the same networks with 7×7 operators, blind among the paper's five kernels (2,000 iterations);
- ``deblur_deep``: ``deblur_k7`` with a deeper body (3 blocks × 3 iterations), 4,000 iterations;
- ``deblur_known_k4``, ``deblur_known_k1``: the ``deblur_k7`` networks trained and validated on one known kernel
  (non-blind: the operator's own question);
- ``sr_edsr``: a small EDSR ×4 with BasicSR's pixel-shuffle upsampler against the same EDSR through
  ``ConverseUp`` (its upsampler converted to reverse convolution).

Each run is ``python -m converse_basicsr.train -opt <derived config> --auto_resume``; the derived config
differs from the shipped one only in ``name``, ``manual_seed``, the ``../shared`` paths (made absolute)
and, with ``--quick``, the iteration counts. Each run's validation curve is read from its training log
(appended to across resumes); results are saved atomically after every run, runs already in the results
file are skipped, and a run stopped part-way continues from its last saved state (the medium-budget configs
save one at every validation). The PSNR of the task's input under the same protocol (the blurred image;
MATLAB bicubic for SR) is measured once per task as the table's reference row; deblurring tables add two
oracle linear filters (one filter for all five kernels, and the Wiener filter of the known kernel) as
reference rows (a known-kernel task has one kernel: only the Wiener filter). Then a Markdown table (mean ±
standard deviation over seeds of the final validation PSNR, parameters, wall time) and a PNG of validation
PSNR against iteration are written beside the results file.

    python scripts/ablation.py --jobs 2   # full run, results in docs/ablation/ (hours on a 2-core CPU)
    python scripts/ablation.py --tasks sr_edsr --jobs 2   # one task
    python scripts/ablation.py --quick    # first look: 1 seed, few iterations, in results/ablation_quick/
                                          # (every task but the known-kernel ones unless --tasks names them)
    python scripts/ablation.py --table-only   # rebuild table and plot from the results file
    python scripts/ablation.py --speed sr_edsr   # time one training iteration of each variant, side by side
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import yaml

from converse_basicsr.data.io import write_atomic, write_text_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / 'options' / 'train' / 'ablation'
# the paper's kernels that the known-kernel tasks train and validate on: a strong motion blur and a mild one
KNOWN_KERNELS = (4, 1)
KNOWN_TASKS = tuple(f'deblur_known_k{k}' for k in KNOWN_KERNELS)
# the same pair of models at several settings: blind (four budgets and shapes), then one known kernel each
DEBLUR_TASKS = ('deblur', 'deblur_medium', 'deblur_k7', 'deblur_deep') + KNOWN_TASKS
# each task's operators, in table order; the config of each is options/train/ablation/<task>_<operator>.yml
TASK_OPERATORS = dict(
    denoise=('converse', 'conv', 'convtranspose'), **dict.fromkeys(DEBLUR_TASKS, ('converse', 'conv')),
    sr_edsr=('converse', 'pixelshuffle'))
VARIANTS = tuple((task, operator) for task, operators in TASK_OPERATORS.items() for operator in operators)
TASKS = tuple(TASK_OPERATORS)
TASK_TITLES = {
    'denoise': 'Denoising σ = 25, Set12 (reduced DnCNN family)',
    'deblur': 'Blind deblurring, gray Set12, kernels 1–5, σ = 2.55 (reduced ConverseNet / ConvNet)',
    'deblur_medium': 'Blind deblurring at a medium budget, gray Set12, kernels 1–5, σ = 2.55 (reduced '
    'ConverseNet / ConvNet)',
    'deblur_k7': 'Blind deblurring with 7×7 operators, trained on the paper\'s five kernels, gray Set12, kernels 1–5, '
    'σ = 2.55 (reduced ConverseNet / ConvNet)',
    'deblur_deep': 'Blind deblurring, deeper (3 blocks × 3 iterations, 7×7 operators), trained on the paper\'s five '
    'kernels, gray Set12, kernels 1–5, σ = 2.55 (reduced ConverseNet / ConvNet)',
    **{
        f'deblur_known_k{k}': f'Known-kernel deblurring, kernel {k} (trained and validated on it), gray Set12, '
        'σ = 2.55, 7×7 operators (reduced ConverseNet / ConvNet)'
        for k in KNOWN_KERNELS
    },
    'sr_edsr': 'Super-resolution ×4, Set5 and Set14 (Y), small EDSR: pixel-shuffle vs ConverseUp upsampler',
}
# per deblurring operator: the model's name and the paper's full-size, full-budget PSNR (blind, BSD100) per kernel
DEBLUR_MODELS = {'converse': 'ConverseNet', 'conv': 'ConvNet'}
PAPER_DEBLUR_PSNR = {'converse': (27.69, 24.43, 31.28, 27.64, 27.31), 'conv': (25.26, 22.96, 27.16, 26.91, 23.98)}
MODEL_NAMES = {('denoise', 'converse'): 'Converse-DnCNN', ('denoise', 'conv'): 'Conv-DnCNN',
               ('denoise', 'convtranspose'): 'ConvT-DnCNN', ('sr_edsr', 'converse'): 'ConverseUp-EDSR',
               ('sr_edsr', 'pixelshuffle'): 'EDSR'}
MODEL_NAMES.update({(task, op): name for task in DEBLUR_TASKS for op, name in DEBLUR_MODELS.items()})
# The paper's full-size, full-budget numbers, for the ordering only (different sets for deblurring: BSD100 kernel 1).
PAPER_PSNR = {('denoise', 'converse'): '30.70', ('denoise', 'conv'): '30.64', ('denoise', 'convtranspose'): '30.61',
              ('sr_edsr', 'converse'): '—', ('sr_edsr', 'pixelshuffle'): '—'}
# the blind tasks: kernel 1, as the paper cites it; a known-kernel task: its kernel (the paper's model is blind)
PAPER_PSNR.update({(task, op): f'{PAPER_DEBLUR_PSNR[op][0]:.2f} (BSD100, k1)'
                   for task in DEBLUR_TASKS
                   for op in DEBLUR_MODELS})
PAPER_PSNR.update({(f'deblur_known_k{k}', op): f'{PAPER_DEBLUR_PSNR[op][k - 1]:.2f} (BSD100, k{k}, blind)'
                   for k in KNOWN_KERNELS
                   for op in DEBLUR_MODELS})
# Seeds of a full run; the small-budget tasks ran 3, the medium-budget ones 2 (their runs are 10-20× longer).
TASK_SEEDS = {
    'denoise': (0, 1, 2), 'deblur': (0, 1, 2), 'deblur_medium': (0, 1), 'deblur_k7': (0, 1), 'deblur_deep': (0, 1),
    **dict.fromkeys(KNOWN_TASKS, (0, 1)), 'sr_edsr': (0, 1)
}
# --quick's tasks when --tasks is not given: the known-kernel tasks are left out to keep it within 5 minutes
QUICK_TASKS = tuple(task for task in TASKS if task not in KNOWN_TASKS)
# What the reference row of each task is: the input as it is (deblurring, denoising) or bicubic-upscaled (SR).
INPUT_LABELS = {'denoise': 'noisy input', 'sr_edsr': 'bicubic', **{task: 'blurred input' for task in DEBLUR_TASKS}}
QUICK_DIVISOR = 8
QUICK_MAX_ITER = 64  # --quick: 1/QUICK_DIVISOR of the iterations, at most this many
RUN_MARKER = '# ablation: converse-train started'
SHARED_PREFIX = '../shared/'
VALIDATION_RE = re.compile(r'Validation (\S+)\n\s*# psnr: (\S+)')
RESUME_RE = re.compile(r'Resuming training from epoch: \d+, iter: (\d+)\.')
TIMESTAMP_RE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ ', re.MULTILINE)


def config_path(task, operator):
    return CONFIG_DIR / f'{task}_{operator}.yml'


def load_yaml(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def run_key(task, operator, seed):
    return f'{task}/{operator}/seed{seed}'


def rewrite_shared_paths(node, shared_root):
    """A copy of ``node`` with every string starting with ``../shared/`` pointing into ``shared_root``."""
    if isinstance(node, dict):
        return {key: rewrite_shared_paths(value, shared_root) for key, value in node.items()}
    if isinstance(node, list):
        return [rewrite_shared_paths(value, shared_root) for value in node]
    if isinstance(node, str) and node.startswith(SHARED_PREFIX):
        return str(Path(shared_root) / node[len(SHARED_PREFIX):])
    return node


def derive_options(opt, task, operator, seed, shared_root, quick):
    """The option dict one run trains with: the shipped config with its own name and seed, absolute
    ``../shared`` paths and, for ``quick``, 1/QUICK_DIVISOR of the iterations (schedule scaled alike) and
    validation only at the end."""
    opt = rewrite_shared_paths(opt, shared_root)
    opt['name'] = f'ablation_{task}_{operator}_seed{seed}' + ('_quick' if quick else '')
    opt['manual_seed'] = seed
    if quick:
        total = max(2, round(min(opt['train']['total_iter'] / QUICK_DIVISOR, QUICK_MAX_ITER) / 2) * 2)
        ratio = total / opt['train']['total_iter']
        opt['train']['total_iter'] = total
        opt['train']['scheduler']['milestones'] = [
            max(1, round(m * ratio)) for m in opt['train']['scheduler']['milestones']
        ]
        # one validation, BasicSR's after the loop (its own one at total_iter would measure the same model again):
        # validation is most of a quick run's time
        opt['val']['val_freq'] = total + 1
        if opt['logger'].get('save_checkpoint_freq', 0) < opt['train']['total_iter']:
            opt['logger']['save_checkpoint_freq'] = total // 2
    return opt


def _segment_start(segment):
    """The iteration one converse-train launch started from: BasicSR's resume line, else 0."""
    match = RESUME_RE.search(segment)
    return int(match.group(1)) if match else 0


def parse_validation_log(text, val_freq, total_iter):
    """``{dataset: [(iteration, psnr), ...]}`` from a BasicSR training log.

    SRModel logs ``Validation <name>`` / ``# psnr: <value>`` every ``val_freq`` iterations and once more
    after the loop; the k-th block of a dataset is iteration ``start + k * val_freq``, the extra one (the
    unchanged final model) is kept only when ``total_iter`` is not a multiple of ``val_freq``. A log that
    several launches appended to (``RUN_MARKER`` lines; a resumed launch logs the iteration it resumed
    from, ``start``) is read launch by launch, a later launch's value replacing an earlier one's."""
    parsed = {}
    for segment in filter(None, text.split(RUN_MARKER)):
        start = _segment_start(segment)
        in_loop = (total_iter - start) // val_freq
        values = {}
        for name, value in VALIDATION_RE.findall(segment):
            psnr = float(value)
            if not math.isfinite(psnr):
                raise ValueError(f'non-finite validation PSNR {value!r} for {name}')
            values.setdefault(name, []).append(psnr)
        for name, psnrs in values.items():
            points = {start + (k + 1) * val_freq: v for k, v in enumerate(psnrs[:in_loop])}
            if total_iter % val_freq and len(psnrs) > in_loop:
                points[total_iter] = psnrs[in_loop]
            parsed.setdefault(name, {}).update(points)
    return {name: sorted(points.items()) for name, points in parsed.items()}


def log_wall_seconds(text):
    """Seconds of training in a log, summed over its launches (first to last timestamp of each)."""
    total = 0.0
    for segment in filter(None, text.split(RUN_MARKER)):
        stamps = [time.mktime(time.strptime(stamp, '%Y-%m-%d %H:%M:%S')) for stamp in TIMESTAMP_RE.findall(segment)]
        if stamps:
            total += stamps[-1] - stamps[0]
    return total


def summarize_run(curves, total_iter):
    """Mean-over-validation-sets curve and the final PSNR of each set; the final must be at ``total_iter``."""
    if not curves:
        raise ValueError('no validation results in the training log')
    iterations = sorted({point[0] for points in curves.values() for point in points})
    curve = []
    for it in iterations:
        values = [v for points in curves.values() for i, v in points if i == it]
        if len(values) == len(curves):
            curve.append([it, sum(values) / len(values)])
    if not curve or curve[-1][0] != total_iter:
        raise ValueError(f'the log has no validation at the last iteration {total_iter}')
    per_set = {name: points[-1][1] for name, points in curves.items()}
    return curve, per_set


def save_json_atomic(data, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + '\n')


def update_results(path, section, key, value):
    """Set ``results[section][key] = value`` in the results file and return the file's new content. The file is
    re-read under an exclusive lock and replaced atomically, so two ablation processes sharing one results file
    (say, one per task) keep each other's entries."""
    import fcntl
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f'.{path.name}.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results(path)
        results.setdefault(section, {})[key] = value
        save_json_atomic(results, path)
    return results


def load_results(path):
    if not Path(path).exists():
        return {'runs': {}}
    with open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path}: not an ablation results file (not valid JSON: {error})') from None
    if not isinstance(data, dict) or not isinstance(data.get('runs'), dict):
        raise ValueError(f'{path}: not an ablation results file (no "runs" object)')
    return data


def count_params(network_opt):
    """Parameters of the network a ``network_g`` entry builds (the package registers its archs on import)."""
    import converse_basicsr  # noqa: F401  (registers the archs, ConverseUp included)
    from basicsr.archs import build_network
    return sum(p.numel() for p in build_network(dict(network_opt)).parameters())


def train_one(task, operator, seed, args):
    """Train one variant through converse-train (``--auto_resume``: a run stopped part-way continues from its
    last saved state, its log appended to); returns its results entry."""
    shipped = load_yaml(config_path(task, operator))  # derive_options returns a copy: shipped stays as read
    opt = derive_options(shipped, task, operator, seed, args.shared, args.quick)
    work_dir = Path(args.work_dir).resolve()
    (work_dir / 'configs').mkdir(parents=True, exist_ok=True)
    (work_dir / 'logs').mkdir(parents=True, exist_ok=True)
    opt_path = work_dir / 'configs' / f'{opt["name"]}.yml'
    log_path = work_dir / 'logs' / f'{opt["name"]}.log'
    write_text_atomic(opt_path, yaml.safe_dump(opt, sort_keys=False))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
    command = [sys.executable, '-m', 'converse_basicsr.train', '-opt', str(opt_path), '--auto_resume']
    with open(log_path, 'a', encoding='utf-8') as log:
        log.write(f'{RUN_MARKER} {time.strftime("%Y-%m-%d %H:%M:%S")}\n')
        log.flush()
        status = subprocess.run(command, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise RuntimeError(f'{run_key(task, operator, seed)}: converse-train exited with {status}, see {log_path}')
    text = log_path.read_text(encoding='utf-8')
    total_iter = opt['train']['total_iter']
    curves = parse_validation_log(text, opt['val']['val_freq'], total_iter)
    curve, per_set = summarize_run(curves, total_iter)
    return {
        'task': task, 'operator': operator, 'seed': seed, 'total_iter': total_iter, 'final_psnr': curve[-1][1],
        'curve': curve, 'per_set': per_set, 'wall_s': round(log_wall_seconds(text), 1), 'threads': args.threads,
        'launches': text.count(RUN_MARKER), 'config': str(config_path(task, operator).relative_to(REPO_ROOT)),
        'network_g': shipped['network_g'], 'params': count_params(shipped['network_g'])
    }


def _validation(task, shared_root):
    """A task's validation as SRModel runs it: its scale, its datasets (one per ``val*`` entry, in order) and
    ``measure(output, gt)``, the PSNR of an output tensor against a uint8 ground truth (the output through
    ``tensor2img``, the config's ``psnr`` metric)."""
    import converse_basicsr  # noqa: F401  (registers the datasets)
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_metric
    from basicsr.utils import tensor2img

    operator = next(op for t, op in VARIANTS if t == task)
    opt = derive_options(load_yaml(config_path(task, operator)), task, operator, 0, shared_root, False)
    metric = dict(opt['val']['metrics']['psnr'])
    datasets = [
        build_dataset(dict(entry, phase='val', scale=opt['scale'])) for key, entry in opt['datasets'].items()
        if key.startswith('val')
    ]

    def measure(output, gt):
        return calculate_metric({'img': tensor2img([output]), 'img2': gt}, metric)

    return opt['scale'], datasets, measure


def _reference_row(label, per_set):
    """A reference row of the table: ``label``, the mean over the validation sets and each set's PSNR."""
    return {'label': label, 'psnr': sum(per_set.values()) / len(per_set), 'per_set': per_set}


def input_psnr(task, shared_root):
    """The PSNR of the task's input under its validation protocol, mean over the validation sets: the degraded
    image itself, or for SR its MATLAB-bicubic upscaling, measured as SRModel measures a result (uint8 through
    ``tensor2img``, the config's ``psnr`` metric)."""
    from basicsr.utils import tensor2img
    from basicsr.utils.matlab_functions import imresize

    scale, datasets, measure = _validation(task, shared_root)
    per_set = {}
    for dataset in datasets:
        values = []
        for index in range(len(dataset)):
            sample = dataset[index]
            lq = sample['lq'] if scale == 1 else imresize(sample['lq'], scale)
            values.append(measure(lq, tensor2img([sample['gt']])))
        per_set[dataset.opt['name']] = sum(values) / len(values)
    return _reference_row(INPUT_LABELS[task], per_set)


# The two linear references of a deblurring table: their row labels, in table order.
LINEAR_LABELS = {
    'blind': 'one linear filter for all kernels (oracle spectrum)',
    'non_blind': 'Wiener filter of the known kernel (oracle spectrum)',
}


def blur_response(kernel, shape):
    """The frequency response (``fft2``, float64) of the protocol's circular blur by ``kernel`` on ``shape``
    images: ``circular_blur`` of a unit impulse at the origin, so it follows the protocol's own convention."""
    from converse_basicsr.data.kernels import circular_blur
    impulse = np.zeros((*shape, 1))
    impulse[0, 0] = 1
    return np.fft.fft2(circular_blur(impulse, np.asarray(kernel, np.float64))[..., 0])


def linear_deblur(lq, gt, responses, index, sigma):
    """Two oracle linear deblurrings of ``lq`` (H×W, [0, 1]): both know the ground truth's power spectrum
    ``S = |fft2(gt)|² / HW`` and the noise level ``sigma`` ([0, 1] units). ``blind``: the one filter of least
    total squared error over all ``responses`` at once, ``G = Σ conj(K_j) S / (Σ |K_j|² S + n σ²)``, which is
    what a deblurrer that cannot tell the kernels apart can do at best among linear filters; ``non_blind``:
    the Wiener filter of the image's own kernel ``responses[index]``."""
    spectrum = np.abs(np.fft.fft2(gt))**2 / gt.size
    lq_f = np.fft.fft2(lq)
    numerator = sum(np.conj(k) for k in responses) * spectrum
    blind = numerator / (sum(np.abs(k)**2 for k in responses) * spectrum + len(responses) * sigma**2)
    own = responses[index]
    non_blind = np.conj(own) * spectrum / (np.abs(own)**2 * spectrum + sigma**2)
    return {name: np.real(np.fft.ifft2(g * lq_f)) for name, g in (('blind', blind), ('non_blind', non_blind))}


def linear_psnr(task, shared_root):
    """The PSNR of :func:`linear_deblur`'s two filters on a deblurring task's validation sets (one per kernel),
    measured as SRModel measures a result (uint8 through ``tensor2img``, the config's ``psnr`` metric): a blind
    network must tell the kernels apart to beat the first; the second is no blind method's bound, only the
    scale of what knowing the kernel is worth. A task with one validation set (a known kernel) has only the
    second: the first, among one kernel, is the same filter."""
    import torch

    from basicsr.utils import tensor2img

    _, datasets, measure = _validation(task, shared_root)
    kernels = [dataset.kernels[0] for dataset in datasets]
    names = [name for name in LINEAR_LABELS if len(datasets) > 1 or name == 'non_blind']
    per_set = {name: {} for name in names}
    responses = {}  # per image shape
    for index, dataset in enumerate(datasets):
        values = {name: [] for name in names}
        for i in range(len(dataset)):
            sample = dataset[i]
            gt, lq = sample['gt'][0].double().numpy(), sample['lq'][0].double().numpy()
            if gt.shape not in responses:
                responses[gt.shape] = [blur_response(k, gt.shape) for k in kernels]
            gt_img = tensor2img([sample['gt']])
            outputs = linear_deblur(lq, gt, responses[gt.shape], index, sample['sigma'] / 255)
            for name in names:
                values[name].append(measure(torch.from_numpy(outputs[name])[None].float(), gt_img))
        for name in names:
            per_set[name][dataset.opt['name']] = sum(values[name]) / len(values[name])
    return {name: _reference_row(LINEAR_LABELS[name], sets) for name, sets in per_set.items()}


def mean_std(values):
    mean = sum(values) / len(values)
    std = statistics.stdev(values) if len(values) > 1 else float('nan')
    return mean, std


def group_runs(results):
    """``{(task, operator): [run, ...]}`` in VARIANTS order, runs sorted by seed."""
    groups = {}
    for run in results['runs'].values():
        groups.setdefault((run['task'], run['operator']), []).append(run)
    return {key: sorted(groups[key], key=lambda r: r['seed']) for key in VARIANTS if key in groups}


def _per_set(per_sets):
    """``'Set5 30.50, Set14 27.57'``: each validation set's PSNR, averaged over the given ``per_set`` dicts."""
    if not per_sets or not all(per_sets):
        return ''
    names = sorted(per_sets[0], key=lambda name: (len(name), name))
    return ', '.join(f'{name.replace("Set12_", "")} {sum(p[name] for p in per_sets) / len(per_sets):.2f}'
                     for name in names)


def _params(run):
    if 'params' in run:
        return run['params']
    return count_params(run['network_g']) if 'network_g' in run else None


def build_table(results):
    """Markdown table per task: the input's PSNR (for deblurring also the two linear filters'), then per variant
    the final validation PSNR (mean ± std over seeds, each seed), each validation set's PSNR (mean over seeds),
    seeds, iterations, parameters, mean wall time per run."""
    lines = []
    groups = group_runs(results)
    inputs = results.get('inputs', {})
    for task in TASKS:
        rows = [(key, runs) for key, runs in groups.items() if key[0] == task]
        if not rows:
            continue
        lines += [
            f'**{TASK_TITLES[task]}**', '',
            '| model | operator | PSNR (dB), mean ± std | per seed | per validation set | seeds | iterations | '
            'parameters | wall time per run | paper (full size) |', '|---|---|---|---|---|---|---|---|---|---|'
        ]
        references = [inputs[task]] if task in inputs else []
        references += results.get('linear', {}).get(task, {}).values()
        for reference in references:
            lines.append(f'| {reference["label"]} | — | {reference["psnr"]:.2f} | | '
                         f'{_per_set([reference.get("per_set")])} | | | | | |')
        for (task_, operator), runs in rows:
            mean, std = mean_std([r['final_psnr'] for r in runs])
            spread = f'{mean:.2f} ± {std:.2f}' if math.isfinite(std) else f'{mean:.2f}'
            per_seed = ', '.join(f'{r["final_psnr"]:.2f}' for r in runs)
            iterations = ', '.join(sorted({str(r['total_iter']) for r in runs}))
            params = ', '.join(sorted({f'{p:,}' for p in map(_params, runs) if p is not None})) or '—'
            walls = [r['wall_s'] for r in runs if 'wall_s' in r]
            wall = f'{sum(walls) / len(walls) / 60:.1f} min' if walls else '—'
            lines.append(f'| {MODEL_NAMES[(task_, operator)]} | {operator} | {spread} | {per_seed} | '
                         f'{_per_set([r.get("per_set") for r in runs])} | {",".join(str(r["seed"]) for r in runs)} | '
                         f'{iterations} | {params} | {wall} | {PAPER_PSNR[(task_, operator)]} |')
        lines.append('')
    return '\n'.join(lines)


def plot_curves(results, path):
    """PNG: validation PSNR against iteration, one panel per task, mean over seeds with the seeds' range, the
    input's PSNR as a dashed line and, for a known-kernel task, the Wiener filter's as a dotted one."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = group_runs(results)
    inputs = results.get('inputs', {})
    tasks = [task for task in TASKS if any(key[0] == task for key in groups)]
    columns = min(len(tasks), 2)
    rows = math.ceil(len(tasks) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax, task in zip(axes.flat, tasks):
        for (task_, operator), runs in groups.items():
            if task_ != task:
                continue
            # every iteration any seed validated at (a run stopped and resumed may lack the one before the stop)
            curves = [dict(map(tuple, r['curve'])) for r in runs]
            iterations = sorted({it for curve in curves for it in curve})
            columns = [[curve[it] for curve in curves if it in curve] for it in iterations]
            mean = [sum(col) / len(col) for col in columns]
            line, = ax.plot(iterations, mean, marker='o', label=f'{MODEL_NAMES[(task_, operator)]} ({len(runs)} seeds)')
            ax.fill_between(iterations, [min(c) for c in columns], [max(c) for c in columns], color=line.get_color(),
                            alpha=0.2)
        if task in inputs:
            ax.axhline(inputs[task]['psnr'], color='gray', linestyle='--', label=inputs[task]['label'])
        wiener = results.get('linear', {}).get(task, {}).get('non_blind')
        if task in KNOWN_TASKS and wiener:  # the blind tasks' Wiener rows (about 6 dB up) would squash their curves
            ax.axhline(wiener['psnr'], color='black', linestyle=':', label=wiener['label'])
        ax.set_title(textwrap.fill(TASK_TITLES[task], 80), fontsize=8)  # two panels side by side: wrap
        ax.set_xlabel('iteration')
        ax.set_ylabel('validation PSNR (dB)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='lower right' if task in KNOWN_TASKS else 'best')  # below the Wiener line
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def time_variants(task, shared_root, repeats=20):
    """Seconds per training iteration (forward, L1 loss, backward, Adam step on one batch of the config's
    shape) of each variant of ``task``, built from its config in this process; the variants run interleaved,
    repeat by repeat, so load changes hit them alike. Returns ``{operator: median seconds}``."""
    import torch

    import converse_basicsr  # noqa: F401
    from basicsr.archs import build_network

    torch.manual_seed(0)
    steps = {}
    for task_, operator in VARIANTS:
        if task_ != task:
            continue
        opt = derive_options(load_yaml(config_path(task, operator)), task, operator, 0, shared_root, False)
        train = opt['datasets']['train']
        net = build_network(dict(opt['network_g'])).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=opt['train']['optim_g']['lr'])
        channels = 1 if train.get('color') == 'gray' else 3
        size = train['gt_size'] // opt['scale']
        lq = torch.rand(train['batch_size_per_gpu'], channels, size, size)
        gt = torch.rand(train['batch_size_per_gpu'], channels, size * opt['scale'], size * opt['scale'])

        def step(net=net, optimizer=optimizer, lq=lq, gt=gt):
            optimizer.zero_grad()
            torch.nn.functional.l1_loss(net(lq), gt).backward()
            optimizer.step()

        steps[operator] = step
    times = {operator: [] for operator in steps}
    for repeat in range(repeats + 2):
        for operator, step in steps.items():
            start = time.perf_counter()
            step()
            if repeat >= 2:  # two warm-up iterations
                times[operator].append(time.perf_counter() - start)
    return {operator: statistics.median(values) for operator, values in times.items()}


def default_shared():
    return os.environ.get('CONVERSE_SHARED', str(REPO_ROOT.parent / 'shared'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help=f'one seed, 1/{QUICK_DIVISOR} of the iterations (at most {QUICK_MAX_ITER})')
    parser.add_argument(
        '--seeds', type=int, nargs='+', help='seeds to train and to show in the table and plot '
        '(default: each task\'s seeds, ' + ', '.join(f'{t} {" ".join(map(str, s))}'
                                                     for t, s in TASK_SEEDS.items()) + '; --quick: 0)')
    parser.add_argument('--tasks', nargs='+', choices=TASKS,
                        help='tasks to train (default: all; --quick: all but ' + ', '.join(KNOWN_TASKS) + ')')
    parser.add_argument('--shared', default=default_shared(), help='folder holding datasets/, testsets/, reference/')
    parser.add_argument('--work-dir', help='experiments, derived configs and logs (default results/ablation[_quick])')
    parser.add_argument(
        '--results', help='results JSON; table (.md) and plot (.png) go beside it '
        '(default docs/ablation/ablation_results.json, --quick: <work-dir>/ablation_results.json)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per run (default 1)')
    parser.add_argument('--jobs', type=int,
                        help='runs trained at the same time (default 1; with --quick, 2 where there are 2 cores)')
    parser.add_argument('--table-only', action='store_true', help='only rebuild the table and plot')
    parser.add_argument(
        '--speed', choices=TASKS, metavar='TASK',
        help='only time one training iteration of each variant of TASK, side by side in this '
        'process (run it on an idle machine); saved in the results file')
    args = parser.parse_args(argv)
    args.tasks = args.tasks or list(QUICK_TASKS if args.quick else TASKS)
    args.task_seeds = {
        task: tuple(args.seeds) if args.seeds else (0, ) if args.quick else TASK_SEEDS[task]
        for task in TASKS
    }
    if args.jobs is None:  # a quick run's one-thread runs are short: two at a time where two cores are free
        args.jobs = min(2, os.cpu_count() or 1) if args.quick else 1
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, not {args.jobs}')
    args.work_dir = args.work_dir or str(REPO_ROOT / 'results' / ('ablation_quick' if args.quick else 'ablation'))
    args.results = args.results or str(
        Path(args.work_dir) / 'ablation_results.json' if args.quick else REPO_ROOT / 'docs' / 'ablation' /
        'ablation_results.json')
    return args


def run_pending(pending, results, results_path, args):
    """Train the ``(task, operator, seed)`` runs, ``args.jobs`` at a time (each its own converse-train
    process with ``args.threads`` threads), saving the results file after each; returns the failed keys."""
    failed = []

    def one(task, operator, seed):
        key = run_key(task, operator, seed)
        print(f'[{time.strftime("%H:%M:%S")}] training {key}', flush=True)
        try:
            return key, train_one(task, operator, seed, args)
        except (RuntimeError, ValueError) as error:  # keep going; a rerun retries only the failed runs
            print(f'ablation: {key} failed: {error}', file=sys.stderr, flush=True)
            return key, None

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(one, *run) for run in pending]):
            key, run = future.result()
            if run is None:
                failed.append(key)
                continue
            results.update(update_results(results_path, 'runs', key, run))  # only this thread writes
            print(
                f'[{time.strftime("%H:%M:%S")}] {key}: {run["final_psnr"]:.4f} dB after {run["total_iter"]} '
                f'iterations, {run["wall_s"]:.0f} s', flush=True)
    return failed


def measure_speed(task, results, results_path, args):
    seconds = time_variants(task, args.shared)
    baseline = next(op for t, op in VARIANTS if t == task and op != 'converse')
    update_results(
        results_path, 'speed', task, {
            'seconds_per_iter': {op: round(v, 5)
                                 for op, v in seconds.items()}, 'ratio': seconds['converse'] / seconds[baseline],
            'baseline': baseline, 'threads': args.threads, 'load_average': os.getloadavg()[0]
        })
    for operator, value in seconds.items():
        print(f'{MODEL_NAMES[(task, operator)]} ({operator}): {value * 1000:.1f} ms per training iteration')
    print(f'ratio converse / {baseline}: {seconds["converse"] / seconds[baseline]:.2f} '
          f'({args.threads} thread(s), load average {os.getloadavg()[0]:.2f} when done)')


def main(argv=None):
    args = parse_args(argv)
    results_path = Path(args.results)
    try:
        results = load_results(results_path)
    except ValueError as error:  # left as it is: a later update_results would meet the same error before writing
        raise SystemExit(f'ablation: {error}') from None
    if args.speed:
        import torch
        torch.set_num_threads(args.threads)
        return measure_speed(args.speed, results, results_path, args)
    failed = []
    if not args.table_only:
        for missing in ('datasets/Train400', 'testsets/Set12', 'testsets/Set5', 'testsets/Set14', 'reference/kernels'):
            if not (Path(args.shared) / missing).exists():
                raise SystemExit(f'ablation: {Path(args.shared) / missing} is missing '
                                 '(set --shared or CONVERSE_SHARED)')
        command = 'python scripts/ablation.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
        for task in args.tasks:
            results = update_results(results_path, 'commands', task, command)
            if task not in results.get('inputs', {}):
                results = update_results(results_path, 'inputs', task, input_psnr(task, args.shared))
            if task in DEBLUR_TASKS and task not in results.get('linear', {}):
                results = update_results(results_path, 'linear', task, linear_psnr(task, args.shared))
        seeds = sorted({seed for task in args.tasks for seed in args.task_seeds[task]})
        pending = [
            (task, operator, seed) for seed in seeds for task, operator in VARIANTS  # seed-major
            if task in args.tasks and seed in args.task_seeds[task]
            and run_key(task, operator, seed) not in results['runs']
        ]
        failed = run_pending(pending, results, results_path, args)
    if not results['runs']:
        raise SystemExit(f'ablation: no runs in {results_path}')
    shown = dict(results,
                 runs={key: run
                       for key, run in results['runs'].items() if run['seed'] in args.task_seeds[run['task']]})
    table = build_table(shown)
    write_text_atomic(results_path.with_suffix('.md'), table)
    plot_curves(shown, results_path.with_name(results_path.stem.replace('results', 'psnr') + '.png'))
    print(table)
    if failed:
        raise SystemExit(f'ablation: {len(failed)} run(s) failed: {", ".join(failed)}; rerun the command to retry them')


if __name__ == '__main__':
    main()
