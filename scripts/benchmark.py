"""Speed and peak memory of Converse2D and the Converse models against the literal baseline.

Every case is timed three ways in the same run, interleaved repeat by repeat so that a change in
machine load hits all three alike:

- ``ours``: ``converse_basicsr`` as shipped (the polyphase spectral solve, custom backward);
- ``baseline``: the literal published algorithm (``ops/literal.py``); for models, the same arch
  with every Converse2D layer calling ``literal_converse2d``;
- ``conv``: a depthwise convolution with the same kernel (for ``scale > 1`` a depthwise
  transposed convolution of stride ``scale``); for models, the arch built with ``operator='conv'``.

Times are the best of the repeats after one warm-up call (the cache of the frequency response is
cleared before every call of ``ours``, except in the rows marked *cached*, so each call pays for
its transfer function as a new image size would). Peak memory is the largest amount of memory
allocated during the call beyond what was allocated before it (inputs and parameters excluded,
gradients, saved tensors and the temporaries inside every op included): on CUDA from
``torch.cuda.max_memory_allocated``; on CPU from the allocation events that the PyTorch profiler
records (``profile_memory=True``: every CPU-allocator allocation and free with its size, summed
in time order). Memory that libraries allocate outside PyTorch's allocator (MKL's FFT work
buffers) is not seen on CPU.

    python scripts/benchmark.py                 # the full table (a few minutes on 2 CPU cores)
    python scripts/benchmark.py --quick         # small sizes, one repeat
    python scripts/benchmark.py --smoke         # CI-sized: two tiny operator cases, a few seconds
    python scripts/benchmark.py --device cuda --json bench.json
    python scripts/benchmark.py --compile       # eager against torch.compile
    python scripts/benchmark.py --scaling       # Converse2D per pixel at 256², 512², 1024², 481×321
    python scripts/benchmark.py --side-by-side  # a plain process and the entry points' setting, one table
    python scripts/benchmark.py --onnx --onnx-dir /tmp/onnx  # ONNX Runtime against eager (export extra)
    python scripts/benchmark.py --load 1        # one busy process beside it: ours, literal, torch.fft; DnCNN

``--side-by-side`` runs the same benchmark twice in fresh subprocesses, once as a plain Python process
and once with ``--retain-freed-memory`` (what ``converse-test``, ``converse-train``, ``converse-restore``
and ``scripts/demo.py`` set), and prints both figures of every row beside each other.
"""
import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN  # noqa: E402
from converse_basicsr.archs.converse_srresnet_arch import ConverseMSRResNet  # noqa: E402
from converse_basicsr.ops import Converse2D, buffers, converse2d  # noqa: E402
from converse_basicsr.ops.literal import literal_converse2d  # noqa: E402
from converse_basicsr.utils.runtime import retain_freed_memory  # noqa: E402

METHODS = ('ours', 'baseline', 'conv')

# --- measuring ---------------------------------------------------------------------------------


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(calls, device, repeats, budget_s, memory=True):
    """Peak memory (from the warm-up call) and best wall time of each of ``calls`` ({name: fn}).

    The timed repeats are interleaved (ours, baseline, conv, ours, ...) and stop after ``budget_s``
    seconds (at least one each).
    """
    peaks = {}
    for name, fn in calls.items():
        peaks[name] = peak_memory(fn, device) if memory else None
    best = {name: float('inf') for name in calls}
    start = time.perf_counter()
    for _ in range(repeats):
        for name, fn in calls.items():
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return best, peaks


def peak_memory(fn, device):
    """Peak bytes allocated during ``fn()`` beyond what was allocated before it.

    CUDA: ``max_memory_allocated``. CPU: the PyTorch profiler's allocation events (every allocation
    and free of the CPU allocator, summed in time order) plus the peak of what numpy allocated
    (traced by ``tracemalloc``: the pocketfft outputs); the sum bounds the true peak from above. The
    operator's pool of reused results (``ops/buffers.py``) is emptied first, so that the results it would
    hand out again are counted as what they are: memory the call needs.
    """
    gc.collect()
    buffers.release()
    if device.type == 'cuda':
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    tracemalloc.start()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        numpy_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    sizes = []

    def walk(nodes):
        for node in nodes:
            if node.tag == _EventType.Allocation:
                sizes.append((node.start_time_ns, node.extra_fields.alloc_size))
            walk(node.children)

    walk(prof.profiler.kineto_results.experimental_event_tree())
    live = peak = 0
    for _, size in sorted(sizes):
        live += size
        peak = max(peak, live)
    return peak + numpy_peak


# --- the cases ---------------------------------------------------------------------------------


def clear_caches(model):
    for module in model.modules():
        if isinstance(module, Converse2D):
            module._cache.clear()


def literal_forward(self, x):
    return literal_converse2d(x, self.weight, self.bias, self.scale, self.padding, self.padding_mode, self.eps)


def with_literal_operator(model):
    """The same model (weights shared) with every Converse2D computing the literal algorithm."""
    for module in model.modules():
        if isinstance(module, Converse2D):
            module.forward = types.MethodType(literal_forward, module)
    return model


def operator_case(channels, kernel_size, padding, scale, size, device, backward, layout='contiguous'):
    g = torch.Generator().manual_seed(0)
    height, width = size if isinstance(size, tuple) else (size, size)
    x = torch.rand(1, channels, height, width, generator=g).to(device)
    if layout == 'channels_last':  # as inside the archs
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.softmax(torch.randn(1, channels, kernel_size**2, generator=g), -1)
    weight = weight.view(1, channels, kernel_size, kernel_size).to(device)
    bias = (torch.randn(1, channels, 1, 1, generator=g) - 2).to(device)
    conv_weight = weight.transpose(0, 1).contiguous()  # (C, 1, k, k)
    grad = torch.randn(1, channels, height * scale, width * scale, generator=g).to(device)

    def ours(x_, w_, b_):
        return converse2d(x_, w_, b_, scale, padding, 'circular')

    def baseline(x_, w_, b_):
        return literal_converse2d(x_, w_, b_, scale, padding, 'circular')

    def conv(x_, w_, b_):
        if scale == 1:
            return F.conv2d(x_, w_, padding='same', groups=channels)
        out = F.conv_transpose2d(x_, w_, stride=scale, groups=channels)
        return out[..., :height * scale, :width * scale]

    fns = {'ours': (ours, weight), 'baseline': (baseline, weight), 'conv': (conv, conv_weight)}
    calls = {}
    if not backward:  # the module in eval mode, its frequency response cached after the first call
        layer = Converse2D(channels, channels, kernel_size, scale, padding, 'circular').to(device).eval()
        layer.load_state_dict({'weight': weight, 'bias': bias})

        def cached():
            with torch.no_grad():
                layer(x)

        calls['ours_cached'] = cached
    for name, (fn, w) in fns.items():
        if backward:
            leaves = [t.clone().requires_grad_(True) for t in (x, w, bias)]

            def call(fn=fn, leaves=leaves):
                for t in leaves:
                    t.grad = None
                fn(*leaves).backward(grad)
        else:

            def call(fn=fn, w=w):
                with torch.no_grad():
                    fn(x, w, bias)

        calls[name] = call
    check = None
    if not backward and height * width <= 256 * 256:
        with torch.no_grad():
            ref = literal_converse2d(x.double(), weight.double(), bias.double(), scale, padding, 'circular')
            out = ours(x, weight, bias)
            check = ((out.double() - ref).abs().max() / ref.abs().max()).item()
    return calls, check


def model_case(kind, device, quick):
    torch.manual_seed(0)
    if kind in ('dncnn', 'dncnn_train'):
        build, shape = (lambda op: ConverseDnCNN(operator=op)), ((8, 1, 64, 64) if kind == 'dncnn_train' else
                                                                 (1, 1, 256, 256))
        if quick:
            shape = (2, 1, 32, 32) if kind == 'dncnn_train' else (1, 1, 64, 64)
    else:
        build, shape = (lambda op: ConverseMSRResNet(operator=op)), ((1, 3, 32, 32) if quick else (1, 3, 64, 64))
    ours_model = build('converse').to(device)
    baseline_model = with_literal_operator(build('converse').to(device))
    baseline_model.load_state_dict(ours_model.state_dict())
    conv_model = build('conv').to(device)
    models = {'ours': ours_model, 'baseline': baseline_model, 'conv': conv_model}
    g = torch.Generator().manual_seed(1)
    x = torch.rand(*shape, generator=g).to(device)
    calls = {}
    if kind == 'dncnn_train':
        target = torch.rand(*shape, generator=g).to(device)
        for name, model in models.items():
            model.train()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

            def call(model=model, optimizer=optimizer):
                optimizer.zero_grad(set_to_none=True)
                F.l1_loss(model(x), target).backward()
                optimizer.step()

            calls[name] = call
        return calls, None
    for name, model in models.items():
        model.eval()

        def call(model=model):
            clear_caches(model)
            with torch.no_grad():
                model(x)

        calls[name] = call

    def cached():
        with torch.no_grad():
            ours_model(x)

    calls['ours_cached'] = cached
    return calls, None


def cases(quick):
    op = [  # (label, channels, k, padding, scale, size, backward, repeats)
        ('s=1 C=128 k=7 p=6, 64²', 128, 7, 6, 1, 64, False, 10),
        ('s=1 C=128 k=7 p=6, 256²', 128, 7, 6, 1, 256, False, 3),
        ('s=1 C=128 k=7 p=6, 512²', 128, 7, 6, 1, 512, False, 2),
        ('s=1 C=128 k=7 p=6, 64², fwd+bwd', 128, 7, 6, 1, 64, True, 10),
        ('s=1 C=128 k=7 p=6, 256², fwd+bwd', 128, 7, 6, 1, 256, True, 2),
        ('s=2 C=64 k=2 p=2, 64²', 64, 2, 2, 2, 64, False, 10),
        ('s=2 C=64 k=2 p=2, 128²', 64, 2, 2, 2, 128, False, 5),
        ('s=2 C=64 k=2 p=2, 128², fwd+bwd', 64, 2, 2, 2, 128, True, 3),
    ]
    models = [('Converse-DnCNN eval, 1×1×256²', 'dncnn', 2), ('Converse-DnCNN train step, 8×1×64²', 'dncnn_train', 2),
              ('Converse-SRResNet ×4 eval, 1×3×64²', 'srresnet', 2)]
    if quick:
        op = [('s=1 C=16 k=7 p=6, 32²', 16, 7, 6, 1, 32, False, 1),
              ('s=1 C=16 k=7 p=6, 32², fwd+bwd', 16, 7, 6, 1, 32, True, 1),
              ('s=2 C=16 k=2 p=2, 32²', 16, 2, 2, 2, 32, False, 1)]
        models = [(label, kind, 1) for label, kind, _ in models]
    return op, models


SCALING_SIZES = ((256, 256), (512, 512), (1024, 1024), (321, 481))


def scaling_cases(channels):
    """Converse2D as in Converse-DnCNN (k=7, p=6, s=1, channels last) at growing sizes, eval and fwd+bwd."""
    return [(f'scaling C={channels}, {h}×{w}{label}', channels, 7, 6, 1, (h, w), backward, 2)
            for backward, label in ((False, ''), (True, ', fwd+bwd')) for h, w in SCALING_SIZES]


def smoke_cases():
    return [('s=1 C=8 k=7 p=6, 16²', 8, 7, 6, 1, 16, False, 1),
            ('s=2 C=8 k=2 p=2, 16², fwd+bwd', 8, 2, 2, 2, 16, True, 1)], []


def run(args):
    device = torch.device(args.device)
    if args.scaling:
        op_cases, model_cases = scaling_cases(args.scaling_channels), []
    elif args.smoke:
        op_cases, model_cases = smoke_cases()
    else:
        op_cases, model_cases = cases(args.quick)
    rows = []
    budget = 1.0 if args.quick else args.budget
    layout = 'channels_last' if args.scaling else 'contiguous'
    jobs = [(label, 'operator', repeats,
             lambda c=tuple(c), bwd=bwd: operator_case(*c, device=device, backward=bwd, layout=layout))
            for label, *c, bwd, repeats in op_cases]
    jobs += [(label, 'model', repeats, lambda kind=kind: model_case(kind, device, args.quick))
             for label, kind, repeats in model_cases]
    for label, group, repeats, make in jobs:
        if args.cases and not any(key in label for key in args.cases):
            continue
        calls, check = make()
        times, memory = measure(calls, device, 1 if (args.quick or args.smoke) else repeats, budget, not args.no_memory)
        if args.no_memory:
            memory = {}
        row = {
            'case': label, 'group': group, 'time_s': times, 'peak_bytes': memory,
            'speedup_vs_baseline': times['baseline'] / times['ours'], 'time_vs_conv': times['ours'] / times['conv']
        }
        if memory:
            row['memory_vs_baseline'] = memory['ours'] / max(memory['baseline'], 1)
        if check is not None:
            row['check'] = check
        if args.scaling:
            row['pixels'] = int(label.split(', ')[1].split('×')[0]) * int(label.split('×')[1].split(',')[0])
        rows.append(row)
        print(format_row(row), flush=True)
        del calls
        gc.collect()
    return rows


def compile_cases(device):
    """Eager against ``torch.compile`` (default inductor backend) for Converse2D and ConverseBlock:
    ``[(label, eager_s, compiled_s, max relative difference)]``."""
    from converse_basicsr.archs.blocks import ConverseBlock
    g = torch.Generator().manual_seed(0)
    layer = Converse2D(128, 128, 7, 1, 6, 'circular').to(device)
    block = ConverseBlock(64, 64, 7, 1, 6).to(device)
    x_layer = torch.rand(1, 128, 256, 256, generator=g).to(device)
    x_block = torch.rand(4, 64, 64, 64, generator=g).to(device)
    rows = []
    for label, module, x in (('Converse2D s=1 C=128 k=7 p=6, 256², fwd+bwd', layer, x_layer),
                             ('ConverseBlock C=64 k=7, 4×64², fwd+bwd', block, x_block)):
        compiled = torch.compile(module)
        results = {}
        for name, fn in (('eager', module), ('compiled', compiled)):

            def call(fn=fn):
                leaf = x.clone().requires_grad_(True)
                out = fn(leaf)
                out.square().mean().backward()
                return out.detach()

            results[name] = call()  # warm-up (compilation)
            times, _ = measure({name: call}, device, 3, 20.0, memory=False)
            results[name + '_s'] = times[name]
        diff = ((results['compiled'] - results['eager']).abs().max() / results['eager'].abs().max()).item()
        rows.append((label, results['eager_s'], results['compiled_s'], diff))
        print(
            f"| {label} | {results['eager_s']:.4f} | {results['compiled_s']:.4f} | "
            f"{results['eager_s'] / results['compiled_s']:.2f}× | {diff:.1e} |", flush=True)
    return rows


def mib(n):
    return f'{n / 2 ** 20:.0f}' if n >= 2**20 else f'{n / 2 ** 20:.2f}'


HEADER = ('| case | ours (s) | baseline (s) | speed-up | depthwise conv (s) | ours / conv | ours, cache warm (s) | '
          'peak MiB ours | peak MiB baseline | memory ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')


def format_row(row):
    t, m = row['time_s'], row['peak_bytes']
    cached = f"{t['ours_cached']:.4f}" if 'ours_cached' in t else '–'
    mem = (f"{mib(m['ours'])} | {mib(m['baseline'])} | {row['memory_vs_baseline']:.2f}" if m else '– | – | –')
    return (f"| {row['case']} | {t['ours']:.4f} | {t['baseline']:.4f} | **{row['speedup_vs_baseline']:.1f}×** | "
            f"{t['conv']:.4f} | {row['time_vs_conv']:.1f} | {cached} | {mem} |")


def per_pixel_table(rows, method):
    """µs per input pixel of ``method`` in the --scaling rows, and its ratio to the first size (256²)."""
    lines = [f'| {method}, per pixel | µs / pixel | ÷ 256² |', '|---|---:|---:|']
    first = {}
    for row in rows:
        kind = 'fwd+bwd' if 'fwd+bwd' in row['case'] else 'eval'
        per_pixel = row['time_s'][method] / row['pixels'] * 1e6
        first.setdefault(kind, per_pixel)
        lines.append(f"| {row['case']} | {per_pixel:.2f} | {per_pixel / first[kind]:.2f} |")
    return '\n'.join(lines)


def run_child(args):
    """This script in a fresh process with ``args``; returns what it wrote with ``--json``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'result.json')
        status = subprocess.run([sys.executable, str(Path(__file__).resolve())] + args + ['--json', path]).returncode
        if status != 0:
            raise SystemExit(f'benchmark.py {" ".join(args)}: the child process exited with status {status}')
        return json.loads(Path(path).read_text())


def side_by_side(argv):
    """The benchmark in two fresh processes, plain and with --retain-freed-memory; both figures per row."""
    results = {}
    for setting, extra in (('plain', []), ('retained', ['--retain-freed-memory'])):
        args = [a for a in argv if a != '--retain-freed-memory'] + extra
        print(f'$ {Path(sys.executable).name} {Path(__file__).name} {" ".join(args)}', flush=True)
        results[setting] = run_child(args)
    print('\n| case | ours, plain (s) | ours, retained (s) | plain ÷ retained | baseline, plain (s) | '
          'baseline, retained (s) | speed-up, plain | speed-up, retained |\n|---|---:|---:|---:|---:|---:|---:|---:|')
    for plain, retained in zip(results['plain']['rows'], results['retained']['rows']):
        tp, tr = plain['time_s'], retained['time_s']
        print(f"| {plain['case']} | {tp['ours']:.4f} | {tr['ours']:.4f} | **{tp['ours'] / tr['ours']:.2f}** | "
              f"{tp['baseline']:.4f} | {tr['baseline']:.4f} | {plain['speedup_vs_baseline']:.1f}× | "
              f"{retained['speedup_vs_baseline']:.1f}× |")
    return results


def without_option(argv, name):
    """``argv`` without ``name VALUE`` and ``name=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + '='):
            out.append(arg)
    return out


def scaling_isolated(argv):
    """``--scaling`` with each size in a fresh process, so that one size's heap does not carry over into the next.

    With ``--retain-freed-memory`` the literal algorithm's freed blocks at 1024² (7.6 GB at its peak) stay in
    the heap; run one after another in one process the sizes needed more than the 24 GB of memory this
    project's machine has.
    """
    rows, env = [], None
    for h, w in SCALING_SIZES:
        result = run_child(argv + ['--cases', f'{h}×{w}', '--quiet-tables'])
        rows += result['rows']
        env = result['environment']
    print(per_pixel_table(rows, 'ours') + '\n\n' + per_pixel_table(rows, 'baseline'))
    return env, rows


def load_section(args):
    """``--load N`` (see ``scripts/benchmark_load.py``), its results also written to ``--json``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark_load import under_load
    result = under_load(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f'wrote {args.json}')
    return result


def environment(device):
    env = {
        'torch': torch.__version__, 'device': str(device), 'threads': torch.get_num_threads(),
        'machine': platform.machine(), 'processor': platform.processor() or platform.machine()
    }
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda'")
    parser.add_argument('--quick', action='store_true', help='small sizes, one repeat: a smoke test')
    parser.add_argument('--json', metavar='PATH', help='also write the results as JSON')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--budget', type=float, default=20.0,
                        help='seconds after which a case stops repeating (default 20)')
    parser.add_argument('--cases', nargs='*', help='run only the cases whose label contains one of these strings')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory measurement')
    parser.add_argument(
        '--retain-freed-memory', action='store_true',
        help="raise glibc's malloc thresholds as the package's entry points do "
        '(converse_basicsr/runtime.py), for ours and the baseline alike; by default they are '
        'left as a plain Python process has them')
    parser.add_argument('--compile', action='store_true',
                        help='instead of the table: eager against torch.compile for Converse2D and ConverseBlock')
    parser.add_argument('--smoke', action='store_true', help='CI-sized: two tiny operator cases, one repeat')
    parser.add_argument(
        '--scaling', action='store_true',
        help='instead of the table: Converse2D (k=7, p=6, channels last) eval and fwd+bwd at '
        f"{', '.join(f'{h}×{w}' for h, w in SCALING_SIZES)}, time per pixel")
    parser.add_argument('--scaling-channels', type=int, default=64, help='channels of the --scaling cases (64)')
    parser.add_argument('--quiet-tables', action='store_true', help=argparse.SUPPRESS)  # a --scaling child process
    parser.add_argument('--side-by-side', action='store_true',
                        help='run twice in fresh subprocesses, plain and with --retain-freed-memory, one table')
    parser.add_argument(
        '--onnx', action='store_true', help='ONNX Runtime against eager: the formulations of one '
        'Converse2D layer, Converse-DnCNN 256² and Converse-SRResNet 128² (needs the export extra)')
    parser.add_argument('--onnx-dir', help='keep (and reuse) the exported .onnx files here (exports take minutes)')
    parser.add_argument('--model-dir', help='where the zoo checkpoints are (for --onnx)')
    parser.add_argument(
        '--load', type=int, metavar='N',
        help='instead of the table: speed with N busy competing processes, ours against the literal '
        'algorithm and torch.fft at 1 and 2 threads, DnCNN eval and train step against Conv-DnCNN '
        '(scripts/benchmark_load.py; 0: the same without competing processes)')
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.onnx:
        from converse_basicsr.export import benchmark as onnx_benchmark
        if args.threads:
            torch.set_num_threads(args.threads)
        rows = onnx_benchmark.run(args.onnx_dir, args.model_dir, quick=args.quick)
        if args.json:
            Path(args.json).write_text(json.dumps({'environment': environment(torch.device('cpu')), 'rows': rows}))
        return None
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error(f'--device {args.device!r}: CUDA is not available')
    if args.side_by_side:
        return side_by_side([a for a in argv if a != '--side-by-side'])
    if args.load is not None:  # speed under load: its own section in scripts/benchmark_load.py
        return load_section(args)
    if args.scaling and not args.cases:
        env, rows = scaling_isolated(without_option(argv, '--json'))
        if args.json:
            Path(args.json).write_text(json.dumps({'environment': env, 'rows': rows}, indent=2))
            print(f'wrote {args.json}')
        return None
    retained = retain_freed_memory() if args.retain_freed_memory else False
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(torch.device(args.device))
    env['retain_freed_memory'] = retained
    print(f"torch {env['torch']}, {env['device']}, {env['threads']} threads, freed memory retained: {retained}" +
          (f", {env['gpu']}" if 'gpu' in env else ''))
    if args.compile:
        print(
            '| torch.compile | eager (s) | compiled (s) | speed-up | max rel. difference |\n|---|---:|---:|---:|---:|')
        rows = [
            dict(zip(('case', 'eager_s', 'compiled_s', 'max_rel_diff'), row))
            for row in compile_cases(torch.device(args.device))
        ]
    else:
        print(HEADER, flush=True)
        rows = run(args)
        if args.scaling and not args.quiet_tables:
            print(per_pixel_table(rows, 'ours') + '\n\n' + per_pixel_table(rows, 'baseline'))
    if args.json:
        Path(args.json).write_text(json.dumps({'environment': env, 'rows': rows}, indent=2))
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
