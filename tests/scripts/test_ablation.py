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


def _without_operator(opt, task):
    """``opt`` without what may differ between a task's variants: ``name`` and the operator. For ``sr_edsr`` the
    operator is the upsampler: the ConverseUp variant's ``network_g`` must be its own ``base`` plus ConverseUp's
    keys, so both reduce to the base EDSR entry."""
    opt = dict(opt, network_g=dict(opt['network_g']))
    del opt['name']
    if task == 'sr_edsr':
        if opt['network_g']['type'] == 'ConverseUp':
            assert set(opt['network_g']) == {'type', 'base', 'kernel_size', 'padding', 'padding_mode', 'eps'}
            opt['network_g'] = dict(opt['network_g']['base'])
    else:
        del opt['network_g']['operator']
    return opt


def test_every_variant_has_a_config_and_variants_differ_only_in_operator():
    assert sorted(p.name for p in ablation.CONFIG_DIR.glob('*.yml')) == sorted(f'{task}_{operator}.yml'
                                                                               for task, operator in ablation.VARIANTS)
    for task in ablation.TASKS:
        configs = {op: _yaml(ablation.config_path(t, op)) for t, op in ablation.VARIANTS if t == task}
        assert len(configs) >= 2
        for operator, opt in configs.items():
            if task == 'sr_edsr':
                assert opt['network_g']['type'] == {'converse': 'ConverseUp', 'pixelshuffle': 'EDSR'}[operator]
            else:
                assert opt['network_g']['operator'] == operator
            assert opt['name'] == f'ablation_{task}_{operator}'
            check_color_channels(opt)
        stripped = [_without_operator(opt, task) for opt in configs.values()]
        assert all(opt == stripped[0] for opt in stripped[1:]), f'{task} variants differ beyond name/operator'


def test_medium_deblurring_is_the_small_one_trained_longer():
    # same networks, data and validation as the 400-iteration runs; only the schedule, and a state saved at
    # every validation for --auto_resume
    small, medium = (_yaml(ablation.config_path(task, 'converse')) for task in ('deblur', 'deblur_medium'))
    for opt in (small, medium):
        del opt['name'], opt['train']['total_iter'], opt['train']['scheduler']['milestones'], opt['val']['val_freq']
        del opt['logger']['save_checkpoint_freq']
    assert small == medium


def test_k7_deblurring_is_the_medium_one_with_7x7_operators_and_the_papers_kernels():
    # the pilot's two changes and a shorter schedule; networks otherwise, data and validation as deblur_medium
    medium, k7 = (_yaml(ablation.config_path(task, 'converse')) for task in ('deblur_medium', 'deblur_k7'))
    assert (medium['network_g']['kernel_size'], k7['network_g']['kernel_size']) == (3, 7)
    assert k7['datasets']['train']['kernel_path'] == '../shared/reference/kernels'
    assert k7['train']['total_iter'] < medium['train']['total_iter']
    for opt in (medium, k7):
        del opt['name'], opt['network_g']['kernel_size'], opt['train']['total_iter']
        del opt['train']['scheduler']['milestones']
        for key in _random_kernel_keys() + ['kernel_path']:
            opt['datasets']['train'].pop(key, None)
    assert medium == k7


def test_deep_deblurring_is_the_k7_one_deeper_and_longer():
    # a deeper body (blocks and iterations) and a longer schedule; width, operator kernel, data and validation
    # as deblur_k7
    k7, deep = (_yaml(ablation.config_path(task, 'converse')) for task in ('deblur_k7', 'deblur_deep'))
    assert (k7['network_g']['num_block'], k7['network_g']['num_iter']) == (2, 2)
    assert (deep['network_g']['num_block'], deep['network_g']['num_iter']) == (3, 3)
    assert deep['train']['total_iter'] > k7['train']['total_iter']
    for opt in (k7, deep):
        del opt['name'], opt['network_g']['num_block'], opt['network_g']['num_iter'], opt['train']['total_iter']
        del opt['train']['scheduler']['milestones']
    assert k7 == deep


@pytest.mark.parametrize('task', ablation.KNOWN_TASKS)
def test_known_kernel_deblurring_is_the_k7_one_on_one_kernel(task):
    # the deblur_k7 networks, data and validation with one change: the training blur is the one kernel of the
    # task's name, and the validation is deblur_k7's entry of that kernel alone; only the schedule differs beyond
    k7, known = (_yaml(ablation.config_path(t, 'converse')) for t in ('deblur_k7', task))
    kernel = int(task.rsplit('_k', 1)[1])
    assert known['datasets']['train']['kernel_path'] == f'../shared/reference/kernels/kernel_{kernel}.npy'
    (val, ) = _val_entries(known)
    assert val == next(e for e in _val_entries(k7) if e['kernel_path'].endswith(f'/kernel_{kernel}.npy'))
    for opt in (k7, known):
        del opt['name'], opt['datasets']['train']['kernel_path'], opt['train']['total_iter']
        del opt['train']['scheduler']['milestones'], opt['val']['val_freq'], opt['logger']['save_checkpoint_freq']
        for key in [key for key in opt['datasets'] if key.startswith('val')]:
            del opt['datasets'][key]
    assert k7 == known


@pytest.mark.parametrize('kernel', range(1, 6))
def test_blur_response_is_the_protocols_circular_blur(kernel):
    # multiplying by the response must be the protocol's blur itself (scipy's convolve, circular), on a
    # non-square image, so an off-by-one shift or a flipped kernel (kernels 2, 4, 5 are not symmetric) fails
    from converse_basicsr.data.kernels import circular_blur
    k = np.load(shared_path('reference', 'kernels', f'kernel_{kernel}.npy'))
    img = np.random.RandomState(kernel).rand(24, 31, 1)
    blurred = np.real(np.fft.ifft2(np.fft.fft2(img[..., 0]) * ablation.blur_response(k, img.shape[:2])))
    np.testing.assert_allclose(blurred, circular_blur(img, k)[..., 0], rtol=0, atol=1e-12)


def test_linear_deblur_blind_filter_has_the_least_total_error_over_the_kernels():
    # Expected squared error of a filter G at each frequency, summed over the kernels (blur error plus noise
    # gain), written out here independently: the blind filter must be its minimiser (below nearby filters and
    # each kernel's own Wiener filter), the non-blind one the minimiser of its own kernel's term.
    rng = np.random.RandomState(0)
    shape, sigma = (16, 20), 0.03
    gt = rng.rand(*shape)
    spectrum = np.abs(np.fft.fft2(gt))**2 / gt.size
    kernels = [np.load(shared_path('reference', 'kernels', f'kernel_{k}.npy')) for k in (1, 2, 4)]
    responses = [ablation.blur_response(k, shape) for k in kernels]

    def filters(index):  # each filter is its response to a unit impulse (whose spectrum is 1)
        lq = np.real(np.fft.ifft2(np.ones(shape)))
        return {name: np.fft.fft2(out) for name, out in ablation.linear_deblur(lq, gt, responses, index, sigma).items()}

    def error(g, ks):
        return sum(np.abs(g * k - 1)**2 * spectrum + np.abs(g)**2 * sigma**2 for k in ks)

    blind = filters(0)['blind']
    best = error(blind, responses)
    for index in range(len(responses)):
        non_blind = filters(index)['non_blind']
        assert np.all(best <= error(non_blind, responses) + 1e-12)
        assert np.all(error(non_blind, [responses[index]]) <= error(blind, [responses[index]]) + 1e-12)
    for _ in range(5):
        nudge = 1e-3 * (rng.randn(*shape) + 1j * rng.randn(*shape))
        assert np.all(best <= error(blind + nudge, responses) + 1e-12)


def test_linear_psnr_knows_the_kernels_of_the_validation_sets():
    # The Wiener filter of the known kernel is the least-error linear filter, the identity one among them: on
    # every validation set (one per kernel) it must beat the blurred input; with the wrong kernel's response
    # (sets and kernels out of step) it would not on the mild kernel 3.
    shared = shared_path('testsets', 'Set12').parents[1]
    measured = ablation.linear_psnr('deblur_k7', shared)
    inputs = ablation.input_psnr('deblur_k7', shared)
    assert sorted(measured) == ['blind', 'non_blind']
    assert sorted(measured['non_blind']['per_set']) == sorted(inputs['per_set'])
    for name, value in inputs['per_set'].items():
        assert measured['non_blind']['per_set'][name] > value, name
    # a known-kernel task (one validation set): only the Wiener row (the blind filter among one kernel is the same
    # filter), the same value as the five-kernel task's for that kernel
    known = ablation.linear_psnr('deblur_known_k4', shared)
    assert list(known) == ['non_blind'] and list(known['non_blind']['per_set']) == ['Set12_kernel_4']
    assert known['non_blind']['psnr'] == measured['non_blind']['per_set']['Set12_kernel_4']


def _random_kernel_keys():
    from converse_basicsr.data.blur_dataset import RANDOM_KERNEL_KEYS
    return list(RANDOM_KERNEL_KEYS) + ['kernel_size']


def test_sr_variants_build_the_same_edsr_but_the_upsampler():
    import converse_basicsr  # noqa: F401
    from basicsr.archs import build_network
    nets = {
        op: build_network(dict(_yaml(ablation.config_path('sr_edsr', op))['network_g']))
        for op in ('converse', 'pixelshuffle')
    }
    shared = {k: v.shape for k, v in nets['pixelshuffle'].state_dict().items() if not k.startswith('upsample')}
    assert {k: v.shape for k, v in nets['converse'].state_dict().items() if not k.startswith('upsample')} == shared
    assert any('Converse2D' in type(m).__name__ for m in nets['converse'].modules())
    assert not any('Converse2D' in type(m).__name__ for m in nets['pixelshuffle'].modules())


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


@pytest.mark.parametrize('task, test_file, entry', [('denoise', 'test_converse_dncnn_sigma25.yml', None),
                                                    ('deblur', 'test_conversenet_deblur.yml', 3),
                                                    ('deblur_medium', 'test_conversenet_deblur.yml', 5),
                                                    ('deblur_k7', 'test_conversenet_deblur.yml', 4),
                                                    ('deblur_deep', 'test_conversenet_deblur.yml', 2),
                                                    ('deblur_known_k4', 'test_conversenet_deblur.yml', 4),
                                                    ('deblur_known_k1', 'test_conversenet_deblur.yml', 1),
                                                    ('sr_edsr', 'test_converse_srresnet_x4.yml', 'Set14')])
def test_validation_inputs_equal_the_test_configs_inputs(task, test_file, entry):
    # Build both datasets with the package's code: the ablation's val input must be bit-identical to what the
    # test config would feed the network for the same image (the test config pointed at gray Set12 for the gray
    # tasks, read as luma for SR, whose models are trained on gray images).
    shared = shared_path('testsets', 'Set12').parents[1]
    opt = ablation.derive_options(_yaml(ablation.config_path(task, 'converse')), task, 'converse', 0, shared, False)
    vals = _val_entries(opt)
    if isinstance(entry, str):  # SR: the entry of that name
        val = next(v for v in vals if v['name'] == entry)
        reference = next(e for e in _yaml(TEST_OPTIONS / test_file)['datasets'].values() if e['name'] == entry)
        reference = ablation.rewrite_shared_paths(dict(reference), shared)
        assert val['dataroot_gt'] == reference['dataroot_gt'] and val['color'] == 'luma'
        reference['color'] = 'luma'
    else:
        val = vals[0] if entry is None else next(v for v in vals if v['kernel_path'].endswith(f'/kernel_{entry}.npy'))
        reference = ablation.rewrite_shared_paths(dict(_test_entry(test_file, entry)), shared)
        reference.update(dataroot_gt=val['dataroot_gt'], color='gray')
    scale = _yaml(TEST_OPTIONS / test_file).get('scale', 1)
    assert opt['scale'] == scale
    assert opt['val']['metrics']['psnr'] == _yaml(TEST_OPTIONS / test_file)['val']['metrics']['psnr']
    ours, theirs = (build_dataset(dict(e, phase='val', scale=scale)) for e in (val, reference))
    assert len(ours) == len(theirs) >= 5
    for index in (0, len(ours) - 1):
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
    assert derived['val']['val_freq'] == 63  # never in the loop: only BasicSR's validation after it


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


def _launch(start, values, t0, marker=True):
    """A log segment as ablation.train_one appends it: the marker (``marker``: else only what converse-train
    writes), BasicSR's resume line when resumed, one validation block per value (two sets), timestamps t0 and
    t0 + 1 min."""
    lines = [f'{ablation.RUN_MARKER} 2026-12-05 10:00:00'] if marker else []
    lines.append(f'2026-12-05 {t0}:00,000 INFO: start')
    if start:
        lines.append(f'2026-12-05 {t0}:01,000 INFO: Resuming training from epoch: 0, iter: {start}.')
    for value in values:
        lines += [
            f'2026-12-05 {t0}:30,000 INFO: Validation S1', f'\t # psnr: {value:.4f}\tBest: 0 @ 0 iter',
            f'2026-12-05 {t0}:30,000 INFO: Validation S2', f'\t # psnr: {value + 1:.4f}\tBest: 0 @ 0 iter'
        ]
    lines.append(f'2026-12-05 {t0[:-2]}{int(t0[-2:]) + 1:02d}:00,000 INFO: done')
    return '\n'.join(lines) + '\n'


def test_parse_validation_log_across_resumed_launches():
    # launch 1 validated at 100 and 200, was killed before 300; a fresh launch that never saved a state
    # would start from 0 again. Launch 2 resumed from the state at 200: 300, 400 and the final one at 400.
    log = _launch(0, [20.0, 21.0], '10:00') + _launch(200, [22.0, 23.0, 23.0], '10:05')
    curves = ablation.parse_validation_log(log, val_freq=100, total_iter=400)
    assert curves['S1'] == [(100, 20.0), (200, 21.0), (300, 22.0), (400, 23.0)]
    assert curves['S2'][-1] == (400, 24.0)
    assert ablation.log_wall_seconds(log) == 120.0  # one minute per launch, the gap between them not counted
    # a relaunch from scratch (no state saved yet) replaces the first launch's values at the same iterations
    log = _launch(0, [20.0], '10:00') + _launch(0, [19.0, 21.0, 22.0], '10:05')
    assert ablation.parse_validation_log(log, 100, 200)['S1'] == [(100, 19.0), (200, 21.0)]


def _fake_run(task, operator, seed, psnr):
    return {
        'task': task, 'operator': operator, 'seed': seed, 'total_iter': 40, 'final_psnr': psnr,
        'curve': [[20, psnr - 1.0], [40, psnr]]
    }


def test_table_and_plot_from_a_fake_results_file(tmp_path):
    runs = [_fake_run('denoise', 'conv', seed, psnr) for seed, psnr in ((1, 28.1), (0, 28.0), (2, 28.3))]
    runs += [_fake_run('denoise', 'converse', 0, 28.5), _fake_run('deblur', 'conv', 0, 24.25)]
    runs += [
        dict(_fake_run('sr_edsr', op, seed, 27.0), params=params, wall_s=wall, per_set={'Set5': s5, 'Set14': 26.0})
        for op, seed, params, wall, s5 in (('pixelshuffle', 0, 1234567, 600, 28.0), ('converse', 0, 1000, 1200, 28.0),
                                           ('converse', 1, 1000, 1200, 29.0))
    ]
    results = {
        'runs': {ablation.run_key(r['task'], r['operator'], r['seed']): r
                 for r in runs},
        'inputs': {'sr_edsr': {'label': 'bicubic', 'psnr': 25.126, 'per_set': {'Set5': 26.0, 'Set14': 24.25}}}
    }
    table = ablation.build_table(results).splitlines()
    rows = [line for line in table if line.startswith(('| Con', '| EDSR', '| bicubic'))]
    # VARIANTS order, seeds sorted; mean 28.1333, sample std 0.1528; one seed has no spread
    assert rows[0].startswith('| Converse-DnCNN | converse | 28.50 | 28.50 |  | 0 | 40 | — | — |')
    assert rows[1].startswith('| Conv-DnCNN | conv | 28.13 ± 0.15 | 28.00, 28.10, 28.30 |  | 0,1,2 | 40 |')
    assert rows[2].startswith('| ConvNet | conv | 24.25 |')
    assert rows[3].startswith('| bicubic | — | 25.13 | | Set5 26.00, Set14 24.25 |')
    # per validation set: the mean over seeds (Set5 28 and 29)
    assert rows[4].startswith('| ConverseUp-EDSR | converse | 27.00 ± 0.00 | 27.00, 27.00 | Set5 28.50, Set14 26.00 | '
                              '0,1 | 40 | 1,000 | 20.0 min |')
    assert rows[5].startswith('| EDSR | pixelshuffle | 27.00 | 27.00 | Set5 28.00, Set14 26.00 | 0 | 40 | 1,234,567 | '
                              '10.0 min |')
    assert len(rows) == 6 and sum(line.startswith('**') for line in table) == 3
    png = tmp_path / 'ablation_psnr.png'
    ablation.plot_curves(results, png)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    mean, std = ablation.mean_std([1.0])
    assert mean == 1.0 and math.isnan(std)


def test_plot_draws_the_wiener_line_of_a_known_kernel_task_only(tmp_path, monkeypatch):
    # a known-kernel panel shows how far the variants are from the Wiener oracle; a blind panel leaves its Wiener
    # row out (about 6 dB above its curves)
    from matplotlib.axes import Axes
    lines = []
    monkeypatch.setattr(Axes, 'axhline', lambda ax, y, **kwargs: lines.append((y, kwargs['linestyle'])))
    runs = {ablation.run_key(t, 'conv', 0): _fake_run(t, 'conv', 0, 27.0) for t in ('deblur_k7', 'deblur_known_k4')}
    wiener = {
        task: {'non_blind': {'label': 'Wiener', 'psnr': psnr}}
        for task, psnr in (('deblur_k7', 31.75), ('deblur_known_k4', 30.4))
    }
    results = {'runs': runs, 'inputs': {'deblur_known_k4': {'label': 'blurred input', 'psnr': 22.85}}, 'linear': wiener}
    ablation.plot_curves(results, tmp_path / 'ablation_psnr.png')
    assert sorted(lines) == [(22.85, '--'), (30.4, ':')]


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
    assert '| Conv-DnCNN | conv | 29.00 | 29.00 |  | 1 | 40 |' in (tmp_path / 'ablation_results.md').read_text()


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
    assert sorted(results['runs']) == sorted(
        ablation.run_key(t, o, 0) for t, o in ablation.VARIANTS if t in ablation.QUICK_TASKS)
    assert all(math.isfinite(r['final_psnr']) for r in results['runs'].values())
    assert (tmp_path / 'ablation_psnr.png').is_file() and (tmp_path / 'ablation_results.md').is_file()


def test_input_psnr_of_bicubic_is_the_literature_value():
    # Bicubic ×4 on Set5, Y channel, crop 4: 28.42 dB in the SR literature (EDSR, RCAN tables), measured here
    # through the ablation's validation entries; a wrong channel, crop or resize gives a different number.
    shared = shared_path('testsets', 'Set5').parents[1]
    measured = ablation.input_psnr('sr_edsr', shared)
    assert measured['label'] == 'bicubic'
    assert abs(measured['per_set']['Set5'] - 28.42) < 0.02


def test_train_one_resumes_and_appends_to_its_log(tmp_path, monkeypatch):
    # converse-train stood in by a fake that logs two validations per launch: the first launch is "killed"
    # (exit 1) after iteration 100, the second resumes from the state at 100 and ends.
    launches = []

    def fake_run(command, cwd, env, stdout, stderr):
        launches.append(command)
        if len(launches) == 1:
            stdout.write(_launch(0, [20.0], '10:00', marker=False))
            return subprocess.CompletedProcess(command, 1)
        stdout.write(_launch(100, [21.0, 21.0], '10:05', marker=False))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(ablation.subprocess, 'run', fake_run)
    monkeypatch.setattr(ablation, 'derive_options',
                        lambda opt, *a: dict(opt, name='fake', train={'total_iter': 200}, val={'val_freq': 100}))
    monkeypatch.setattr(ablation, 'count_params', lambda network: 7)
    args = type('Args', (), dict(shared=str(tmp_path), quick=False, work_dir=str(tmp_path), threads=1))
    with pytest.raises(RuntimeError, match='exited with 1'):
        ablation.train_one('deblur_medium', 'conv', 0, args)
    run = ablation.train_one('deblur_medium', 'conv', 0, args)
    assert all('--auto_resume' in command for command in launches)
    assert run['curve'] == [[100, 20.5], [200, 21.5]] and run['launches'] == 2 and run['wall_s'] == 120.0
    assert (tmp_path / 'logs' / 'fake.log').read_text().count(ablation.RUN_MARKER) == 2


@pytest.mark.parametrize('argv, cores, jobs', [([], 2, 1), (['--quick'], 2, 2), (['--quick'], 1, 1),
                                               (['--quick'], 8, 2), (['--quick', '--jobs', '1'], 2, 1),
                                               (['--jobs', '3'], 2, 3)])
def test_jobs_default_is_two_for_quick_runs_only(argv, cores, jobs, monkeypatch):
    monkeypatch.setattr(ablation.os, 'cpu_count', lambda: cores)
    assert ablation.parse_args(argv).jobs == jobs


def test_quick_leaves_the_known_kernel_tasks_out_unless_named():
    # --quick must stay within 5 minutes: its default tasks are all but the known-kernel ones
    assert ablation.parse_args([]).tasks == list(ablation.TASKS)
    quick = ablation.parse_args(['--quick']).tasks
    assert quick == [t for t in ablation.TASKS if not t.startswith('deblur_known_')] and 'deblur_deep' in quick
    assert ablation.parse_args(['--quick', '--tasks', 'deblur_known_k4']).tasks == ['deblur_known_k4']


def test_jobs_below_one_is_refused(capsys):
    with pytest.raises(SystemExit):
        ablation.parse_args(['--jobs', '0'])
    assert '--jobs must be at least 1, not 0' in capsys.readouterr().err


@pytest.mark.parametrize('content', ['{bad', '[]', '{"inputs": {}}'])
def test_a_corrupt_results_file_is_named_and_left_alone(tmp_path, capsys, content):
    path = tmp_path / 'ablation_results.json'
    path.write_text(content)
    with pytest.raises(SystemExit) as error:
        ablation.main(['--table-only', '--results', str(path)])
    assert f'ablation: {path}: not an ablation results file' in str(error.value)
    assert path.read_text() == content
