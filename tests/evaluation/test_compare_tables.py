"""converse-compare's tables against its own per-image rows: one run over two datasets (every row's image count
and means recomputed from ``per_image.csv``, the markdown's numbers parsed and checked against the CSV), and the
deblurring input hash, which must change with the kernel even when the degraded image does not.

Black-box through the public ``converse_basicsr.compare.compare`` on small generated images (a few seconds).
"""
import hashlib
from collections import defaultdict

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from basicsr.data import build_dataset
from converse_basicsr.compare import compare
from tests.evaluation.compare_fixture import read_rows
from tests.helpers.training import smooth_image

DENOISE = {'task': 'denoise', 'sigma': 25, 'color': 'gray'}


class BoxDenoiser(torch.nn.Module):
    """A fixed 3×3 box filter (reflect padding): a cheap model whose PSNR differs from the input's."""

    def forward(self, x):
        weight = torch.full((x.shape[1], 1, 3, 3), 1 / 9, dtype=x.dtype)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode='reflect'), weight, groups=x.shape[1])


def write_set(folder, sizes, seed):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(folder / f'img{i}.png'), smooth_image(rng, max(h, w), channels=1)[:h, :w])
    return str(folder)


def markdown_table(text):
    """The comparison table of comparison.md as a list of {header: cell}."""
    lines = [line for line in text.splitlines() if line.startswith('| ')]
    head = [cell.strip() for cell in lines[0].strip('|').split('|')]
    return [dict(zip(head, (cell.strip() for cell in line.strip('|').split('|')))) for line in lines[1:]]


@pytest.fixture(scope='module')
def two_sets(tmp_path_factory):
    """One compare() run: 'input' and a box filter on two datasets of 2 and 3 images (σ = 25, gray)."""
    root = tmp_path_factory.mktemp('two_sets')
    datasets = {
        'First': write_set(root / 'first', [(24, 24), (24, 32)], seed=1),
        'Second': write_set(root / 'second', [(32, 24), (24, 24), (40, 32)], seed=2),
    }
    result = compare(['input', {'name': 'box', 'module': BoxDenoiser()}], datasets, DENOISE, name='two',
                     results_root=str(root), flops_size=16, warmup=0, crop=16, progress=False)
    out = root / 'two'
    return dict(result=result, rows=read_rows(out / 'comparison.csv'), per_image=read_rows(out / 'per_image.csv'),
                md=(out / 'comparison.md').read_text(encoding='utf-8'))


def test_every_row_is_the_mean_of_its_own_dataset_and_model(two_sets):
    per_image = defaultdict(list)
    for r in two_sets['per_image']:
        per_image[r['dataset'], r['model']].append(r)
    assert {k: len(v)
            for k, v in per_image.items()} == {('First', 'input'): 2, ('Second', 'input'): 3, ('First', 'box'): 2,
                                               ('Second', 'box'): 3}
    rows = two_sets['rows']
    assert [(r['dataset'], r['model']) for r in rows] == [('First', 'input'), ('Second', 'input'), ('First', 'box'),
                                                          ('Second', 'box')]
    for row in rows:
        mine = per_image[row['dataset'], row['model']]
        assert int(row['images']) == len(mine), row
        for metric in ('psnr', 'ssim'):
            mean = float(np.mean([float(r[metric]) for r in mine]))
            assert abs(float(row[metric]) - mean) < 2e-6, (row['dataset'], row['model'], metric)
    # the two datasets differ, so a mean pooled over both would differ from each
    for model in ('input', 'box'):
        first, second = (float(r['psnr']) for r in rows if r['model'] == model)
        assert abs(first - second) > 0.05


def test_markdown_table_shows_the_csv_values(two_sets):
    table = markdown_table(two_sets['md'])
    assert list(table[0])[:5] == ['Dataset', 'Model', 'Images', 'PSNR', 'SSIM']
    assert len(table) == len(two_sets['rows']) == 4
    for cells, row in zip(table, two_sets['rows']):
        assert (cells['Dataset'], cells['Model'], cells['Images']) == (row['dataset'], row['model'], row['images'])
        for column, key in (('PSNR', 'psnr'), ('SSIM', 'ssim')):
            assert abs(float(cells[column]) - float(row[key])) < 6e-5, (column, cells, row)  # 4 vs 6 decimals
    ssim = [float(c['SSIM']) for c in table]
    assert all(0 < s < 1 for s in ssim) and all(float(c['PSNR']) > 15 for c in table)


def test_deblur_input_hash_covers_the_kernel(tmp_path):
    """A flat image blurs to the same input under any normalised kernel: the rows still differ in input_sha256,
    and each hash is sha256(shape, the input's float32 bytes, the kernel's float32 bytes), recomputed here."""
    (tmp_path / 'flat').mkdir()
    cv2.imwrite(str(tmp_path / 'flat' / 'flat.png'), np.full((24, 24, 3), 120, np.uint8))
    kernels = []
    ring, cross = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]]) / 4, np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 8
    for name, kernel in (('ring', ring), ('cross', cross)):  # taps that are exact in binary: 120 stays 120
        np.save(tmp_path / f'{name}.npy', kernel)
        kernels.append(str(tmp_path / f'{name}.npy'))
    protocol = {'task': 'deblur', 'kernel_path': kernels, 'sigma': 2.55}
    datasets = {'Flat': str(tmp_path / 'flat')}
    result = compare(['input'], datasets, protocol, name='flat', results_root=str(tmp_path), flops_size=16, warmup=0,
                     crop=16, progress=False)
    rows = read_rows(tmp_path / 'flat' / 'per_image.csv')
    dataset = build_dataset(
        dict(type='BlurKernelDataset', name='Flat', phase='test', dataroot_gt=str(tmp_path / 'flat'),
             kernel_path=kernels, sigma=2.55, io_backend={'type': 'disk'}))
    samples = [dataset[i] for i in range(len(dataset))]
    assert len(rows) == len(samples) == 2 and not result.failed
    assert torch.equal(samples[0]['lq'], samples[1]['lq'])  # the same degraded input ...
    assert rows[0]['input_sha256'] != rows[1]['input_sha256']  # ... under two kernels
    for row, sample in zip(rows, samples):
        lq = sample['lq'][None]
        digest = hashlib.sha256(str(tuple(lq.shape)).encode())
        digest.update(lq.numpy().astype(np.float32).tobytes())
        digest.update(sample['kernel'].numpy().astype(np.float32).tobytes())
        assert row['input_sha256'] == digest.hexdigest(), row['image']
