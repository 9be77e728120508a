"""converse-compare's ``--metric lpips`` through the real loading code with a weights file this test writes (in
the lpips package's key layout), checked against LPIPS recomputed here on torchvision's own AlexNet; ``--metric
niqe`` against BasicSR's ``calculate_niqe`` on the saved output; a bad weights file refused with nothing created."""
import cv2
import numpy as np
import pytest
import torch
import torchvision
from torch.nn import functional as F

from basicsr.metrics.niqe import calculate_niqe
from converse_basicsr import compare as cli
from tests.evaluation.compare_fixture import read_rows, write_images

RELU_OUTPUTS = (1, 4, 7, 9, 11)  # torchvision AlexNet.features: the five ReLUs LPIPS reads
CONVS = (0, 3, 6, 8, 10)
SLICE = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}  # the lpips package's slice of each convolution


def lpips_state(seed=0):
    """A state dict laid out as lpips.LPIPS(net='alex').state_dict(), with random AlexNet weights."""
    torch.manual_seed(seed)
    alex = torchvision.models.alexnet(weights=None).features
    state = {
        'scaling_layer.shift': torch.tensor([-.030, -.088, -.188])[None, :, None, None],
        'scaling_layer.scale': torch.tensor([.458, .448, .450])[None, :, None, None]
    }
    for index in CONVS:
        state[f'net.slice{SLICE[index]}.{index}.weight'] = alex[index].weight.detach().clone()
        state[f'net.slice{SLICE[index]}.{index}.bias'] = alex[index].bias.detach().clone()
    for layer, channels in enumerate((64, 192, 384, 256, 256)):
        state[f'lin{layer}.model.1.weight'] = torch.rand(1, channels, 1, 1) * 0.1
    return state, alex


@torch.no_grad()
def lpips_here(alex, state, img, img2):
    """LPIPS of two uint8 RGB images on torchvision's AlexNet (the published formula, written out)."""
    shift, scale = state['scaling_layer.shift'], state['scaling_layer.scale']
    x, y = ((torch.from_numpy(i).permute(2, 0, 1)[None].double() / 127.5 - 1 - shift) / scale for i in (img, img2))
    alex = alex.double()
    total = 0.0
    layer = 0
    for index, module in enumerate(alex[:12]):
        x, y = module(x), module(y)
        if index in RELU_OUTPUTS:
            nx, ny = (t / (t.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for t in (x, y))
            weight = state[f'lin{layer}.model.1.weight'].double()
            total += float(F.conv2d((nx - ny)**2, weight).mean())
            layer += 1
    return total


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp('lpips')
    return root, write_images(root / 'set', {'big.png': (64, 72), 'small.png': (40, 48)}, seed=5)


def test_lpips_from_a_local_weights_file(images, tmp_path):
    root, folder = images
    state, alex = lpips_state()
    weights = tmp_path / 'lpips_alex.pth'
    torch.save(state, weights)
    assert cli.main([
        '--task', 'sr', '--dataset', f'S={folder}', '--model', 'bicubic', '--metric', 'psnr_y', '--metric', 'lpips',
        '--lpips-weights',
        str(weights), '--save-outputs', '--name', 'l', '--results-root',
        str(tmp_path)
    ]) == 0
    rows = {r['image']: r for r in read_rows(tmp_path / 'l' / 'per_image.csv') if r['model'] == 'bicubic'}
    for image in ('big.png', 'small.png'):
        out = cv2.cvtColor(cv2.imread(str(tmp_path / 'l' / 'outputs' / 'bicubic' / 'S' / image)), cv2.COLOR_BGR2RGB)
        gt = cv2.cvtColor(cv2.imread(f'{folder}/{image}'), cv2.COLOR_BGR2RGB)
        expected = lpips_here(alex, state, out[4:-4, 4:-4], gt[4:-4, 4:-4])  # the protocol's crop of 4
        assert expected > 1e-4 and abs(float(rows[image]['lpips']) - expected) < 1e-5 * max(1, expected), image
    tex = (tmp_path / 'l' / 'comparison.tex').read_text()
    assert 'LPIPS$\\downarrow$' in tex and 'LPIPS 4 decimals' in tex


def test_a_wrong_weights_file_is_refused_before_anything(images, tmp_path, capsys):
    root, folder = images
    state, _ = lpips_state()
    del state['lin3.model.1.weight']
    torch.save(state, tmp_path / 'partial.pth')
    out = tmp_path / 'never'
    assert cli.main([
        '--task', 'sr', '--dataset', f'S={folder}', '--model', 'bicubic', '--metric', 'lpips', '--lpips-weights',
        str(tmp_path / 'partial.pth'), '--results-root',
        str(out)
    ]) == 2
    err = capsys.readouterr().err
    assert 'lin3.model.1.weight missing' in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_niqe_is_basicsrs_and_small_images_get_an_empty_cell(tmp_path):
    folder = write_images(tmp_path / 'set', {'big.png': (200, 208), 'small.png': (40, 48)}, seed=6)
    assert cli.main([
        '--task', 'sr', '--dataset', f'S={folder}', '--model', 'bicubic', '--metric', 'niqe', '--save-outputs',
        '--name', 'n', '--results-root',
        str(tmp_path)
    ]) == 0
    rows = {r['image']: r for r in read_rows(tmp_path / 'n' / 'per_image.csv') if r['model'] == 'bicubic'}
    out = cv2.imread(str(tmp_path / 'n' / 'outputs' / 'bicubic' / 'S' / 'big.png'))
    assert abs(float(rows['big.png']['niqe']) - calculate_niqe(out, 4)) < 1e-5
    assert rows['small.png']['niqe'] == ''  # 40x48: below NIQE's two 96-px block scales, not a crash
    [row] = [r for r in read_rows(tmp_path / 'n' / 'comparison.csv') if r['model'] == 'bicubic']
    assert float(row['niqe']) == pytest.approx(float(rows['big.png']['niqe']), abs=1e-6)  # the mean of the defined
    assert np.isfinite(float(row['niqe']))
