"""``scripts/benchmark.py --load N``: speed with N busy competing processes beside every measurement.

The normal case on a workstation or a shared server is a machine that is not idle: DataLoader workers,
several training processes, a notebook beside a run. With ``--load N`` the benchmark starts N processes that
spin on a core each (``while True: pass``, in Python) for the whole measurement and ends them itself, also
on Ctrl-C or an error (and a competing process whose parent is gone stops by itself). It measures, at 1 and
2 threads (``torch.set_num_threads``), each method 5 times after a warm-up call, interleaved repeat by
repeat, and prints the median and the minimum:

- Converse2D (C = 128, k = 7, s = 1, p = 6, forward, 256², channels first): ours, the literal algorithm
  (``ops/literal.py``) and a plain ``torch.fft.rfft2`` + ``irfft2`` of the same padded map;
- Converse-DnCNN eval at 1×1×256² and a train step (Adam, L1, 8×1×64² patches) whose batches come from a
  DataLoader with 2 worker processes (the denoising dataset on synthetic PNGs, as ``num_worker_per_gpu: 2``),
  each against the Conv-DnCNN twin (the same arch with ``operator: conv``).

Then it checks the targets: ours at least 4× the literal algorithm, ours on 2 threads not slower than on 1
(medians), and ours' median within 1.5× of its minimum. ``--load 0`` prints the same tables without
competing processes (the idle figures).

    python scripts/benchmark.py --load 1
    python scripts/benchmark.py --load 0 --json idle.json
"""
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch.nn import functional as F

from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.ops import Converse2D, converse2d
from converse_basicsr.ops.literal import literal_converse2d

THREADS = (1, 2)
REPEATS = 5
TARGET_SPEEDUP, TARGET_SPREAD = 4.0, 1.5
# a busy loop that stops by itself once its parent is gone (checked every million iterations, ~20 ms)
BUSY = 'import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10 ** 6):\n        pass\n'


@contextlib.contextmanager
def competing_processes(n):
    """``n`` processes spinning on a core each, for the duration of the block; ended on leaving it."""
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, '-c', BUSY]))
        time.sleep(0.5 if n else 0)  # until they spin
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def timed(calls, repeats=REPEATS):
    """``{name: [seconds] * repeats}`` of each ``calls[name]()`` after one warm-up call, interleaved."""
    for fn in calls.values():
        fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def operator_calls(quick):
    channels, size = (16, 32) if quick else (128, 256)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, size, size, generator=g)
    weight = torch.softmax(torch.randn(1, channels, 49, generator=g), -1).view(1, channels, 7, 7)
    bias = torch.randn(1, channels, 1, 1, generator=g) - 2
    padded = F.pad(x, (6, ) * 4, mode='circular').contiguous()

    def ours():
        with torch.no_grad():
            converse2d(x, weight, bias, 1, 6, 'circular')

    def literal():
        with torch.no_grad():
            literal_converse2d(x, weight, bias, 1, 6, 'circular')

    def plain_fft():
        torch.fft.irfft2(torch.fft.rfft2(padded), s=padded.shape[-2:])

    label = f'Converse2D C={channels} k=7 s=1 p=6, fwd, {size}²'
    return label, {'ours': ours, 'literal': literal, 'torch.fft rfft2+irfft2': plain_fft}


def dncnn_pair(quick):
    torch.manual_seed(0)
    blocks, features = (2, 16) if quick else (20, 64)
    return {op: ConverseDnCNN(num_feat=features, num_block=blocks, operator=op) for op in ('converse', 'conv')}


def eval_calls(quick):
    models = dncnn_pair(quick)
    size = 32 if quick else 256
    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(1))
    calls = {}
    for op, model in models.items():
        model.eval()

        def call(model=model):
            for module in model.modules():  # every call pays for its transfer functions, as a new size would
                if isinstance(module, Converse2D):
                    module._cache.clear()
            with torch.no_grad():
                model(x)

        calls[op] = call
    return f'Converse-DnCNN eval, 1×1×{size}²', calls


def write_images(folder, count=16, size=180):
    """``count`` synthetic gray PNGs (smoothed noise) of ``size``² for the training loader."""
    import cv2
    rng = np.random.default_rng(0)
    for i in range(count):
        img = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 3)
        cv2.imwrite(os.path.join(folder, f'{i:03d}.png'), np.clip(img * 4 - 384, 0, 255).astype(np.uint8))


def train_calls(quick, folder, stack):
    """One train step per call for each model, its batch from its own 2-worker DataLoader (entered on ``stack``
    so that the workers end with it)."""
    from converse_basicsr.data.noise_dataset import GaussianNoiseDataset
    batch, patch = (2, 32) if quick else (8, 64)
    dataset = GaussianNoiseDataset(
        dict(name='bench', type='GaussianNoiseDataset', phase='train', dataroot_gt=folder, color='gray', sigma=25,
             gt_size=patch, use_hflip=True, use_rot=True))
    calls = {}
    for op, model in dncnn_pair(quick).items():
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10**6)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=2,
                                             persistent_workers=True)
        batches = iter(loader)
        stack.callback(getattr(batches, '_shutdown_workers', lambda: None))  # the workers end with the run

        def call(model=model, optimizer=optimizer, batches=batches):
            data = next(batches)
            optimizer.zero_grad(set_to_none=True)
            F.l1_loss(model(data['lq']), data['gt']).backward()
            optimizer.step()

        calls[op] = call
    return f'Converse-DnCNN train step, {batch}×1×{patch}², 2 loader workers', calls


def summary(times):
    return {name: {'median': statistics.median(t), 'min': min(t), 'all': t} for name, t in times.items()}


def print_operator(label, results):
    print(f'\n| {label} | threads | median (s) | min (s) | median ÷ min | literal ÷ method (median) |\n'
          '|---|---:|---:|---:|---:|---:|')
    for threads, rows in results.items():
        for name, r in rows.items():
            speedup = rows['literal']['median'] / r['median']
            print(f"| {name} | {threads} | {r['median']:.3f} | {r['min']:.3f} | {r['median'] / r['min']:.2f} | "
                  f'{speedup:.1f}× |')


def print_models(label, results):
    print(f'\n| {label} | threads | Converse median (min) (s) | Conv median (min) (s) | Converse ÷ Conv (median) |\n'
          '|---|---:|---:|---:|---:|')
    for threads, rows in results.items():
        c, v = rows['converse'], rows['conv']
        print(f"| | {threads} | {c['median']:.3f} ({c['min']:.3f}) | {v['median']:.3f} ({v['min']:.3f}) | "
              f"{c['median'] / v['median']:.2f} |")


def targets(results):
    """The issue's three targets for ours, from the operator table: ``[(text, met)]``."""
    ours = {t: rows['ours'] for t, rows in results.items()}
    speedups = {t: rows['literal']['median'] / rows['ours']['median'] for t, rows in results.items()}
    spreads = {t: r['median'] / r['min'] for t, r in ours.items()}
    one, two = ours[THREADS[0]]['median'], ours[THREADS[-1]]['median']
    return [
        (f'ours ≥ {TARGET_SPEEDUP:.0f}× the literal algorithm: ' + ', '.join(f'{s:.1f}× on {t}'
                                                                             for t, s in speedups.items()),
         min(speedups.values()) >= TARGET_SPEEDUP),
        (f'ours on {THREADS[-1]} threads not slower than on {THREADS[0]}: {two:.3f} s vs {one:.3f} s', two <= one),
        (f'ours median ≤ {TARGET_SPREAD}× min: ' + ', '.join(f'{s:.2f} on {t}' for t, s in spreads.items()),
         max(spreads.values()) <= TARGET_SPREAD),
    ]


def measure_all(quick, stack):
    """The three sections at each thread count: ``{section: (label, {threads: summary})}``."""
    folder = stack.enter_context(tempfile.TemporaryDirectory())
    write_images(folder)
    sections = {
        'operator': operator_calls(quick), 'eval': eval_calls(quick), 'train': train_calls(quick, folder, stack)
    }
    results = {key: (label, {}) for key, (label, _) in sections.items()}
    threads_before = torch.get_num_threads()
    try:
        for threads in THREADS:
            torch.set_num_threads(threads)
            for key, (_, calls) in sections.items():
                results[key][1][threads] = summary(timed(calls, 2 if quick else REPEATS))
                print(f'  {key}, {threads} thread(s): done, load average {os.getloadavg()[0]:.2f}', flush=True)
    finally:
        torch.set_num_threads(threads_before)
    return results


def under_load(args):
    """The ``--load N`` run: measure with N competing processes, print the tables and the targets."""
    n = args.load
    if n < 0:
        raise SystemExit(f'--load must be >= 0, got {n}')
    print(
        f'--load {n}: {n} busy process(es) beside every measurement; {os.cpu_count()} CPUs; torch '
        f'{torch.__version__}; load average before: {os.getloadavg()[0]:.2f}', flush=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(competing_processes(n))
        results = measure_all(args.quick, stack)
    label, operator = results['operator']
    print_operator(label, operator)
    for key in ('eval', 'train'):
        print_models(*results[key])
    checks = targets(operator)
    print('\nTargets (set for --load 1 on a 2-core machine):')
    for text, met in checks:
        print(f"- {'met' if met else 'NOT met'}: {text}")
    return {'load': n, 'results': results, 'targets': [{'target': t, 'met': m} for t, m in checks]}
