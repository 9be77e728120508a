"""scripts/mutation_check.py on a tiny checkout of its own: a caught and a surviving mutation, the checkout left
untouched, and the refusals (an original found twice, an unknown --only id). The real list is not run here."""
import subprocess
import sys

import yaml

from tests.helpers.shared_files import REPO_ROOT

SCRIPT = REPO_ROOT / 'scripts' / 'mutation_check.py'
TARGET = "def double(x):\n    return 2 * x\n\n\ndef unused():\n    return 'never tested'\n"


def tiny_checkout(root, mutations):
    (root / 'tests').mkdir(parents=True)
    (root / 'target.py').write_text(TARGET)
    (root / 'tests' / 'test_target.py').write_text('from target import double\n\n\ndef test_double():\n'
                                                   '    assert double(3) == 6\n')
    (root / 'mutations.yml').write_text(yaml.safe_dump({'mutations': mutations}))
    return root


def mutation(id_, original, replacement):
    return dict(id=id_, file='target.py', original=original, replacement=replacement, tests=['tests/test_target.py'],
                why=f'{id_} mutation')


def run(root, *args):
    return subprocess.run([
        sys.executable,
        str(SCRIPT), '--root',
        str(root), '--mutations',
        str(root / 'mutations.yml'), '--no-baseline', *args
    ], capture_output=True, text=True, timeout=120)


def test_caught_and_survived_and_the_checkout_untouched(tmp_path):
    root = tiny_checkout(tmp_path / 'checkout', [
        mutation('triple', 'return 2 * x', 'return 3 * x'),
        mutation('comment', "'never tested'", "'changed'"),
    ])
    proc = run(root, '--only', 'triple')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'caught   triple' in proc.stdout and 'caught by: tests/test_target.py::test_double' in proc.stdout
    assert 'score: 1 of 1 mutations caught (100.0 %)' in proc.stdout
    proc = run(root)
    assert proc.returncode == 1 and 'SURVIVED comment' in proc.stdout, proc.stdout + proc.stderr
    assert 'score: 1 of 2 mutations caught (50.0 %)' in proc.stdout and 'survived: comment' in proc.stdout
    assert (root / 'target.py').read_text() == TARGET and sorted(
        p.name for p in root.iterdir()) == ['mutations.yml', 'target.py', 'tests']
    listing = run(root, '--list')
    assert listing.returncode == 0 and 'triple' in listing.stdout and '2 mutations' in listing.stdout


def test_refuses_an_original_not_found_exactly_once(tmp_path):
    root = tiny_checkout(tmp_path / 'checkout', [mutation('twice', 'return', 'return -1 *')])
    proc = run(root, '--list')
    assert proc.returncode == 2 and "mutation 'twice': its original text is found 2 times in target.py" in proc.stderr
    root = tiny_checkout(tmp_path / 'other', [mutation('absent', 'return 4 * x', 'return 5 * x')])
    proc = run(root)
    assert proc.returncode == 2 and "mutation 'absent'" in proc.stderr and 'found 0 times' in proc.stderr
    proc = run(tiny_checkout(tmp_path / 'third', [mutation('triple', 'return 2 * x', 'return 3 * x')]), '--only', 'x')
    assert proc.returncode == 2 and '--only names no mutation' in proc.stderr and 'x' in proc.stderr
