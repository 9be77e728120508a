"""Image reading edges, as ``data.io`` documents them: a float64 ``.npy`` is read as float32, an empty array is an
:class:`ImageError` naming the file, a sub-folder named like an image is not a ground-truth image, a ``meta_info``
without names is refused, and an LMDB ``dataroot_gt`` may end in a slash."""
import cv2
import numpy as np
import pytest

from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from converse_basicsr.data.io import ImageError, check_image, read_image


def test_a_float64_npy_is_read_as_float32(tmp_path):
    values = np.random.RandomState(0).rand(6, 7, 3)
    np.save(tmp_path / 'x.npy', values)
    img = read_image(tmp_path / 'x.npy')
    assert img.dtype == np.float32 and img.shape == (6, 7, 3)
    assert np.abs(img - values).max() < 1e-7


@pytest.mark.parametrize('shape', [(0, 5), (5, 0), (0, 4, 3)])
def test_an_empty_image_is_an_image_error_naming_it(shape):
    with pytest.raises(ImageError, match=r'blank.npy: empty image of shape'):
        check_image(np.zeros(shape, np.float32), 'blank.npy')


def _noise(**opt):
    return build_dataset(dict(dict(name='t', type='GaussianNoiseDataset', phase='test', sigma=5), **opt))


@pytest.fixture
def gt_folder(tmp_path):
    folder = tmp_path / 'gt'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), np.random.RandomState(1).randint(0, 256, (10, 12, 3), dtype=np.uint8))
    return folder


def test_a_folder_named_like_an_image_is_no_ground_truth(gt_folder):
    (gt_folder / 'more.png').mkdir()
    dataset = _noise(dataroot_gt=str(gt_folder))
    assert dataset.gt_images.paths == [str(gt_folder / 'a.png')] and len(dataset) == 1


def test_a_meta_info_without_names_is_refused(gt_folder, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('\n   \n\n')
    with pytest.raises(ValueError, match=f"meta_info file '{meta}' lists no images"):
        _noise(dataroot_gt=str(gt_folder), meta_info=str(meta))


def test_an_lmdb_root_may_end_in_a_slash(gt_folder, tmp_path):
    lmdb = tmp_path / 'gt.lmdb'
    make_lmdb_from_imgs(str(gt_folder), str(lmdb), ['a.png'], ['a'], map_size=1 << 20)
    dataset = _noise(dataroot_gt=f'{lmdb}/', io_backend={'type': 'lmdb'})
    assert dataset.gt_images.paths == ['a'] and tuple(dataset[0]['gt'].shape) == (3, 10, 12)
