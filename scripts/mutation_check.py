"""Mutation check: do the fast tests catch plausible one-line bugs? ``python scripts/mutation_check.py [--jobs N]``.

The curated list (``scripts/mutations.yml``) holds small, plausible bugs, each as ``id``, ``file``, the exact
``original`` text (found exactly once in the file), its ``replacement``, the fast ``tests`` that should catch it
(test files or pytest node ids) and a one-line ``why``. The harness copies the checkout into a scratch folder
(a temporary directory; the checkout itself is never written), then for each mutation: writes the bug into the
copy, runs ``python -m pytest -q -x -m "not slow" TESTS`` there with ``PYTHONPATH`` set to the copy, restores the
file, and prints ``caught`` (with the first failing test) or ``SURVIVED``. The score is caught / run.

Before the mutations it runs every mapped test once on the unchanged copy (``--no-baseline`` skips it): a test
that already fails would count every bug it maps as caught. The reference files come from ``CONVERSE_SHARED``
(default: ``shared`` beside the checkout), with ``CI=true``, so a missing file fails instead of skipping.

Exit status: 0 when the score reaches ``--fail-under`` percent (default 95), 1 below it, 2 for a list that cannot
be used (an ``original`` not found exactly once, an unknown ``--only`` id, a failing baseline).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KEYS = ('id', 'file', 'original', 'replacement', 'tests', 'why')
# Not copied into the scratch folder: git data, environments, caches and run outputs (as in .gitignore).
IGNORED = ('.git', '.venv', '__pycache__', '*.pyc', '*.egg-info', '.pytest_cache', 'results', 'experiments',
           'tb_logger', 'datasets', 'build', 'dist', 'demo_output')
FAILED_LINE = re.compile(r'^(?:FAILED|ERROR) (\S+)', re.MULTILINE)


class ListError(ValueError):
    """A mutation list that cannot be used (the message names the entry)."""


def load_mutations(path, root):
    """The ``mutations`` entries of ``path``, each checked: all keys present, ``original`` exactly once in its file."""
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ListError(f'cannot read the mutation list {path}: {err}') from None
    entries, seen = data.get('mutations') or [], set()
    for entry in entries:
        missing = [k for k in KEYS if not entry.get(k) and not (k == 'replacement' and entry.get(k) == '')]
        if missing:
            raise ListError(f'{path}: mutation {entry.get("id", "?")!r} lacks {", ".join(missing)}')
        if entry['id'] in seen:
            raise ListError(f'{path}: mutation id {entry["id"]!r} appears twice')
        seen.add(entry['id'])
        if entry['original'] == entry['replacement']:
            raise ListError(f'{path}: mutation {entry["id"]!r}: replacement equals the original')
        source = root / entry['file']
        count = source.read_text(encoding='utf-8').count(entry['original']) if source.is_file() else 0
        if count != 1:
            where = f'found {count} times in' if source.is_file() else 'names a missing file,'
            raise ListError(f'mutation {entry["id"]!r}: its original text is {where} {entry["file"]} '
                            f'(must be exactly once): {entry["original"]!r}')
        entry['tests'] = [entry['tests']] if isinstance(entry['tests'], str) else list(entry['tests'])
    return entries


def scratch_copy(root, into):
    target = Path(into) / 'checkout'
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    return target


def test_env(copy, root):
    shared = os.environ.get('CONVERSE_SHARED') or str(Path(root).resolve().parent / 'shared')
    return {
        **os.environ, 'PYTHONPATH': str(copy), 'PYTHONDONTWRITEBYTECODE': '1', 'CONVERSE_SHARED': shared, 'CI': 'true',
        'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')
    }


def run_tests(copy, root, tests, timeout):
    """``(pytest exit status or 'timeout', first failing test, seconds)`` for ``tests`` in ``copy``."""
    command = [sys.executable, '-m', 'pytest', '-q', '-x', '-m', 'not slow', '-p', 'no:cacheprovider', *tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=copy, env=test_env(copy, root), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'timeout', f'no result within {timeout} s', time.perf_counter() - start
    found = FAILED_LINE.search(proc.stdout)
    last = (proc.stdout.strip().splitlines() or [''])[-1]
    return proc.returncode, found.group(1) if found else last, time.perf_counter() - start


def verdict(status):
    """pytest 1 (a test failed), 2 (collection error) and a time-out catch the bug; 0 lets it survive."""
    if status == 0:
        return 'SURVIVED'
    if status in (1, 2, 'timeout'):
        return 'caught'
    return 'ERROR'  # 3-5: an internal error or no tests collected: the mapping is wrong


def mutate_and_test(entry, copy, root, timeout):
    path = copy / entry['file']
    original = path.read_text(encoding='utf-8')
    path.write_text(original.replace(entry['original'], entry['replacement'], 1), encoding='utf-8')
    try:
        status, by, seconds = run_tests(copy, root, entry['tests'], timeout)
    finally:
        path.write_text(original, encoding='utf-8')
    return verdict(status), by, seconds


def run_all(entries, root, jobs, timeout, baseline, out=sys.stdout):
    """Run ``entries`` on ``jobs`` scratch copies; print one line per mutation and the score; return the results."""
    with tempfile.TemporaryDirectory(prefix='mutation_check_') as scratch:
        copies = [scratch_copy(root, Path(scratch) / str(i)) for i in range(jobs)]
        if baseline:
            tests = list(dict.fromkeys(t for e in entries for t in e['tests']))
            tests = [t for t in tests if '::' not in t or t.split('::')[0] not in tests]  # a whole file covers its ids
            status, by, seconds = run_tests(copies[0], root, tests, timeout * 4)
            if status != 0:
                raise ListError(f'the mapped tests fail without any mutation (pytest status {status}): {by}')
            print(f'baseline: {len(tests)} mapped test targets pass unchanged ({seconds:.0f} s)', file=out, flush=True)
        free, lock, results = list(copies), threading.Lock(), {}

        def one(entry):
            with lock:
                copy = free.pop()
            try:
                results[entry['id']] = result = mutate_and_test(entry, copy, root, timeout)
            finally:
                with lock:
                    free.append(copy)
            state, by, seconds = result
            with lock:
                print(f'{state:8s} {entry["id"]:32s} {seconds:5.0f} s  {entry["file"]}: {entry["why"]}', file=out,
                      flush=True)
                print(
                    f'         {"caught by" if state == "caught" else "tests"}: '
                    f'{by if state != "SURVIVED" else " ".join(entry["tests"])}', file=out, flush=True)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, entries))
    return results


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--list', action='store_true', help='print the mutations and exit')
    p.add_argument('--only', action='append', metavar='ID', help='run only this mutation (repeatable)')
    p.add_argument('--jobs', type=int, default=1, help='mutations run in parallel, one scratch copy each (default 1)')
    p.add_argument('--mutations', default=str(ROOT / 'scripts' / 'mutations.yml'), help='the mutation list (YAML)')
    p.add_argument('--root', default=str(ROOT), help='the checkout to copy (default: this one)')
    p.add_argument('--timeout', type=float, default=600, help='seconds per mutation; a hang counts as caught')
    p.add_argument('--no-baseline', action='store_true', help='skip the run of the mapped tests without mutation')
    p.add_argument('--fail-under', type=float, default=95.0, help='exit 1 below this score in percent (default 95)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    root = Path(args.root).resolve()
    try:
        if args.jobs < 1:
            raise ListError(f'--jobs must be >= 1, got {args.jobs}')
        entries = load_mutations(args.mutations, root)
        if args.only:
            unknown = sorted(set(args.only) - {e['id'] for e in entries})
            if unknown:
                raise ListError(f'--only names no mutation of {args.mutations}: {", ".join(unknown)}')
            entries = [e for e in entries if e['id'] in args.only]
        if args.list:
            for e in entries:
                print(f'{e["id"]:32s} {e["file"]}: {e["why"]}\n{"":32s} tests: {" ".join(e["tests"])}')
            print(f'{len(entries)} mutations')
            return 0
        start = time.perf_counter()
        results = run_all(entries, root, min(args.jobs, len(entries)), args.timeout, not args.no_baseline)
    except ListError as err:
        print(f'mutation_check: error: {err}', file=sys.stderr)
        return 2
    caught = sum(state == 'caught' for state, _, _ in results.values())
    survived = [i for i, (state, _, _) in results.items() if state == 'SURVIVED']
    errors = [i for i, (state, _, _) in results.items() if state == 'ERROR']
    score = 100.0 * caught / max(len(results), 1)
    print(
        f'\nscore: {caught} of {len(results)} mutations caught ({score:.1f} %) in {time.perf_counter() - start:.0f} s' +
        (f'; survived: {", ".join(survived)}' if survived else '') +
        (f'; harness errors (check the mapping): {", ".join(errors)}' if errors else ''))
    return 0 if score >= args.fail_under and not errors else 1


if __name__ == '__main__':
    sys.exit(main())
