"""Data preparation scripts: sub-image cropping and LMDB packing, and that a folder and its LMDB
give identical training samples for the same seed."""
import importlib.util
import random
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

from basicsr.utils.registry import DATASET_REGISTRY

SCRIPTS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'scripts')


def _script(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(SCRIPTS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


subimages = _script('prepare_subimages')
lmdb_script = _script('prepare_lmdb')


def _image(h, w, channels=3, seed=0):
    img = np.random.RandomState(seed).randint(0, 256, (h, w, channels), dtype=np.uint8)
    return img[..., 0] if channels == 1 else img


def test_crop_positions_cover_the_image():
    assert subimages.crop_positions(100, 40, 20, 0) == [0, 20, 40, 60]  # ends exactly at the border
    assert subimages.crop_positions(105, 40, 20, 0) == [0, 20, 40, 60, 65]  # last crop moved back to the border
    assert subimages.crop_positions(105, 40, 20, 10) == [0, 20, 40, 60]  # a 5-pixel strip is dropped
    assert subimages.crop_positions(30, 40, 20, 0) == [0]  # smaller than a crop: kept whole


def test_prepare_subimages_writes_overlapping_crops(tmp_path):
    src = tmp_path / 'hr'
    src.mkdir()
    rgb, gray = _image(50, 70), _image(40, 40, channels=1, seed=1)
    cv2.imwrite(str(src / 'a.png'), rgb)
    cv2.imwrite(str(src / 'b.png'), gray)
    count = subimages.prepare_subimages(str(src), str(tmp_path / 'sub'), crop_size=32, step=16, n_thread=1)
    # a: rows [0, 16, 18] x cols [0, 16, 32, 38] = 12 crops; b: rows [0, 8] x cols [0, 8] = 4 crops
    assert count == 16
    assert len(list((tmp_path / 'sub').iterdir())) == 16
    crop = cv2.imread(str(tmp_path / 'sub' / 'a_s007.png'), cv2.IMREAD_UNCHANGED)  # row 16, col 32
    assert np.array_equal(crop, rgb[16:48, 32:64])
    crop = cv2.imread(str(tmp_path / 'sub' / 'b_s004.png'), cv2.IMREAD_UNCHANGED)
    assert crop.ndim == 2 and np.array_equal(crop, gray[8:40, 8:40])


def test_prepare_scripts_name_the_bad_input(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='--input: no images'):
        subimages.prepare_subimages(str(empty), str(tmp_path / 'out'), n_thread=1)
    with pytest.raises(ValueError, match='--input: no images'):
        lmdb_script.prepare_lmdb(str(empty), str(tmp_path / 'x.lmdb'), n_thread=1)
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='broken.png'):
        subimages.prepare_subimages(str(bad), str(tmp_path / 'out'), n_thread=1)
    with pytest.raises(ValueError, match='broken.png'):
        lmdb_script.prepare_lmdb(str(bad), str(tmp_path / 'y.lmdb'), n_thread=1)
    with pytest.raises(ValueError, match='must end with .lmdb'):
        lmdb_script.prepare_lmdb(str(bad), str(tmp_path / 'y'), n_thread=1)


@pytest.fixture(scope='module')
def folder_and_lmdb(tmp_path_factory):
    root = tmp_path_factory.mktemp('prep')
    folder = root / 'sub'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'img{i}.png'), _image(24 + 4 * i, 28, seed=i))
    lmdb_path = str(root / 'sub.lmdb')
    keys = lmdb_script.prepare_lmdb(str(folder), lmdb_path, n_thread=1)
    return str(folder), lmdb_path, keys


def test_prepare_lmdb_round_trip(folder_and_lmdb):
    import lmdb
    folder, lmdb_path, keys = folder_and_lmdb
    assert keys == ['img0', 'img1', 'img2']
    with open(osp.join(lmdb_path, 'meta_info.txt')) as f:
        assert [line.split()[:2] for line in f] == [['img0.png', '(24,28,3)'], ['img1.png', '(28,28,3)'],
                                                    ['img2.png', '(32,28,3)']]
    env = lmdb.open(lmdb_path, readonly=True, lock=False)
    with env.begin() as txn:
        for key in keys:
            stored = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(stored, cv2.imread(osp.join(folder, f'{key}.png'), cv2.IMREAD_UNCHANGED))
    env.close()


@pytest.mark.parametrize('dataset_opt', [
    {'type': 'GaussianNoiseDataset', 'color': 'gray', 'sigma_range': [0, 50]},
    {'type': 'BicubicDownsampleDataset', 'scale': 4},
    {'type': 'BlurKernelDataset', 'sigma_range': [0, 2.55]},
], ids=lambda o: o['type'])
def test_folder_and_lmdb_give_identical_training_samples(folder_and_lmdb, dataset_opt):
    folder, lmdb_path, _ = folder_and_lmdb
    samples = {}
    for backend, root in (('disk', folder), ('lmdb', lmdb_path)):
        opt = dict(dataset_opt, name=backend, phase='train', dataroot_gt=root, io_backend={'type': backend}, gt_size=16,
                   use_hflip=True, use_rot=True)
        dataset = DATASET_REGISTRY.get(opt['type'])(opt)
        random.seed(5), np.random.seed(5), torch.manual_seed(5)
        samples[backend] = [dataset[i % len(dataset)] for i in range(6)]
    for disk, lmdb in zip(samples['disk'], samples['lmdb']):
        for key in ('lq', 'gt') + (('kernel', ) if 'kernel' in disk else ()):
            assert torch.equal(disk[key], lmdb[key]), key
