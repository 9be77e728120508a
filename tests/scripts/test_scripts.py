"""scripts/accuracy.py and scripts/benchmark.py run as a user runs them and print what they promise."""
import json
import re
import subprocess
import sys

from tests.helpers.shared_files import REPO_ROOT, shared_path, shared_root

NUMBER = r'(\d\.\d)e([-+]\d\d)'


def run_script(*args):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def numbers(line):
    return [float(f'{m}e{e}') for m, e in re.findall(NUMBER, line)]


def test_accuracy_script_prints_both_tables_with_ours_below_published():
    shared_path('reference', 'official_outputs.pt')
    out = run_script(REPO_ROOT / 'scripts' / 'accuracy.py', '--shared', shared_root())
    checkpoints = [line for line in out.splitlines() if re.match(r'\| converse', line)]
    operators = [line for line in out.splitlines() if line.startswith('| s=')]
    names = [line.split('|')[1].strip() for line in checkpoints]
    assert names == ['converse_dncnn', 'converse_srresnet', 'conversenet', 'converse_usrnet']
    assert len(operators) == 7
    for line in checkpoints + operators:
        ours32, ours64, published32 = numbers(line)
        # the README's claim (1.9e-7 to 1.1e-6 in float32) with a margin of 2, and float64 near exact
        assert ours32 <= 2.2e-6 and ours64 <= 1e-11 and published32 > ours32


def test_benchmark_smoke_prints_rows_and_json(tmp_path):
    path = tmp_path / 'bench.json'
    out = run_script(REPO_ROOT / 'scripts' / 'benchmark.py', '--smoke', '--no-memory', '--threads', '1', '--json', path)
    rows = [line for line in out.splitlines() if line.startswith('| s=')]
    assert len(rows) == 2
    for line in rows:
        assert re.search(r'\*\*\d+\.\d×\*\*', line)  # the speed-up against the literal algorithm
    data = json.loads(path.read_text())
    assert data['environment']['threads'] == 1 and data['environment']['retain_freed_memory'] is False
    for row in data['rows']:
        times = row['time_s']
        assert set(times) >= {'ours', 'baseline', 'conv'} and all(t > 0 for t in times.values())
        assert row['speedup_vs_baseline'] == times['baseline'] / times['ours']
    assert data['rows'][0]['check'] < 1e-5  # the eval row checks ours against the float64 literal algorithm
