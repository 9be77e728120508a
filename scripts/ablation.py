"""Small-budget ablation: train Converse vs Conv / ConvT variants through converse-train and tabulate them.

Runs every config of ``options/train/ablation/`` (denoising sigma 25: reduced DnCNN family with
``operator: converse | conv | convtranspose``; blind gray deblurring: reduced ConverseNet vs ConvNet)
for each seed, one after the other, with ``python -m converse_basicsr.train -opt <derived config>``.
The derived config differs from the shipped one only in ``name``, ``manual_seed``, the ``../shared``
paths (made absolute) and, with ``--quick``, the iteration counts. Each run's validation curve is read
from its training log; results are saved atomically after every run, and runs already in the results
file are skipped, so an interrupted run resumes where it stopped. Then a Markdown table (mean ± standard
deviation over seeds of the final validation PSNR) and a PNG of validation PSNR against iteration are
written beside the results file.

    python scripts/ablation.py            # full run: 3 seeds, results in docs/ablation/
    python scripts/ablation.py --jobs 2   # the same, two runs at a time
    python scripts/ablation.py --quick    # first look: 1 seed, 1/8 of the iterations, in results/ablation_quick/
    python scripts/ablation.py --table-only   # rebuild table and plot from the results file
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from converse_basicsr.data.io import write_atomic, write_text_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / 'options' / 'train' / 'ablation'
# (task, operator) in table order; the config of each is options/train/ablation/<task>_<operator>.yml
VARIANTS = (('denoise', 'converse'), ('denoise', 'conv'), ('denoise', 'convtranspose'), ('deblur', 'converse'),
            ('deblur', 'conv'))
TASK_TITLES = {
    'denoise': 'Denoising σ = 25, Set12 (reduced DnCNN family)',
    'deblur': 'Blind deblurring, gray Set12, kernels 1–5, σ = 2.55 (reduced ConverseNet / ConvNet)',
}
MODEL_NAMES = {('denoise', 'converse'): 'Converse-DnCNN', ('denoise', 'conv'): 'Conv-DnCNN',
               ('denoise', 'convtranspose'): 'ConvT-DnCNN', ('deblur', 'converse'): 'ConverseNet',
               ('deblur', 'conv'): 'ConvNet'}
# The paper's full-size, full-budget numbers, for the ordering only (different sets for deblurring: BSD100 kernel 1).
PAPER_PSNR = {('denoise', 'converse'): '30.70', ('denoise', 'conv'): '30.64', ('denoise', 'convtranspose'): '30.61',
              ('deblur', 'converse'): '27.69 (BSD100, k1)', ('deblur', 'conv'): '25.26 (BSD100, k1)'}
QUICK_DIVISOR = 8
SHARED_PREFIX = '../shared/'
VALIDATION_RE = re.compile(r'Validation (\S+)\n\s*# psnr: (\S+)')


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
    ``../shared`` paths and, for ``quick``, 1/QUICK_DIVISOR of the iterations (schedule scaled alike)."""
    opt = rewrite_shared_paths(opt, shared_root)
    opt['name'] = f'ablation_{task}_{operator}_seed{seed}' + ('_quick' if quick else '')
    opt['manual_seed'] = seed
    if quick:
        total = max(2, round(opt['train']['total_iter'] / QUICK_DIVISOR / 2) * 2)
        ratio = total / opt['train']['total_iter']
        opt['train']['total_iter'] = total
        opt['train']['scheduler']['milestones'] = [
            max(1, round(m * ratio)) for m in opt['train']['scheduler']['milestones']
        ]
        opt['val']['val_freq'] = total // 2
    return opt


def parse_validation_log(text, val_freq, total_iter):
    """``{dataset: [(iteration, psnr), ...]}`` from a BasicSR training log.

    SRModel logs ``Validation <name>`` / ``# psnr: <value>`` every ``val_freq`` iterations and once more
    after the loop; the k-th block of a dataset is iteration ``k * val_freq``, the extra one (the
    unchanged final model) is kept only when ``total_iter`` is not a multiple of ``val_freq``."""
    in_loop = total_iter // val_freq
    curves = {}
    for name, value in VALIDATION_RE.findall(text):
        psnr = float(value)
        if not math.isfinite(psnr):
            raise ValueError(f'non-finite validation PSNR {value!r} for {name}')
        curves.setdefault(name, []).append(psnr)
    parsed = {}
    for name, values in curves.items():
        points = [((k + 1) * val_freq, v) for k, v in enumerate(values[:in_loop])]
        if total_iter % val_freq and len(values) > in_loop:
            points.append((total_iter, values[in_loop]))
        parsed[name] = points
    return parsed


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


def load_results(path):
    if not Path(path).exists():
        return {'runs': {}}
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    if not isinstance(data.get('runs'), dict):
        raise ValueError(f'{path}: not an ablation results file (no "runs" object)')
    return data


def train_one(task, operator, seed, args):
    """Train one variant through converse-train; returns its results entry."""
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
    command = [sys.executable, '-m', 'converse_basicsr.train', '-opt', str(opt_path)]
    start = time.time()
    with open(log_path, 'w', encoding='utf-8') as log:
        status = subprocess.run(command, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.time() - start
    if status != 0:
        raise RuntimeError(f'{run_key(task, operator, seed)}: converse-train exited with {status}, see {log_path}')
    total_iter = opt['train']['total_iter']
    curves = parse_validation_log(log_path.read_text(encoding='utf-8'), opt['val']['val_freq'], total_iter)
    curve, per_set = summarize_run(curves, total_iter)
    return {
        'task': task, 'operator': operator, 'seed': seed, 'total_iter': total_iter, 'final_psnr': curve[-1][1],
        'curve': curve, 'per_set': per_set, 'wall_s': round(wall, 1), 'threads': args.threads,
        'config': str(config_path(task, operator).relative_to(REPO_ROOT)), 'network_g': shipped['network_g']
    }


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


def build_table(results):
    """Markdown table: per variant, final validation PSNR mean ± std over seeds, each seed, iterations."""
    lines = []
    groups = group_runs(results)
    for task in dict.fromkeys(task for task, _ in VARIANTS):
        rows = [(key, runs) for key, runs in groups.items() if key[0] == task]
        if not rows:
            continue
        lines += [
            f'**{TASK_TITLES[task]}**', '',
            '| model | operator | PSNR (dB), mean ± std | per seed | seeds | iterations | paper (full size) |',
            '|---|---|---|---|---|---|---|'
        ]
        for (task_, operator), runs in rows:
            mean, std = mean_std([r['final_psnr'] for r in runs])
            spread = f'{mean:.2f} ± {std:.2f}' if math.isfinite(std) else f'{mean:.2f}'
            per_seed = ', '.join(f'{r["final_psnr"]:.2f}' for r in runs)
            iterations = ', '.join(sorted({str(r['total_iter']) for r in runs}))
            lines.append(f'| {MODEL_NAMES[(task_, operator)]} | {operator} | {spread} | {per_seed} | '
                         f'{",".join(str(r["seed"]) for r in runs)} | {iterations} | {PAPER_PSNR[(task_, operator)]} |')
        lines.append('')
    return '\n'.join(lines)


def plot_curves(results, path):
    """PNG: validation PSNR against iteration, one panel per task, mean over seeds with the seeds' range."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = group_runs(results)
    tasks = list(dict.fromkeys(task for task, _ in groups))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for (task_, operator), runs in groups.items():
            if task_ != task:
                continue
            iterations = [it for it, _ in runs[0]['curve']]
            table = [[dict(map(tuple, r['curve'])).get(it, float('nan')) for it in iterations] for r in runs]
            mean = [sum(col) / len(col) for col in zip(*table)]
            line, = ax.plot(iterations, mean, marker='o', label=f'{MODEL_NAMES[(task_, operator)]} ({len(runs)} seeds)')
            ax.fill_between(iterations, [min(c) for c in zip(*table)], [max(c) for c in zip(*table)],
                            color=line.get_color(), alpha=0.2)
        ax.set_title(TASK_TITLES[task], fontsize=9)
        ax.set_xlabel('iteration')
        ax.set_ylabel('validation PSNR (dB)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def default_shared():
    return os.environ.get('CONVERSE_SHARED', str(REPO_ROOT.parent / 'shared'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help=f'one seed, 1/{QUICK_DIVISOR} of the iterations')
    parser.add_argument('--seeds', type=int, nargs='+', help='seeds to train and to show in the table and plot '
                        '(default: 0 1 2; --quick: 0)')
    parser.add_argument('--tasks', nargs='+', choices=('denoise', 'deblur'), default=['denoise', 'deblur'])
    parser.add_argument('--shared', default=default_shared(), help='folder holding datasets/, testsets/, reference/')
    parser.add_argument('--work-dir', help='experiments, derived configs and logs (default results/ablation[_quick])')
    parser.add_argument(
        '--results', help='results JSON; table (.md) and plot (.png) go beside it '
        '(default docs/ablation/ablation_results.json, --quick: <work-dir>/ablation_results.json)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per run (default 1)')
    parser.add_argument('--jobs', type=int, default=1, help='runs trained at the same time (default 1)')
    parser.add_argument('--table-only', action='store_true', help='only rebuild the table and plot')
    args = parser.parse_args(argv)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
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
            results['runs'][key] = run  # only this thread writes the results
            save_json_atomic(results, results_path)
            print(
                f'[{time.strftime("%H:%M:%S")}] {key}: {run["final_psnr"]:.4f} dB after {run["total_iter"]} '
                f'iterations, {run["wall_s"]:.0f} s', flush=True)
    return failed


def main(argv=None):
    args = parse_args(argv)
    results_path = Path(args.results)
    results = load_results(results_path)
    if not args.table_only:
        for missing in ('datasets/Train400', 'testsets/Set12', 'reference/kernels'):
            if not (Path(args.shared) / missing).exists():
                raise SystemExit(f'ablation: {Path(args.shared) / missing} is missing '
                                 '(set --shared or CONVERSE_SHARED)')
        results['command'] = 'python scripts/ablation.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
        pending = [
            (task, operator, seed) for seed in args.seeds for task, operator in VARIANTS  # seed-major
            if task in args.tasks and run_key(task, operator, seed) not in results['runs']
        ]
        failed = run_pending(pending, results, results_path, args)
    if not results['runs']:
        raise SystemExit(f'ablation: no runs in {results_path}')
    shown = {'runs': {key: run for key, run in results['runs'].items() if run['seed'] in args.seeds}}
    table = build_table(shown)
    write_text_atomic(results_path.with_suffix('.md'), table)
    plot_curves(shown, results_path.with_name(results_path.stem.replace('results', 'psnr') + '.png'))
    print(table)
    if not args.table_only and failed:
        raise SystemExit(f'ablation: {len(failed)} run(s) failed: {", ".join(failed)}; rerun the command to retry them')


if __name__ == '__main__':
    main()
