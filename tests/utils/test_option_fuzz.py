"""Fuzz test of the option checks: generated bad values for every key of every shipped config (YAML half) and
for every flag of every entry point (CLI half). Each case must end with exit status 2, no traceback, a message
naming the offending option, and nothing created. Runs in the parser/checker layer: the step after the checks
(training, testing, comparing, restoring) is replaced by a stub that fails the case if it is ever reached.

Cases per run: ``YAML_EXAMPLES`` + ``CLI_EXAMPLES`` (hypothesis draws them from the enumerated cases; the database
is off, so every run draws afresh).
"""
import atexit
import importlib.util
import math
import os
import re
import shutil
import tempfile
from os import path as osp

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import converse_basicsr  # noqa: F401  (registries)
from converse_basicsr import compare, demo, restore, test, train
from converse_basicsr.evaluation import runner
from converse_basicsr.export import cli as export_cli
from converse_basicsr.training import basicsr_keys, pipeline
from tests.helpers.fuzz_cases import REPO, get, kind_of, run_case, tree, yaml_case

YAML_EXAMPLES = 300
CLI_EXAMPLES = 200
FUZZ = settings(max_examples=YAML_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _reached(*_, **__):
    raise AssertionError('the checks let a bad option through to the work')


def _script(name):
    spec = importlib.util.spec_from_file_location(f'fuzz_{name}', osp.join(REPO, 'scripts', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _accepted_anyway(path, value):
    """Bad-looking values a key does take: num_gpu is an integer or 'auto'; kernel_path a path or a list of them."""
    return (path == ('num_gpu', ) and isinstance(value, int) and not isinstance(value, bool) and value >= 0) or \
        (path[-1] == 'kernel_path' and isinstance(value, list) and all(isinstance(v, str) and v for v in value))


def _yaml_cli(kind, config, mp):
    """The entry point that reads a config of ``kind``, with its work stubbed out."""
    if kind == 'compare':
        mp.setattr(runner, 'compare', _reached)
        return 'converse-compare', lambda: compare.main(['-opt', config])
    if kind == 'test':
        mp.setattr(basicsr_keys, 'dataroot_errors', lambda opt: [])  # ../shared paths: values are checked alone
        mp.setattr(test, 'run_test_config', _reached)
        return 'converse-test', lambda: test.main(['-opt', config])
    mp.setattr(pipeline, 'dataroot_errors', lambda opt: [])
    mp.setattr(pipeline, 'train_pipeline', _reached)
    return 'converse-train', lambda: train.main(['-opt', config])


def _names_option(message, dotted):
    return re.search(rf'(: |\n  |^){re.escape(dotted)}(\b|\W|$)', message, re.M) is not None


@FUZZ
@given(case=yaml_case())
def test_yaml_fuzz(case):
    config, path, mutation, value = case
    with open(config, encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    parent = get(opt, path[:-1])
    if mutation == 'value':
        if _accepted_anyway(path, value):
            return
        parent[path[-1]] = value
        dotted = '.'.join(map(str, path))
    else:
        parent[value] = parent.pop(path[-1])
        dotted = '.'.join(map(str, path[:-1] + (value, )))
    with tempfile.TemporaryDirectory() as root, pytest.MonkeyPatch.context() as mp:
        bad = osp.join(root, 'bad.yml')
        with open(bad, 'w', encoding='utf-8') as f:
            yaml.safe_dump(opt, f)
        mp.chdir(root)
        prog, cli = _yaml_cli(kind_of(config), bad, mp)
        before = tree(root)
        status, err = run_case(cli)
        assert tree(root) == before, f'{case}: created {tree(root) - before}'
    assert status == 2, f'{case}: exit {status}: {err}'
    assert 'Traceback' not in err and err.startswith(f'{prog}: error: '), f'{case}: {err}'
    assert bad in err or prog == 'converse-compare' and 'bad.yml' in err, f'{case}: the file is not named: {err}'
    assert _names_option(err, dotted), f'{case}: {dotted!r} not named in {err!r}'


# ------------------------------------------------------------------------------------------------ CLI half
NO_CUDA = not torch.cuda.is_available()
BAD_INT = ['0', '-1', '-5', 'abc', '', '1.5', 'nan', 'inf', '1e400']
BAD_NUMBER = ['-1', '-0.5', 'abc', '', 'nan', 'inf', '-inf', 'NaN']
BAD_DEVICE = ['gpu0', '', 'cuda:x', 'tpu'] + (['cuda', 'cuda:0', 'cuda:3'] if NO_CUDA else ['cuda:99'])
BAD_TILE = ['0', '-5', '7', 'abc', '', 'nan', 'auto2']


def _flag_cases(root):
    """(prog, parser-driven entry, base argv, flag, bad value) for every value-taking flag of every entry point."""
    a_file = osp.join(root, 'a_file')
    no_dir = osp.join(a_file, 'below')
    compare_base = [
        '--task', 'denoise', '--dataset', f'S={root}/none', '--model', 'input', '--results-root',
        osp.join(root, 'out')
    ]
    table = {
        ('converse-compare', compare.main, tuple(compare_base)): {
            '--tile': BAD_TILE, '--threads': BAD_INT, '--sigma': BAD_NUMBER, '--scale': BAD_INT,
            '--flops-size': BAD_INT, '--device': BAD_DEVICE, '--results-root': [a_file, no_dir,
                                                                                ''], '--dataset': ['S', '=x', 'S=', ''],
            '--model': [''], '--name': [''], '--task': ['x', ''], '--color': ['x', 'grey'], '--kernel-path': ['']
        },
        ('converse-restore', restore.main, ('--model', 'converse_dncnn', '-i', f'{root}/none', '-o', f'{root}/o')): {
            '--tile': BAD_TILE, '--tile-pad': ['-1', 'x', '', 'nan'], '--scale': BAD_INT, '--device': BAD_DEVICE
        },
        ('converse-export', export_cli.main, ('--model', 'converse_dncnn', '-o', f'{root}/m.onnx')): {
            '--opset': ['0', '6', '-1', 'x', '', 'nan'], '--scale': BAD_INT,
            '--static': ['', '0x5', '5', 'axb', '-1x4'], '--model': [''], '--output': ['']
        },
        ('converse-test', test.main, ()): {'--config': ['', 'no_such_config', '../nope'], '-opt': ['']},
        ('converse-train', train.main, ()): {'--config': ['', 'no_such_config']},
        ('converse-demo', demo.main, ('--operator-only', )): {
            '--iters': BAD_INT, '--config': ['', 'no_such'], '--output': [a_file, no_dir, '']
        },
    }
    for name, flags in (('prepare_subimages', {
            '--crop-size': BAD_INT, '--step': BAD_INT, '--n-thread': BAD_INT, '--thresh-size': ['-1', 'x', '', 'nan'],
            '--compression-level': ['-1', '10', 'x', '']
    }), ('prepare_lmdb', {'--n-thread': BAD_INT, '--compress-level': ['-1', '10', 'x', '']})):
        base = ('--input', f'{root}/none', '--output', f'{root}/out.lmdb')
        table[(name, _script(name).main, base)] = flags
    table[('convert_checkpoint', _script('convert_checkpoint').main,
           ('in.pth', f'{root}/out.pth'))] = {'--to': ['x', ''], '--key': ['x', '']}
    return [(prog, fn, list(base), flag, value) for (prog, fn, base), flags in table.items()
            for flag, values in flags.items() for value in values]


CLI_ROOT = tempfile.mkdtemp(prefix='converse_fuzz_')
atexit.register(shutil.rmtree, CLI_ROOT, True)
open(osp.join(CLI_ROOT, 'a_file'), 'w').close()
CLI_CASES = _flag_cases(CLI_ROOT)


@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(case=st.sampled_from(CLI_CASES), form=st.sampled_from(['separate', 'equals']))
def test_cli_fuzz(case, form):
    prog, fn, base, flag, value = case
    argv = base + ([flag, value] if form == 'separate' or flag == '-opt' else [f'{flag}={value}'])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, 'compare', _reached)
        mp.setattr(pipeline, 'train_pipeline', _reached)
        mp.setattr(test, 'run_test_config', _reached)
        mp.setattr(demo, 'run_demo', _reached)
        mp.setattr(restore, 'restore_folder', _reached)
        mp.setattr(export_cli, 'run', _reached)
        before = tree(CLI_ROOT)
        status, err = run_case(fn, argv)
        assert tree(CLI_ROOT) == before, f'{argv}: created {tree(CLI_ROOT) - before}'
    assert status == 2, f'{argv}: exit {status}: {err}'
    assert 'Traceback' not in err and err.startswith(f'{prog}: error: ') and err.count('\n') == 1, f'{argv}: {err!r}'
    assert flag in err, f'{argv}: {flag} not named in {err!r}'


def test_repeated_labels_and_grid_names_are_refused_before_anything_is_made(tmp_path, monkeypatch, capsys):
    """Issue-table rows of compare that need two flags or two files: a repeated --dataset or --model label, and
    two images of one dataset that would share a crop grid name."""
    import cv2
    import numpy as np
    monkeypatch.setattr(runner, 'compare', _reached)
    data = tmp_path / 'S'
    data.mkdir()
    for name in ('x.png', 'x.jpg'):
        cv2.imwrite(str(data / name), np.zeros((8, 8), np.uint8))
    out = tmp_path / 'out'
    base = ['--task', 'denoise', '--results-root', str(out)]
    cases = [
        (['--dataset', f'S={tmp_path}/a', '--dataset', f'S={tmp_path}/b', '--model',
          'input'], "--dataset 'S' is given"),
        (['--dataset', f'T={tmp_path}/a', '--model', 'input', '--model', 'input'], "model label 'input' is given"),
        (['--dataset', f'S={data}', '--model', 'input'], f"S: {data / 'x.jpg'} and S: {data / 'x.png'} would both"),
    ]
    for argv, message in cases:
        assert compare.main(base + argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count('\n') == 1, err
        assert not out.exists()


def test_nan_and_negative_sigma_from_yaml(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, 'compare', _reached)
    for sigma in (math.nan, -1, math.inf):
        config = tmp_path / 'c.yml'
        config.write_text(
            yaml.safe_dump(
                {'protocol': {'task': 'denoise', 'sigma': sigma}, 'datasets': {'S': 'x'}, 'models': ['input']}))
        assert compare.main(['-opt', str(config), '--results-root', str(tmp_path / 'r')]) == 2
        err = capsys.readouterr().err
        assert f'{config}: protocol.sigma must be a ' in err, err
    assert sorted(os.listdir(tmp_path)) == ['c.yml']
