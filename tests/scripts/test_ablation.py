"""The ablation configs and scripts/ablation.py: same validation protocol as options/test, variants that differ
only in the operator, and the log parsing / table / plot code on made-up results."""
import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml

from basicsr.data import build_dataset
from converse_basicsr.training.option_checks import check_color_channels
from tests.helpers.shared_files import REPO_ROOT, shared_path

TEST_OPTIONS = REPO_ROOT / 'options' / 'test'
# Keys that define the degradation and measurement; everything else (name, dataroot, io_backend) may differ.
PROTOCOL_KEYS = ('type', 'sigma', 'noise_seed', 'mod_crop')


def _load_script():
    spec = importlib.util.spec_from_file_location('ablation', REPO_ROOT / 'scripts' / 'ablation.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ablation = _load_script()


def _yaml(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _val_entries(opt):
    return [value for key, value in opt['datasets'].items() if key.startswith('val')]


def _protocol(entry):
    return {key: entry.get(key) for key in PROTOCOL_KEYS}


def _test_entry(test_file, kernel=None):
    """The protocol entry of options/test/<test_file> (Set12 for denoising, the kernel_<k> entry for deblurring)."""
    entries = _yaml(TEST_OPTIONS / test_file)['datasets'].values()
    if kernel is None:
        return next(e for e in entries if e['name'] == 'Set12')
    return next(e for e in entries if e['kernel_path'].endswith(f'kernel_{kernel}.npy'))


def test_every_variant_has_a_config_and_variants_differ_only_in_operator():
    assert sorted(p.name for p in ablation.CONFIG_DIR.glob('*.yml')) == sorted(f'{task}_{operator}.yml'
                                                                               for task, operator in ablation.VARIANTS)
    for task in ('denoise', 'deblur'):
        configs = {op: _yaml(ablation.config_path(t, op)) for t, op in ablation.VARIANTS if t == task}
        for operator, opt in configs.items():
            assert opt['network_g']['operator'] == operator
            assert opt['name'] == f'ablation_{task}_{operator}'
            check_color_channels(opt)
        stripped = []
        for opt in configs.values():
            opt = dict(opt, network_g=dict(opt['network_g']))
            del opt['name'], opt['network_g']['operator']
            stripped.append(opt)
        assert all(opt == stripped[0] for opt in stripped[1:]), f'{task} variants differ beyond name/operator'


def test_denoising_validation_matches_the_test_protocol():
    opt = _yaml(ablation.config_path('denoise', 'converse'))
    test_opt = _yaml(TEST_OPTIONS / 'test_converse_dncnn_sigma25.yml')
    (val, ) = _val_entries(opt)
    reference = _test_entry('test_converse_dncnn_sigma25.yml')
    assert _protocol(val) == _protocol(reference)
    assert val['color'] == reference['color'] == 'gray'
    assert val['dataroot_gt'].endswith('testsets/Set12')
    assert opt['val']['metrics']['psnr'] == test_opt['val']['metrics']['psnr']
    assert opt['datasets']['train']['sigma'] == reference['sigma']


def test_deblurring_validation_matches_the_test_protocol():
    opt = _yaml(ablation.config_path('deblur', 'converse'))
    test_opt = _yaml(TEST_OPTIONS / 'test_conversenet_deblur.yml')
    entries = _val_entries(opt)
    assert [e['kernel_path'].rsplit('/', 1)[1] for e in entries] == [f'kernel_{k}.npy' for k in range(1, 6)]
    for k, entry in enumerate(entries, 1):
        assert _protocol(entry) == _protocol(_test_entry('test_conversenet_deblur.yml', k))
        assert entry['color'] == 'gray' and entry['dataroot_gt'].endswith('testsets/Set12')
    assert opt['val']['metrics']['psnr'] == test_opt['val']['metrics']['psnr']
    train = opt['datasets']['train']
    assert train['type'] == 'BlurKernelDataset' and 'kernel_path' not in train  # random kernels only


@pytest.mark.parametrize('task, test_file, kernel', [('denoise', 'test_converse_dncnn_sigma25.yml', None),
                                                     ('deblur', 'test_conversenet_deblur.yml', 3)])
def test_validation_inputs_equal_the_test_configs_inputs(task, test_file, kernel):
    # Build both datasets with the package's code: the ablation's val input must be bit-identical to what the
    # test config would feed the network for the same image (the test config pointed at gray Set12).
    shared = shared_path('testsets', 'Set12').parents[1]
    opt = ablation.derive_options(_yaml(ablation.config_path(task, 'converse')), task, 'converse', 0, shared, False)
    val = _val_entries(opt)[0 if kernel is None else kernel - 1]
    reference = ablation.rewrite_shared_paths(dict(_test_entry(test_file, kernel)), shared)
    reference.update(dataroot_gt=val['dataroot_gt'], color='gray')
    ours, theirs = (build_dataset(dict(entry, phase='val', scale=1)) for entry in (val, reference))
    assert len(ours) == len(theirs) == 12
    for index in (0, 11):
        np.testing.assert_array_equal(ours[index]['lq'].numpy(), theirs[index]['lq'].numpy())
        np.testing.assert_array_equal(ours[index]['gt'].numpy(), theirs[index]['gt'].numpy())


def test_derive_options_quick_scales_the_schedule_and_rewrites_shared_paths(tmp_path):
    opt = _yaml(ablation.config_path('denoise', 'conv'))
    derived = ablation.derive_options(opt, 'denoise', 'conv', 2, tmp_path, quick=True)
    assert derived['name'] == 'ablation_denoise_conv_seed2_quick' and derived['manual_seed'] == 2
    assert derived['datasets']['train']['dataroot_gt'] == str(tmp_path / 'datasets' / 'Train400')
    assert derived['datasets']['val']['dataroot_gt'] == str(tmp_path / 'testsets' / 'Set12')
    assert opt['train']['total_iter'] == 500  # the shipped config is left alone
    assert derived['train']['total_iter'] == 62
    assert derived['train']['scheduler']['milestones'] == [31, 46]  # 375 * 62 / 500 = 46.5, rounded half to even
    assert derived['val']['val_freq'] == 31


LOG = """2026-11-29 INFO: Validation Set12_kernel_1
\t # psnr: 24.5000\tBest: 24.5000 @ 100 iter
2026-11-29 INFO: Validation Set12_kernel_2
\t # psnr: 22.5000\tBest: 22.5000 @ 100 iter
INFO: [iter: 150]
2026-11-29 INFO: Validation Set12_kernel_1
\t # psnr: 25.0000\tBest: 25.0000 @ 200 iter
2026-11-29 INFO: Validation Set12_kernel_2
\t # psnr: 23.0000\tBest: 23.0000 @ 200 iter
INFO: End of training.
2026-11-29 INFO: Validation Set12_kernel_1
\t # psnr: 25.0000\tBest: 25.0000 @ 202 iter
2026-11-29 INFO: Validation Set12_kernel_2
\t # psnr: 23.0000\tBest: 23.0000 @ 202 iter
"""


def test_parse_validation_log_drops_the_repeated_final_validation():
    curves = ablation.parse_validation_log(LOG, val_freq=100, total_iter=200)
    assert curves == {'Set12_kernel_1': [(100, 24.5), (200, 25.0)], 'Set12_kernel_2': [(100, 22.5), (200, 23.0)]}
    curve, per_set = ablation.summarize_run(curves, 200)
    assert curve == [[100, 23.5], [200, 24.0]]
    assert per_set == {'Set12_kernel_1': 25.0, 'Set12_kernel_2': 23.0}
    # val_freq not dividing total_iter: the after-loop validation is the only one at total_iter
    curves = ablation.parse_validation_log(LOG, val_freq=150, total_iter=200)
    assert curves['Set12_kernel_1'] == [(150, 24.5), (200, 25.0)]
    with pytest.raises(ValueError, match='last iteration 300'):
        ablation.summarize_run(curves, 300)
    with pytest.raises(ValueError, match='non-finite'):
        ablation.parse_validation_log(LOG.replace('23.0000', 'nan'), 100, 200)


def _fake_run(task, operator, seed, psnr):
    return {
        'task': task, 'operator': operator, 'seed': seed, 'total_iter': 40, 'final_psnr': psnr,
        'curve': [[20, psnr - 1.0], [40, psnr]]
    }


def test_table_and_plot_from_a_fake_results_file(tmp_path):
    runs = [_fake_run('denoise', 'conv', seed, psnr) for seed, psnr in ((1, 28.1), (0, 28.0), (2, 28.3))]
    runs += [_fake_run('denoise', 'converse', 0, 28.5), _fake_run('deblur', 'conv', 0, 24.25)]
    results = {'runs': {ablation.run_key(r['task'], r['operator'], r['seed']): r for r in runs}}
    table = ablation.build_table(results).splitlines()
    rows = [line for line in table if line.startswith('| Con')]
    # VARIANTS order, seeds sorted; mean 28.1333, sample std 0.1528; one seed has no spread
    assert rows[0].startswith('| Converse-DnCNN | converse | 28.50 | 28.50 | 0 | 40 |')
    assert rows[1].startswith('| Conv-DnCNN | conv | 28.13 ± 0.15 | 28.00, 28.10, 28.30 | 0,1,2 | 40 |')
    assert rows[2].startswith('| ConvNet | conv | 24.25 |')
    assert len(rows) == 3 and sum(line.startswith('**') for line in table) == 2
    png = tmp_path / 'ablation_psnr.png'
    ablation.plot_curves(results, png)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    mean, std = ablation.mean_std([1.0])
    assert mean == 1.0 and math.isnan(std)


def test_table_only_rebuilds_table_and_plot_from_the_results_file(tmp_path):
    results = {'runs': {'denoise/conv/seed0': _fake_run('denoise', 'conv', 0, 27.0)}}
    path = tmp_path / 'ablation_results.json'
    ablation.save_json_atomic(results, path)
    ablation.main(['--table-only', '--results', str(path)])
    assert '| Conv-DnCNN | conv | 27.00 |' in (tmp_path / 'ablation_results.md').read_text()
    assert (tmp_path / 'ablation_psnr.png').is_file()
    assert ablation.load_results(path) == results
    # --seeds limits the table to those seeds (a partial seed would otherwise skew one variant's mean)
    results['runs']['denoise/conv/seed1'] = _fake_run('denoise', 'conv', 1, 29.0)
    ablation.save_json_atomic(results, path)
    ablation.main(['--table-only', '--results', str(path), '--seeds', '1'])
    assert '| Conv-DnCNN | conv | 29.00 | 29.00 | 1 | 40 |' in (tmp_path / 'ablation_results.md').read_text()


@pytest.mark.slow
def test_quick_ablation_runs_every_variant(tmp_path):
    shared = shared_path('datasets', 'Train400').parents[1]
    subprocess.run([
        sys.executable,
        str(REPO_ROOT / 'scripts' / 'ablation.py'), '--quick', '--shared',
        str(shared), '--work-dir',
        str(tmp_path)
    ], check=True)
    results = ablation.load_results(tmp_path / 'ablation_results.json')
    assert sorted(results['runs']) == sorted(ablation.run_key(t, o, 0) for t, o in ablation.VARIANTS)
    assert all(math.isfinite(r['final_psnr']) for r in results['runs'].values())
    assert (tmp_path / 'ablation_psnr.png').is_file() and (tmp_path / 'ablation_results.md').is_file()
