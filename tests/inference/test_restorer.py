"""``converse-restore`` and ``Restorer``: PSNR parity with the protocols, tiling, formats, bad input.

The degraded inputs are made by the protocol datasets (GaussianNoiseDataset, BicubicDownsampleDataset,
BlurKernelDataset, phase 'test') and fed to the CLI as float ``.npy`` (the protocols do not quantise
them); the CLI's uint8 PNG output is scored with BasicSR's ``calculate_psnr`` against the per-image
PSNRs of the published code in reference/paper_tables.json (the test pipeline matches them to 0.01 dB).
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import converse_basicsr  # noqa: F401  (basicsr compat fixes before importing basicsr)
from basicsr.metrics import calculate_psnr
from basicsr.utils.registry import DATASET_REGISTRY
from converse_basicsr.hub.zoo import load_pretrained
from converse_basicsr.inference import restorer as inference
from converse_basicsr.inference.restorer import Restorer, tiled_forward
from converse_basicsr.restore import main
from tests.helpers.shared_files import REPO_ROOT, shared_path

pytestmark = pytest.mark.usefixtures('one_thread')

# task: (model, testset, dataset type, dataset options, crop_border, Y channel, where the tables keep its
# per-image PSNRs: a key path into paper_tables.json, then per image name the field or None)
TASKS = {
    'denoise': ('converse_dncnn', 'Set12', 'GaussianNoiseDataset', {'color': 'gray', 'sigma': 25}, 0, False,
                ('denoising_sigma25_gray', 'reference_per_image', 'Converse-DnCNN', 'Set12'), 'psnr'),
}
for testset in ('Set5', 'Set14'):
    TASKS[f'sr_{testset.lower()}'] = ('converse_srresnet', testset, 'BicubicDownsampleDataset', {'scale': 4}, 4, True,
                                      ('sr_x4_y_channel', 'reference_per_image', 'Converse-SRResNet',
                                       testset), 'psnr_y')
for k in range(1, 6):
    for model, key in (('conversenet', 'ConverseNet'), ('converse_usrnet', 'Converse-USRNet')):
        table = ('deblurring_sigma2.55', 'reference_per_image', 'CBSD68_4', key, 'per_kernel', f'kernel_{k}',
                 'per_image')
        options = {'sigma': 2.55, 'mod_crop': 8, 'kernel': f'kernel_{k}'}
        TASKS[f'{model}_kernel_{k}'] = (model, 'CBSD68_4', 'BlurKernelDataset', options, 1, False, table, None)


def table_psnr(tables, task, image):
    *_, keys, field = TASKS[task]
    for key in keys:
        tables = tables[key]
    return tables[image] if field is None else tables[image][field]


# CI: denoising and SR on one or two full images against the tables, deblurring on one full 481x321 image
# against the tables (an independent reference) and on crops against the protocol computed directly.
# The full test sets run with `-m slow`.
CI_CASES = [('denoise', ['01.png']), ('sr_set5', ['bird.png', 'butterfly.png']),
            ('conversenet_kernel_2', ['101087.png'])]
SLOW_CASES = [('denoise', None), ('sr_set5', None), ('sr_set14', None)] + \
    [(f'{m}_kernel_{k}', None) for m in ('conversenet', 'converse_usrnet') for k in range(1, 6)]


def degrade(task, images, folder, root=None):
    """Write the protocol's degraded inputs as ``<stem>.npy`` into ``folder``.

    Returns ({image name: GT as uint8 HWC RGB}, kernel path or None)."""
    model, testset, dataset_type, extra, *_ = TASKS[task]
    root = root or shared_path('testsets', testset)
    images = images or sorted(p.name for p in root.iterdir())
    meta = folder / 'meta_info.txt'
    meta.write_text('\n'.join(images) + '\n')
    opt = {
        'name': task, 'type': dataset_type, 'phase': 'test', 'dataroot_gt': str(root), 'meta_info': str(meta),
        'io_backend': {'type': 'disk'}, **extra
    }
    kernel_path = None
    if 'kernel' in extra:
        kernel_path = shared_path('reference', 'kernels', f"{opt.pop('kernel')}.npy")
        opt['kernel_path'] = str(kernel_path)
    dataset = DATASET_REGISTRY.get(dataset_type)(opt)
    gts = {}
    for i in range(len(dataset)):
        sample = dataset[i]
        name = sample['gt_path'].replace('\\', '/').rsplit('/', 1)[-1]
        np.save(folder / f'{name.rsplit(".", 1)[0]}.npy', sample['lq'].numpy().transpose(1, 2, 0))
        gts[name] = (sample['gt'].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    assert sorted(gts) == sorted(images)
    return gts, kernel_path


def check_cli_psnr(task, images, tmp_path, zoo_dir, capsys, gt_root=None, reference=None):
    """CLI PSNR vs ``reference(name)`` (default: the published code's per-image PSNR of the tables)."""
    model, *_, crop, y_channel, _, _ = TASKS[task]
    tables = json.loads(shared_path('reference', 'paper_tables.json').read_text())
    reference = reference or (lambda name, lq_file, kernel: table_psnr(tables, task, name))
    lq, out = tmp_path / 'lq', tmp_path / 'out'
    lq.mkdir()
    gts, kernel = degrade(task, images, lq, gt_root)
    argv = ['--model', model, '--model-dir', str(zoo_dir), '--input', str(lq), '--output', str(out)]
    assert main(argv + (['--kernel', str(kernel)] if model == 'converse_usrnet' else [])) == 0
    assert f'restored {len(gts)}/{len(gts)} images with {model}' in capsys.readouterr().out
    for name, gt in gts.items():
        restored = cv2.imread(str(out / f'{name.rsplit(".", 1)[0]}.png'), cv2.IMREAD_UNCHANGED)
        assert restored is not None and restored.dtype == np.uint8
        if gt.shape[2] == 3:  # files are BGR; calculate_psnr's Y channel expects BGR
            gt = cv2.cvtColor(gt, cv2.COLOR_RGB2BGR)
        else:
            gt = gt[..., 0]
        psnr = calculate_psnr(restored, gt, crop, test_y_channel=y_channel)
        expected = reference(name, lq / f'{name.rsplit(".", 1)[0]}.npy', kernel)
        assert psnr == pytest.approx(expected, abs=0.01), (task, name)


@pytest.mark.parametrize('task, images', CI_CASES, ids=[c[0] for c in CI_CASES])
def test_cli_psnr_matches_protocol(task, images, tmp_path, zoo_dir, capsys):
    check_cli_psnr(task, images, tmp_path, zoo_dir, capsys)


@pytest.mark.parametrize('task', ['conversenet_kernel_1', 'converse_usrnet_kernel_3'])
def test_cli_psnr_matches_direct_protocol_deblur_crop(task, tmp_path, zoo_dir, capsys):
    """Deblurring on a 96x96 crop of a CBSD68 image: the CLI's PSNR equals the protocol computed directly
    (model(lq) / model(lq, kernel, sf=1) on the same degraded input, clamp, x255, round, RGB PSNR, crop 1)."""
    gt_root = tmp_path / 'gt'
    gt_root.mkdir()
    image = cv2.imread(str(shared_path('testsets', 'CBSD68_4', '101087.png')), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(gt_root / 'crop.png'), image[100:196, 200:296])
    net = load_pretrained(TASKS[task][0], model_dir=zoo_dir)

    def direct(name, lq_file, kernel):
        lq = torch.from_numpy(np.load(lq_file).transpose(2, 0, 1))[None]
        k = torch.from_numpy(np.load(kernel).astype(np.float32))[None, None]
        with torch.no_grad():
            out = net(lq, k, 1) if TASKS[task][0] == 'converse_usrnet' else net(lq)
        out = out[0].clamp(0, 1).numpy().transpose(1, 2, 0)
        gt = cv2.cvtColor(cv2.imread(str(gt_root / name)), cv2.COLOR_BGR2RGB)
        return calculate_psnr((out * 255).round().astype(np.uint8), gt, 1)

    check_cli_psnr(task, ['crop.png'], tmp_path, zoo_dir, capsys, gt_root, direct)


@pytest.mark.slow
@pytest.mark.parametrize('task, images', SLOW_CASES, ids=[c[0] for c in SLOW_CASES])
def test_cli_psnr_matches_protocol_full_testsets(task, images, tmp_path, zoo_dir, capsys):
    check_cli_psnr(task, images, tmp_path, zoo_dir, capsys)


# ----------------------------------------------------------------------------- tiling
def test_tiled_forward_is_exact_for_local_ops():
    """Tiles are placed without seams or offsets: for a pointwise / upsampling op the result is exact."""
    x = torch.rand(1, 3, 37, 50)
    for scale, fn in ((1, lambda t: t * 2 + 1), (3, lambda t: torch.nn.functional.interpolate(t, scale_factor=3))):
        for tile, pad in ((8, 0), (16, 5), (64, 3)):
            assert torch.equal(tiled_forward(fn, x, tile, pad, scale), fn(x))


def _noisy_crop(size):
    gt = cv2.imread(str(shared_path('testsets', 'Set12', '08.png')), cv2.IMREAD_GRAYSCALE)[:size, :size]
    noisy = gt[..., None].astype(np.float32) / 255 + np.random.RandomState(0).normal(0, 25 / 255, (size, size, 1))
    return gt, noisy.astype(np.float32)


# Converse-DnCNN, --tile-pad 32: the README's seam tolerances (measured 0.0113 on the 160² crop with tiles of 80,
# 0.0205 on the 512² crop with tiles of 128)
SEAM_TOLERANCE = 0.012
SEAM_TOLERANCE_512 = 0.021


def check_tiling(size, tile, pad, zoo_dir, tolerance=SEAM_TOLERANCE):
    gt, noisy = _noisy_crop(size)
    restorer = Restorer('converse_dncnn', model_dir=zoo_dir)
    whole = restorer.restore(noisy)
    restorer.tile, restorer.tile_pad = tile, pad
    tiled = restorer.restore(noisy)
    assert whole.tile is None and tiled.tile == tile and tiled.image.shape == whole.image.shape == (size, size)
    diff = np.abs(tiled.float_image - whole.float_image)
    seams = np.arange(tile, size, tile)
    band = np.concatenate([seams + d for d in (-2, -1, 0, 1)])  # two pixels either side of each seam
    assert max(diff[band].max(), diff[:, band].max()) <= tolerance  # along the tile boundaries
    assert diff.max() <= tolerance  # and everywhere
    assert abs(calculate_psnr(tiled.image, gt, 0) - calculate_psnr(whole.image, gt, 0)) < 0.05


def test_tiling_bound_small(zoo_dir):
    check_tiling(160, 80, 32, zoo_dir)  # 4 tiles, the same 32-pixel context as the 512 case


def test_tiled_forward_wrap_is_exact_for_periodic_local_ops():
    """With ``wrap`` a border tile's context comes from the opposite side: exact for a circular local op."""
    x = torch.rand(1, 2, 30, 41)

    def fn(t):
        return t + 0.5 * torch.roll(t, 2, -1) - torch.roll(t, -3, -2)

    for tile, pad in ((8, 3), (16, 4)):
        assert torch.equal(tiled_forward(fn, x, tile, pad, 1, wrap=True), fn(x))
        assert not torch.equal(tiled_forward(fn, x, tile, pad, 1), fn(x))  # clipped context differs at the border


def test_usrnet_tiles_wrap_at_the_border(zoo_dir):
    """Converse-USRNet's data step treats the image as periodic: tiles with wrapped border context stay near the
    whole-image result (measured: max 32.7, mean 0.18 grey levels), where clipped context was 253 grey levels off."""
    from scipy import ndimage
    kernel = np.load(shared_path('reference', 'kernels', 'kernel_1.npy'))
    rgb = cv2.imread(str(shared_path('testsets', 'CBSD68_4', '101087.png')))[:96, :96, ::-1]
    blurred = (ndimage.convolve(rgb, kernel[..., None], mode='wrap') / 255).astype(np.float32)
    restorer = Restorer('converse_usrnet', model_dir=zoo_dir, kernel=kernel)
    assert restorer.periodic
    whole = restorer.restore(blurred)
    restorer.tile, restorer.tile_pad = 48, 24
    diff = np.abs(restorer.restore(blurred).float_image - whole.float_image) * 255
    assert diff.max() <= 40 and diff.mean() <= 0.3


@pytest.mark.slow
def test_tiling_bound_dncnn_512(zoo_dir):
    check_tiling(512, 128, 32, zoo_dir, SEAM_TOLERANCE_512)


# ----------------------------------------------------------------------------- formats
@pytest.mark.parametrize('ext', ['.png', '.tif'])
def test_sixteen_bit_output_is_the_float_result(zoo_dir, tmp_path, capsys, ext):
    """A 16-bit PNG / TIFF comes back 16-bit in the same format, and its values, scaled by 1/65535, are the
    float result rounded to 16 bits (an 8-bit result stored in 16 bits would be off by up to 128/65535)."""
    rng = np.random.RandomState(0)
    inp, out = tmp_path / 'in', tmp_path / 'out'
    inp.mkdir()
    deep = (rng.rand(24, 20) * 65535).astype(np.uint16)
    assert cv2.imwrite(str(inp / f'deep{ext}'), deep)
    cv2.imwrite(str(inp / 'colour.png'), (rng.rand(24, 20, 3) * 255).astype(np.uint8))
    assert main(['--model', 'converse_dncnn', '--model-dir',
                 str(zoo_dir), '-i',
                 str(inp), '-o',
                 str(out), '--compare']) == 0
    stdout = capsys.readouterr().out
    written = cv2.imread(str(out / f'deep{ext}'), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (24, 20)
    model = load_pretrained('converse_dncnn', model_dir=zoo_dir)
    with torch.no_grad():  # the float result, computed here from the 16-bit input
        expected = model(torch.from_numpy(deep.astype(np.float32) / 65535)[None, None])[0, 0].clamp(0, 1).numpy()
    assert np.abs(written / 65535 - expected).max() <= 0.5 / 65535 + 1e-6
    colour = cv2.imread(str(out / 'colour.png'), cv2.IMREAD_UNCHANGED)
    assert colour.dtype == np.uint8 and colour.shape == (24, 20)
    assert 'colour.png' in stdout and 'converted to grayscale' in stdout
    assert f'deep{ext}' in stdout and stdout.count('converted to grayscale') == 1
    assert cv2.imread(str(out / f'deep_compare{ext}'), cv2.IMREAD_UNCHANGED).shape == (24, 40)


def test_npy_hw_input_and_gray_to_rgb_replication(zoo_dir, tmp_path, capsys):
    """A float HW ``.npy`` is a one-channel image: the grayscale model restores it as is, an RGB model gets
    it replicated to three channels (checked against the model run on the replicated array here)."""
    gray = np.random.RandomState(1).rand(16, 12).astype(np.float32)
    inp = tmp_path / 'in'
    inp.mkdir()
    np.save(inp / 'g.npy', gray)
    for model in ('converse_dncnn', 'converse_srresnet'):
        out = tmp_path / model
        assert main(['--model', model, '--model-dir', str(zoo_dir), '-i', str(inp / 'g.npy'), '-o', str(out)]) == 0
        stdout = capsys.readouterr().out
        written = cv2.imread(str(out / 'g.png'), cv2.IMREAD_UNCHANGED)
        net = load_pretrained(model, model_dir=zoo_dir)
        x = torch.from_numpy(gray)[None, None]
        if model == 'converse_srresnet':
            assert 'replicated to 3 channels' in stdout
            x = x.repeat(1, 3, 1, 1)
            written = cv2.cvtColor(written, cv2.COLOR_BGR2RGB)
        with torch.no_grad():
            expected = net(x)[0].clamp(0, 1).numpy().transpose(1, 2, 0).squeeze()
        assert written.shape == expected.shape == ((16, 12) if model == 'converse_dncnn' else (64, 48, 3))
        assert np.abs(written / 255 - expected).max() <= 0.5 / 255 + 1e-6


def test_scale_option(zoo_dir, tmp_path, capsys):
    """``--scale`` is USRNet's sf (the output is sf times larger); for a fixed-scale model it must match the
    measured scale."""
    rgb = (np.random.RandomState(0).rand(16, 12, 3) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'x.png'), rgb)
    np.save(tmp_path / 'k.npy', np.load(shared_path('reference', 'kernels', 'kernel_1.npy')))
    base = ['--model-dir', str(zoo_dir), '-i', str(tmp_path / 'x.png')]
    assert main(
        ['--model', 'converse_usrnet', '--kernel',
         str(tmp_path / 'k.npy'), '--scale', '2', '-o',
         str(tmp_path / 'u')] + base) == 0
    assert cv2.imread(str(tmp_path / 'u' / 'x.png')).shape == (32, 24, 3)
    assert main(['--model', 'converse_srresnet', '--scale', '4', '-o', str(tmp_path / 's')] + base) == 0
    assert cv2.imread(str(tmp_path / 's' / 'x.png')).shape == (64, 48, 3)
    capsys.readouterr()
    assert main(['--model', 'converse_srresnet', '--scale', '2', '-o', str(tmp_path / 't')] + base) == 2
    assert 'scale 2' in capsys.readouterr().err and not (tmp_path / 't' / 'x.png').exists()


def test_library_result_says_gray_conversion_and_sr_compare(zoo_dir, tmp_path):
    rgb = (np.random.RandomState(0).rand(16, 12, 3) * 255).astype(np.uint8)
    result = Restorer('converse_dncnn', model_dir=zoo_dir).restore(rgb)
    assert result.converted_to_gray and result.image.shape == (16, 12)
    sr = Restorer('converse_srresnet', model_dir=zoo_dir, half=False)
    cv2.imwrite(str(tmp_path / 'small.png'), rgb)
    with pytest.raises(inference.ImageError, match='would overwrite the input'):
        sr.restore_file(tmp_path / 'small.png', tmp_path)
    out_path, result = sr.restore_file(tmp_path / 'small.png', tmp_path / 'new', compare=True)
    assert out_path == tmp_path / 'new' / 'small.png' and out_path.is_file()
    assert result.image.shape == (64, 48, 3) and not result.converted_to_gray
    assert cv2.imread(str(tmp_path / 'new' / 'small_compare.png')).shape == (64, 96, 3)


# ----------------------------------------------------------------------------- bad input
def run_main(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert 'Traceback' not in out + err
    return rc, out, err


@pytest.fixture
def small_input(tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_good.png'), (np.random.RandomState(0).rand(12, 10, 3) * 255).astype(np.uint8))
    return folder


def test_missing_input(zoo_dir, tmp_path, capsys):
    rc, _, err = run_main(
        ['--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', tmp_path / 'nope.png', '-o', tmp_path / 'out'],
        capsys)
    assert rc == 2 and 'nope.png does not exist' in err


def test_unreadable_image_does_not_stop_the_others(zoo_dir, tmp_path, small_input, capsys):
    (small_input / 'b_broken.png').write_bytes(b'not a png at all')
    (small_input / 'c_good.png').write_bytes((small_input / 'a_good.png').read_bytes())
    out = tmp_path / 'out'
    rc, stdout, err = run_main(['--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', small_input, '-o', out],
                               capsys)
    assert rc == 1
    assert 'b_broken.png' in err and 'cannot read image' in err
    assert (out / 'a_good.png').is_file() and (out / 'c_good.png').is_file() and not (out / 'b_broken.png').exists()
    assert 'restored 2/3 images' in stdout


def test_unknown_model_name(tmp_path, small_input, capsys):
    rc, _, err = run_main(['--model', 'converse_nope', '-i', small_input, '-o', tmp_path / 'out'], capsys)
    assert rc == 2 and "unknown model 'converse_nope'" in err and 'converse_dncnn' in err


def test_kernel_of_the_wrong_shape(zoo_dir, tmp_path, small_input, capsys):
    np.save(tmp_path / 'k5.npy', np.full((5, 5), 1 / 25, np.float32))
    rc, _, err = run_main([
        '--model', 'converse_usrnet', '--model-dir', zoo_dir, '-i', small_input, '-o', tmp_path / 'out', '--kernel',
        tmp_path / 'k5.npy'
    ], capsys)
    assert rc == 2 and 'k5.npy' in err and '7x7' in err and '(5, 5)' in err
    rc, _, err = run_main(
        ['--model', 'converse_usrnet', '--model-dir', zoo_dir, '-i', small_input, '-o', tmp_path / 'out'], capsys)
    assert rc == 2 and '--kernel' in err
    rc, _, err = run_main([
        '--model', 'conversenet', '--model-dir', zoo_dir, '-i', small_input, '-o', tmp_path / 'out', '--kernel',
        tmp_path / 'k5.npy'
    ], capsys)
    assert rc == 2 and 'blind' in err


def test_output_not_writable(zoo_dir, tmp_path, small_input, capsys):
    blocker = tmp_path / 'file.txt'
    blocker.write_text('a file, not a folder')
    rc, _, err = run_main(
        ['--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', small_input, '-o', blocker / 'out'], capsys)
    assert rc == 2 and '--output' in err and 'not a writable directory' in err


def test_half_on_cpu_falls_back_with_a_warning(zoo_dir, tmp_path, small_input, capsys):
    rc, _, err = run_main([
        '--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', small_input, '-o', tmp_path / 'out', '--half',
        '--device', 'cpu'
    ], capsys)
    assert rc == 0 and 'warning: half precision is only used on CUDA' in err
    assert (tmp_path / 'out' / 'a_good.png').is_file()


def test_module_entry_point_reports_without_traceback(tmp_path):
    proc = subprocess.run([
        sys.executable, '-m', 'converse_basicsr.restore', '--model', 'converse_dncnn', '-i',
        str(tmp_path / 'missing'), '-o',
        str(tmp_path / 'out')
    ], capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 2
    assert 'missing does not exist' in proc.stderr and 'Traceback' not in proc.stderr
