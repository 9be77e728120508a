"""converse-compare: the published rows against the test pipeline and paper_tables.json, a BasicSR arch from
a checkpoint, a ``module:callable`` row, failing rows, identical input hashes and the crop grid.

CI-sized: one Set5 image (×4) and one Set12 image (σ = 25); the full-set means are behind ``-m slow``.
"""
import csv
import hashlib
import json

import numpy as np
import pytest
import torch
import yaml

from basicsr.data import build_dataset
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr import compare as cli
from converse_basicsr import test as entry
from converse_basicsr.evaluation import figures, runner
from converse_basicsr.inference import Restorer, run
from tests.helpers.shared_files import REPO_ROOT, shared_path, shared_root

SR_IMAGE = 'butterfly.png'
TINY_MSRRESNET = dict(type='MSRResNet', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, upscale=4)


def read_rows(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def set5_subset(folder, images):
    meta = folder / 'meta_info.txt'
    meta.write_text('\n'.join(images) + '\n')
    return {'dataroot_gt': str(shared_path('testsets', 'Set5')), 'meta_info': str(meta)}


def train_tiny_msrresnet(path, iterations=3):
    """A BasicSR MSRResNet after a few Adam steps on ×4 patches of Set5, saved as BasicSR does ({'params': ...})."""
    torch.manual_seed(0)
    np.random.seed(0)
    net = ARCH_REGISTRY.get('MSRResNet')(**{k: v for k, v in TINY_MSRRESNET.items() if k != 'type'})
    train_set = build_dataset(
        dict(name='train', type='BicubicDownsampleDataset', phase='train', scale=4, gt_size=32,
             dataroot_gt=str(shared_path('testsets', 'Set5')), io_backend={'type': 'disk'}))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(iterations):
        samples = [train_set[(step + i) % len(train_set)] for i in range(4)]
        loss = torch.nn.functional.l1_loss(
            net(torch.stack([s['lq'] for s in samples])), torch.stack([s['gt'] for s in samples]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save({'params': net.state_dict()}, path)
    return net.eval()


@pytest.fixture(scope='module')
def sr_run(tmp_path_factory):
    """One ``converse-compare -opt`` run on Set5 ×4 (one image) with every kind of row, through ``main``."""
    folder = tmp_path_factory.mktemp('compare_sr')
    msrresnet = train_tiny_msrresnet(folder / 'msrresnet.pth')
    opt = dict(
        name='sr', protocol=dict(task='sr', scale=4), datasets={'Set5': set5_subset(folder, [SR_IMAGE])}, models=[
            'input', 'bicubic',
            dict(name='Converse-SRResNet', zoo='converse_srresnet'),
            dict(TINY_MSRRESNET, name='MSRResNet', path=str(folder / 'msrresnet.pth')),
            dict(name='custom', callable='tests.helpers.compare_models:nearest_sr', kwargs={'scale': 4}),
            dict(name='gray', callable='tests.helpers.compare_models:gray_model'),
            dict(name='nan', callable='tests.helpers.compare_models:nan_model'), 'no_such_zoo_model'
        ], model_dir=str(shared_path('reference', 'zoo')), flops_size=64, warmup=0, crop=32)
    config = folder / 'compare_sr.yml'
    config.write_text(yaml.safe_dump(opt, sort_keys=False))
    status = cli.main(['-opt', str(config), '--results-root', str(folder / 'results'), '--plot'])
    out = folder / 'results' / 'sr'
    return dict(status=status, out=out, msrresnet=msrresnet,
                rows={r['model']: r
                      for r in read_rows(out / 'comparison.csv')},
                per_image={r['model']: r
                           for r in read_rows(out / 'per_image.csv')})


@pytest.fixture(scope='module')
def sr_sample():
    return build_dataset(
        dict(name='Set5', type='BicubicDownsampleDataset', scale=4, io_backend={'type': 'disk'},
             dataroot_gt=str(shared_path('testsets', 'Set5')), phase='test'))


@pytest.fixture(scope='module')
def tables():
    return json.loads(shared_path('reference', 'paper_tables.json').read_text())


def y_metrics(output, gt):
    """PSNR / SSIM on Y with crop 4, computed here from the uint8 images BasicSR would save."""
    img, img2 = tensor2img([output]), tensor2img([gt[None]])
    return calculate_psnr(img, img2, 4, test_y_channel=True), calculate_ssim(img, img2, 4, test_y_channel=True)


def test_failed_rows_are_reported_and_the_others_run(sr_run):
    assert sr_run['status'] == 1
    rows = sr_run['rows']
    assert 'expected (1, 3, 256, 256)' in rows['gray']['error'] or 'channels' in rows['gray']['error']
    assert 'NaN or infinite' in rows['nan']['error']
    assert 'no_such_zoo_model' in rows['no_such_zoo_model']['error']
    for name in ('input', 'bicubic', 'Converse-SRResNet', 'MSRResNet', 'custom'):
        assert rows[name]['error'] == '' and float(rows[name]['psnr']) > 15, rows[name]
    for name in ('gray', 'nan', 'no_such_zoo_model'):
        assert rows[name]['psnr'] == '' and sr_run['per_image'][name]['psnr'] == ''


def test_converse_row_equals_test_pipeline_and_reference(sr_run, tables, tmp_path, monkeypatch):
    row = sr_run['per_image']['Converse-SRResNet']
    reference = tables['sr_x4_y_channel']['reference_per_image']['Converse-SRResNet']['Set5'][SR_IMAGE]
    assert abs(float(row['psnr']) - reference['psnr_y']) < 0.01
    assert abs(float(row['ssim']) - reference['ssim_y']) < 1e-4  # the reference is rounded to 4 decimals
    # the shipped test config on the same image: identical per-image values
    opt = yaml.safe_load(
        (REPO_ROOT / 'options/test/test_converse_srresnet_x4.yml').read_text().replace('../shared', str(shared_root())))
    opt['num_gpu'] = 0
    opt['datasets'] = {'test_1': dict(opt['datasets']['test_1'], **set5_subset(tmp_path, [SR_IMAGE]))}
    config = tmp_path / 'test.yml'
    config.write_text(yaml.safe_dump(opt, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    [pipeline] = read_rows(entry.run(['-opt', str(config)])[0])
    assert pipeline['image'] == SR_IMAGE
    assert (pipeline['psnr'], pipeline['ssim']) == (row['psnr'], row['ssim'])


def test_basicsr_arch_from_checkpoint_and_custom_callable(sr_run, sr_sample):
    index = [p.split('/')[-1] for p in sr_sample.gt_images.paths].index(SR_IMAGE)
    sample = sr_sample[index]
    from tests.helpers.compare_models import nearest_sr
    with torch.no_grad():
        expected = {'MSRResNet': sr_run['msrresnet'](sample['lq'][None]), 'custom': nearest_sr(4)(sample['lq'][None])}
    for name, output in expected.items():
        psnr, ssim = y_metrics(output, sample['gt'])
        row = sr_run['per_image'][name]
        assert abs(float(row['psnr']) - psnr) < 1e-6 and abs(float(row['ssim']) - ssim) < 1e-6, name
    assert int(sr_run['rows']['MSRResNet']['params']) == sum(p.numel() for p in sr_run['msrresnet'].parameters())
    assert int(sr_run['rows']['Converse-SRResNet']['params']) > int(sr_run['rows']['MSRResNet']['params'])
    assert int(sr_run['rows']['custom']['params']) == 0
    # the Converse model's FFTs are added analytically; a conv-only model has none
    assert float(sr_run['rows']['Converse-SRResNet']['gflops_fft']) > 0
    assert float(sr_run['rows']['MSRResNet']['gflops_fft']) == 0 < float(sr_run['rows']['MSRResNet']['gflops_counted'])


def test_input_hashes_are_identical_across_rows(sr_run, sr_sample):
    hashes = {r['input_sha256'] for r in read_rows(sr_run['out'] / 'per_image.csv')}
    assert len(hashes) == 1
    index = [p.split('/')[-1] for p in sr_sample.gt_images.paths].index(SR_IMAGE)
    lq = sr_sample[index]['lq'][None]
    digest = hashlib.sha256(str(tuple(lq.shape)).encode())
    digest.update(lq.numpy().tobytes())
    assert hashes == {digest.hexdigest()}


def test_crop_grid_has_the_tiles(sr_run, sr_sample):
    import cv2
    grid = cv2.cvtColor(cv2.imread(str(sr_run['out'] / 'grids' / 'Set5' / 'butterfly.png')), cv2.COLOR_BGR2RGB)
    gt_tensor = sr_sample[[p.split('/')[-1] for p in sr_sample.gt_images.paths].index(SR_IMAGE)]['gt']
    gt = tensor2img([gt_tensor[None]], rgb2bgr=False)
    height, width = gt.shape[:2]
    # full image | gt | degraded | bicubic, Converse-SRResNet, MSRResNet, custom ('input' shares the degraded tile)
    tiles, tile, gap = 7, figures.GRID_TILE, figures.GRID_GAP
    full_width = round(width * tile / height)
    assert grid.shape[1:] == (full_width + (tiles - 1) * (tile + gap), 3)
    assert grid.shape[0] >= tile + 2 * figures.LINE_HEIGHT  # the label band: at least label and PSNR
    left, top, side = map(int, sr_run['per_image']['Converse-SRResNet']['crop_box'].split(','))
    assert side == 32 and 0 <= left <= width - side and 0 <= top <= height - side
    zoom = tile // side

    def panel(j):
        x0 = full_width + gap + (j - 1) * (tile + gap)
        return grid[:tile, x0:x0 + tile]

    expected_gt = np.kron(gt[top:top + side, left:left + side], np.ones((zoom, zoom, 1), np.uint8))
    np.testing.assert_array_equal(panel(1), expected_gt)
    lq = tensor2img([sr_sample[[p.split('/')[-1] for p in sr_sample.gt_images.paths].index(SR_IMAGE)]['lq'][None]],
                    rgb2bgr=False)
    degraded = lq.repeat(4, axis=0).repeat(4, axis=1)  # the degraded tile: the input enlarged by repetition
    np.testing.assert_array_equal(
        panel(2), np.kron(degraded[top:top + side, left:left + side], np.ones((zoom, zoom, 1), np.uint8)))
    assert not np.array_equal(panel(2), panel(1)) and not np.array_equal(panel(4), panel(2))
    assert (sr_run['out'] / 'psnr_vs_time.png').stat().st_size > 1000
    md = (sr_run['out'] / 'comparison.md').read_text()
    assert 'Converse2D' in md and 'FlopCounterMode' in md and '| Set5 | Converse-SRResNet | 1 |' in md


def test_python_api_with_modules_on_set12(tables, tmp_path):
    """In-memory modules, the published denoiser on one Set12 image against paper_tables.json."""
    from converse_basicsr.hub import zoo
    meta = tmp_path / 'meta.txt'
    meta.write_text('07.png\n')
    dncnn = zoo.load_pretrained('converse_dncnn', model_dir=shared_path('reference', 'zoo'))
    result = runner.compare(['input', {'name': 'Converse-DnCNN', 'module': dncnn},
                             torch.nn.Identity(), 'bicubic'],
                            {'Set12': {'dataroot_gt': str(shared_path('testsets', 'Set12')), 'meta_info': str(meta)}},
                            {'task': 'denoise', 'sigma': 25, 'color': 'gray'}, name='dn', results_root=str(tmp_path),
                            flops_size=32, warmup=0, progress=False)
    assert result.failed == ['bicubic']  # a row for super-resolution only
    assert 'super-resolution' in [r for r in result.rows if r['model'] == 'bicubic'][0]['error']
    rows = {r['model']: r for r in result.per_image}
    reference = tables['denoising_sigma25_gray']['reference_per_image']['Converse-DnCNN']['Set12']['07.png']
    assert abs(rows['Converse-DnCNN']['psnr'] - reference['psnr']) < 0.01
    assert abs(rows['Converse-DnCNN']['ssim'] - reference['ssim']) < 1e-4
    assert rows['Identity']['psnr'] == rows['input']['psnr'] < 21  # σ = 25 noise: about 20.2 dB


def test_entries_with_the_same_label_keep_their_own_means(tmp_path):
    """Two entries named alike (the same model listed twice, say) each average their own images only."""
    meta = tmp_path / 'meta.txt'
    meta.write_text('07.png\n08.png\n')
    result = runner.compare(['input', torch.nn.Identity(), torch.nn.Identity()],
                            {'Set12': {'dataroot_gt': str(shared_path('testsets', 'Set12')), 'meta_info': str(meta)}},
                            {'task': 'denoise', 'sigma': 25, 'color': 'gray'}, name='same', results_root=str(tmp_path),
                            flops_size=32, warmup=0, progress=False)
    identity = [r for r in result.rows if r['model'] == 'Identity']
    assert len(identity) == 2 and [r['images'] for r in identity] == [2, 2]
    assert identity[0]['psnr'] == identity[1]['psnr'] == [r for r in result.rows if r['model'] == 'input'][0]['psnr']
    assert len(result.per_image) == 6


def test_cli_errors_exit_2(tmp_path, capsys):
    assert cli.main(['--task', 'sr', '--model', 'input', '--results-root', str(tmp_path)]) == 2
    assert 'no datasets' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(['--task', 'blur', '--model', 'input'])
    with pytest.raises(SystemExit) as stop:  # a flag's value: the parser's one-line error
        cli.main(['--task', 'sr', '--dataset', 'Set5', '--model', 'input'])
    assert stop.value.code == 2 and 'NAME=FOLDER' in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize('protocol,dataset,model,mean',
                         [({'task': 'denoise', 'sigma': 25, 'color': 'gray'}, 'Set12', 'converse_dncnn', 30.6986),
                          ({'task': 'sr', 'scale': 4}, 'Set5', 'converse_srresnet', 32.2683)])
def test_full_set_means(tmp_path, protocol, dataset, model, mean):
    """The means converse-test prints for the shipped configs (Set12 σ = 25: 30.6986; Set5 ×4: 32.2683)."""
    result = runner.compare([model], {dataset: str(shared_path('testsets', dataset))}, protocol,
                            results_root=str(tmp_path), model_dir=str(shared_path('reference',
                                                                                  'zoo')), warmup=0, progress=False)
    assert round(result.rows[0]['psnr'], 4) == mean


class _PeriodicModel(torch.nn.Module):
    """A circular local op that declares its periodic boundary, as Converse-USRNet does."""
    periodic_boundary = True

    def forward(self, x):
        return x + 0.5 * torch.roll(x, 2, -1) - torch.roll(x, -3, -2)


def test_tiles_of_a_periodic_model_wrap_at_the_border():
    x = torch.rand(1, 1, 30, 41)
    sample = runner.Sample('set', 'img.png', x, x)
    model = _PeriodicModel()
    info, planner = runner.prepare_model(model, sample, 1, torch.device('cpu'), 8)
    assert torch.equal(runner.run_model(info, sample, 8, tile_pad=3, planner=planner), model(x))


class _RunsFrom56(torch.nn.Module):
    """The identity on inputs of at least 56x56 (a model whose operator pads refuses smaller ones)."""

    def forward(self, x):
        if min(x.shape[-2:]) < 56:
            raise ValueError(f'{x.shape[-1]}x{x.shape[-2]} is smaller than 56x56')
        return x.clone()


def test_compare_merges_a_short_last_tile_as_restore_does(tmp_path):
    """256 = 5 x 48 + 16: the last tile with its 32 pixels of context is 48 wide, below the model's 56; it is
    merged into the one before it (as converse-restore's tiles are) instead of failing the model's row."""
    meta = tmp_path / 'meta.txt'
    meta.write_text('07.png\n')
    result = runner.compare(['input', {'name': 'big', 'module': _RunsFrom56()}],
                            {'Set12': {'dataroot_gt': str(shared_path('testsets', 'Set12')), 'meta_info': str(meta)}},
                            {'task': 'denoise', 'sigma': 25, 'color': 'gray'}, name='merge', results_root=str(tmp_path),
                            tile=48, flops_size=64, warmup=0, progress=False)
    rows = {r['model']: r for r in result.rows}
    assert result.failed == [] and rows['big']['error'] == ''
    assert rows['big']['psnr'] == rows['input']['psnr']  # the identity, assembled from tiles
    x = torch.rand(1, 1, 256, 256)
    restorer = Restorer(_RunsFrom56(), tile=56)
    assert restorer.min_size == 56 and torch.equal(run(restorer.info, x, tile=48), x)
