"""scripts/benchmark.py --load N: the competing processes end with the measurement (also on an error), the
targets are judged from the numbers, and the run prints its tables (no timing is asserted)."""
import importlib.util
import json
import subprocess
import sys

import pytest

from tests.helpers.shared_files import REPO_ROOT


def load_module():
    spec = importlib.util.spec_from_file_location('benchmark_load', REPO_ROOT / 'scripts' / 'benchmark_load.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_competing_processes_spin_during_the_block_and_end_after_it_also_on_an_error():
    bench = load_module()
    with pytest.raises(KeyError):
        with bench.competing_processes(2) as procs:
            assert len(procs) == 2 and all(p.poll() is None for p in procs)  # running
            raise KeyError('an error inside the measurement')
    assert all(p.returncode is not None for p in procs)  # killed and reaped before the error went on


def test_targets_are_judged_from_the_medians_and_minima():
    bench = load_module()

    def row(median, low):
        return {'median': median, 'min': low}

    met = {1: {'ours': row(0.4, 0.35), 'literal': row(2.0, 1.9)}, 2: {'ours': row(0.3, 0.25), 'literal': row(1.6, 1.5)}}
    assert [ok for _, ok in bench.targets(met)] == [True, True, True]
    slow_on_two = {1: met[1], 2: {'ours': row(0.41, 0.3), 'literal': row(2.0, 1.9)}}  # minima would pass
    assert [ok for _, ok in bench.targets(slow_on_two)] == [True, False, True]
    spread = {1: met[1], 2: {'ours': row(0.3, 0.19), 'literal': row(1.6, 1.5)}}  # 1.58× its minimum
    assert [ok for _, ok in bench.targets(spread)] == [True, True, False]
    close = {1: {'ours': row(0.5, 0.45), 'literal': row(1.9, 1.9)}, 2: met[2]}  # 3.8× on 1 thread
    assert [ok for _, ok in bench.targets(close)] == [False, True, True]


@pytest.mark.slow
def test_quick_run_prints_the_three_tables_and_the_targets(tmp_path):
    path = tmp_path / 'load.json'
    result = subprocess.run([sys.executable, 'scripts/benchmark.py', '--load', '1', '--quick', '--json',
                             str(path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for name in ('| ours | 1 |', '| literal | 2 |', '| torch.fft rfft2+irfft2 | 2 |', 'Converse-DnCNN eval',
                 'Converse-DnCNN train step'):
        assert name in out
    assert out.count('- met: ') + out.count('- NOT met: ') == 3
    data = json.loads(path.read_text())
    assert data['load'] == 1 and len(data['targets']) == 3
    assert all(len(r['all']) == 2 for r in data['results']['operator'][1]['1'].values())
