"""The degradation datasets: protocol values computed independently, folder vs LMDB, train phase, errors."""
import os
import random

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize
from converse_basicsr.data.kernels import RandomKernelSampler, random_motion_kernel

SIZES = {'a.png': (22, 27), 'b.png': (30, 19), 'c.png': (17, 33)}


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    """Small random RGB and gray image folders, a kernel folder, and an LMDB copy of the RGB folder."""
    root = tmp_path_factory.mktemp('data')
    rng = np.random.RandomState(1)
    for sub, channels in (('rgb', 3), ('gray', 1)):
        (root / sub).mkdir()
        for name, (h, w) in SIZES.items():
            cv2.imwrite(str(root / sub / name), rng.randint(0, 256, (h, w, channels), dtype=np.uint8))
    (root / 'kernels').mkdir()
    for i in range(3):
        k = rng.rand(5, 5)
        np.save(root / 'kernels' / f'k{i}.npy', k / k.sum())
    make_lmdb_from_imgs(str(root / 'rgb'), str(root / 'rgb.lmdb'), sorted(SIZES), [n[:-4] for n in sorted(SIZES)])
    return root


def build(**opt):
    opt.setdefault('name', 'test')
    opt.setdefault('phase', 'test')
    return build_dataset(opt)


def read_rgb(path):
    return cv2.imread(str(path))[..., ::-1]


def as_hwc(tensor):
    return tensor.numpy().transpose(1, 2, 0)


def test_noise_test_phase_follows_protocol(folders):
    ds = build(type='GaussianNoiseDataset', dataroot_gt=str(folders / 'gray'), color='gray', sigma=25)
    assert len(ds) == 3
    for index, name in enumerate(sorted(SIZES)):
        sample = ds[index]
        img = cv2.imread(str(folders / 'gray' / name), cv2.IMREAD_GRAYSCALE)[..., None]
        gt = np.float32(img / 255.)
        noisy = gt + np.random.RandomState(0).normal(0, 25 / 255., img.shape)  # float64 noise, then float32
        assert sample['gt'].shape == (1, *SIZES[name]) and sample['lq'].dtype == torch.float32
        np.testing.assert_array_equal(as_hwc(sample['gt']), gt)
        np.testing.assert_array_equal(as_hwc(sample['lq']), noisy.astype(np.float32))
        assert sample['lq'].min() < 0 or sample['lq'].max() > 1  # not clipped
        assert sample['lq_path'] == sample['gt_path'] == str(folders / 'gray' / name)


def test_noise_seed_gives_same_noise_for_every_image(folders):
    ds = build(type='GaussianNoiseDataset', dataroot_gt=str(folders / 'rgb'), sigma=10, noise_seed=3)
    first = [ds[0]['lq'] - ds[0]['gt'] for _ in range(2)]
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)
    expected = np.random.RandomState(3).normal(0, 10 / 255., (*SIZES['a.png'], 3))
    np.testing.assert_allclose(as_hwc(first[0]), expected, atol=1e-6)


def test_bicubic_test_phase_follows_protocol(folders):
    ds = build(type='BicubicDownsampleDataset', dataroot_gt=str(folders / 'rgb'), scale=4)
    sample = ds[1]  # b.png, 30x19 → GT 28x16, LR 7x4
    gt = np.float32(read_rgb(folders / 'rgb' / 'b.png')[:28, :16] / 255.)
    assert sample['gt'].shape == (3, 28, 16) and sample['lq'].shape == (3, 7, 4)
    np.testing.assert_array_equal(as_hwc(sample['gt']), gt)  # RGB order, mod-crop from the top-left
    np.testing.assert_array_equal(as_hwc(sample['lq']), imresize(gt, 1 / 4))
    assert len(np.unique(as_hwc(sample['lq']) * 255 % 1)) > 1  # kept in float, not re-quantised


def test_blur_test_phase_follows_protocol(folders):
    kernel = np.load(folders / 'kernels' / 'k1.npy')
    ds = build(type='BlurKernelDataset', dataroot_gt=str(folders / 'rgb'),
               kernel_path=str(folders / 'kernels' / 'k1.npy'))
    sample = ds[0]  # a.png, 22x27 → 16x24
    img = np.ascontiguousarray(read_rgb(folders / 'rgb' / 'a.png')[:16, :24])
    blurred = ndimage.convolve(img, kernel[..., None], mode='wrap')
    assert blurred.dtype == np.uint8
    noisy = np.float32(blurred / 255.) + np.random.RandomState(0).normal(0, 2.55 / 255., (16, 24, 3))
    np.testing.assert_array_equal(as_hwc(sample['gt']), np.float32(img / 255.))
    np.testing.assert_array_equal(as_hwc(sample['lq']), noisy.astype(np.float32))  # noise channel 0 on R
    assert sample['kernel'].shape == (1, 5, 5) and sample['kernel'].dtype == torch.float32
    np.testing.assert_allclose(sample['kernel'][0].numpy(), kernel, rtol=1e-6)


def test_blur_kernel_list_pairs_every_kernel_with_every_image(folders):
    kernels = folders / 'kernels'
    ds = build(type='BlurKernelDataset', dataroot_gt=str(folders / 'rgb'), kernel_path=str(kernels))
    assert len(ds) == 9
    single = build(type='BlurKernelDataset', dataroot_gt=str(folders / 'rgb'), kernel_path=str(kernels / 'k2.npy'))
    sample = ds[2 * 3 + 1]  # kernel-major: k2 on b.png
    torch.testing.assert_close(sample['lq'], single[1]['lq'], rtol=0, atol=0)
    assert sample['lq_path'].endswith('b_k2.png') and sample['gt_path'].endswith('b.png')
    listed = build(type='BlurKernelDataset', dataroot_gt=str(folders / 'rgb'),
                   kernel_path=[str(kernels / 'k2.npy'), str(kernels / 'k0.npy')])
    torch.testing.assert_close(listed[3]['kernel'], ds[0]['kernel'], rtol=0, atol=0)


@pytest.mark.parametrize('phase', ['test', 'train'])
@pytest.mark.parametrize('dataset', ['GaussianNoiseDataset', 'BicubicDownsampleDataset', 'BlurKernelDataset'])
def test_folder_and_lmdb_give_identical_samples(folders, dataset, phase):
    extra = {
        'GaussianNoiseDataset': dict(sigma=15), 'BicubicDownsampleDataset': dict(scale=2),
        'BlurKernelDataset': dict(kernel_path=str(folders / 'kernels' / 'k0.npy'))
    }[dataset]
    if phase == 'train':
        extra.update(gt_size=12, kernel_size=5)
    disk = build(type=dataset, phase=phase, dataroot_gt=str(folders / 'rgb'), **extra)
    lmdb = build(type=dataset, phase=phase, dataroot_gt=str(folders / 'rgb.lmdb'), io_backend={'type': 'lmdb'}, **extra)
    assert len(disk) == len(lmdb) == 3
    for index in range(3):
        random.seed(index), np.random.seed(index)
        a = disk[index]
        random.seed(index), np.random.seed(index)
        b = lmdb[index]
        assert b['gt_path'] == sorted(SIZES)[index][:-4]  # LMDB key
        for key in ('lq', 'gt') + (('kernel', ) if 'kernel' in a else ()):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_meta_info_selects_images(folders, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('c.png (17,33,3) 1\n\na.png\n')
    ds = build(type='GaussianNoiseDataset', dataroot_gt=str(folders / 'rgb'), meta_info=str(meta), sigma=5)
    assert [os.path.basename(ds[i]['gt_path']) for i in range(len(ds))] == ['c.png', 'a.png']
    lmdb = build(type='GaussianNoiseDataset', dataroot_gt=str(folders / 'rgb.lmdb'), io_backend={'type': 'lmdb'},
                 meta_info=str(meta), sigma=5)
    assert [lmdb[i]['gt_path'] for i in range(len(lmdb))] == ['c', 'a']


@pytest.mark.parametrize('dataset,extra', [
    ('GaussianNoiseDataset', dict(sigma_range=[0, 50])),
    ('BicubicDownsampleDataset', dict(scale=4)),
    ('BlurKernelDataset', dict(sigma_range=[0, 5])),
])
def test_train_phase_shapes_and_determinism(folders, dataset, extra):
    ds = build(type=dataset, phase='train', dataroot_gt=str(folders / 'rgb'), gt_size=16, **extra)

    def draw(seed):
        random.seed(seed), np.random.seed(seed)
        return [ds[i % 3] for i in range(6)]

    first, again, other = draw(0), draw(0), draw(1)
    scale = extra.get('scale', 1)
    for a, b in zip(first, again):
        assert a['gt'].shape == (3, 16, 16) and a['lq'].shape == (3, 16 // scale, 16 // scale)
        for key in a:
            if torch.is_tensor(a[key]):
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert any(not torch.equal(a['lq'], c['lq']) for a, c in zip(first, other))
    if dataset == 'BlurKernelDataset':
        for sample in first:
            assert sample['kernel'].shape == (1, 7, 7)
            assert abs(float(sample['kernel'].sum()) - 1) < 1e-5 and float(sample['kernel'].min()) >= 0
    if dataset == 'BicubicDownsampleDataset':  # LR is the bicubic image of the (augmented) GT crop
        np.testing.assert_allclose(as_hwc(first[0]['lq']), imresize(as_hwc(first[0]['gt']), 1 / 4), atol=1e-6)


def test_train_gray_crops_and_augments(folders):
    ds = build(type='GaussianNoiseDataset', phase='train', dataroot_gt=str(folders / 'gray'), color='gray', gt_size=8,
               sigma=0, use_hflip=True, use_rot=True)
    random.seed(0), np.random.seed(0)
    samples = [ds[0] for _ in range(8)]
    assert all(s['gt'].shape == (1, 8, 8) for s in samples)
    torch.testing.assert_close(samples[0]['lq'], samples[0]['gt'], rtol=0, atol=0)  # sigma 0: no noise


def test_random_kernels_of_every_type(folders):
    np.random.seed(0)
    for kind in ('isotropic', 'anisotropic', 'motion'):
        sampler = RandomKernelSampler(7, [kind])
        kernels = [sampler() for _ in range(5)]
        for k in kernels:
            assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-9 and k.min() >= 0
        assert not np.allclose(kernels[0], kernels[1])
    iso = RandomKernelSampler(7, ['isotropic'], blur_sigma_range=[1.0, 2.0])()
    np.testing.assert_allclose(iso, iso.T, atol=1e-12)  # isotropic Gaussian: symmetric
    line = random_motion_kernel(7, (6, 6), curvature=0)
    assert np.count_nonzero(line > 0.01) <= 16 and abs(line.sum() - 1) < 1e-9  # a thin line, not a blob
    bank = [np.load(folders / 'kernels' / 'k0.npy')]
    only_bank = RandomKernelSampler(5, bank=bank, bank_prob=1.0)
    assert all(np.array_equal(only_bank(), bank[0]) for _ in range(3))
    ds = build(type='BlurKernelDataset', phase='train', dataroot_gt=str(folders / 'rgb'), gt_size=8, kernel_size=5,
               kernel_path=str(folders / 'kernels'))  # bank only, by default
    banked = {tuple(np.round(np.load(folders / 'kernels' / f'k{i}.npy').ravel(), 6)) for i in range(3)}
    assert all(tuple(np.round(ds[0]['kernel'].double().numpy().ravel(), 6)) in banked for _ in range(5))


@pytest.fixture
def bad_inputs(folders, tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'corrupt').mkdir()
    (tmp_path / 'corrupt' / 'x.png').write_bytes(b'not a png at all')
    (tmp_path / 'tiny').mkdir()
    cv2.imwrite(str(tmp_path / 'tiny' / 't.png'), np.zeros((3, 6, 3), np.uint8))
    np.save(tmp_path / 'k3d.npy', np.ones((1, 3, 3)))
    (tmp_path / 'no_kernels').mkdir()
    (tmp_path / 'meta.txt').write_text('zzz.png (1,1,3) 1\n')
    return tmp_path


@pytest.mark.parametrize('opt,error,match', [
    (dict(type='GaussianNoiseDataset', sigma=25), KeyError, 'dataroot_gt'),
    (dict(type='GaussianNoiseDataset', sigma=25,
          dataroot_gt='{tmp}/nowhere'), FileNotFoundError, 'dataroot_gt.*nowhere'),
    (dict(type='GaussianNoiseDataset', sigma=25, dataroot_gt='{tmp}/empty'), ValueError, 'empty.*no images'),
    (dict(type='GaussianNoiseDataset', sigma=-1, dataroot_gt='{rgb}'), ValueError, 'sigma must be >= 0.*-1'),
    (dict(type='GaussianNoiseDataset', dataroot_gt='{rgb}'), KeyError, 'sigma'),
    (dict(type='GaussianNoiseDataset', sigma=5, dataroot_gt='{rgb}', color='cmyk'), ValueError, 'color.*cmyk'),
    (dict(type='GaussianNoiseDataset', sigma=5, phase='train', dataroot_gt='{rgb}', gt_size=8,
          sigma_range=[9, 2]), ValueError, r'sigma_range.*\[9, 2\]'),
    (dict(type='BicubicDownsampleDataset', scale=2.5,
          dataroot_gt='{rgb}'), ValueError, 'scale must be an integer.*2.5'),
    (dict(type='BicubicDownsampleDataset', dataroot_gt='{rgb}'), KeyError, 'scale'),
    (dict(type='BicubicDownsampleDataset', scale=4, phase='train', gt_size=10,
          dataroot_gt='{rgb}'), ValueError, 'gt_size must be a multiple of scale 4, got 10'),
    (dict(type='BlurKernelDataset', dataroot_gt='{rgb}'), KeyError, 'kernel_path'),
    (dict(type='BlurKernelDataset', dataroot_gt='{rgb}',
          kernel_path='{tmp}/missing.npy'), FileNotFoundError, 'kernel file.*missing.npy'),
    (dict(type='BlurKernelDataset', dataroot_gt='{rgb}',
          kernel_path='{tmp}/k3d.npy'), ValueError, r'k3d.npy.*2-D.*\(1, 3, 3\)'),
    (dict(type='BlurKernelDataset', dataroot_gt='{rgb}',
          kernel_path='{tmp}/no_kernels'), ValueError, 'no_kernels.*empty kernel bank'),
    (dict(type='BlurKernelDataset', dataroot_gt='{rgb}', kernel_path='{kernels}', sigma=-0.5), ValueError, 'sigma'),
    (dict(type='BlurKernelDataset', dataroot_gt='{rgb}', kernel_path='{kernels}',
          scale=2), ValueError, 'scale must be 1'),
    (dict(type='BlurKernelDataset', phase='train', gt_size=8, dataroot_gt='{rgb}', kernel_size=7,
          kernel_path='{kernels}'), ValueError, 'kernel_size'),
    (dict(type='BlurKernelDataset', phase='train', gt_size=8, dataroot_gt='{rgb}',
          kernel_types=['box']), ValueError, 'kernel_types.*box'),
    (dict(type='BlurKernelDataset', phase='train', gt_size=8, dataroot_gt='{rgb}',
          kernel_probs=[1, 0]), ValueError, 'kernel_probs'),
    (dict(type='GaussianNoiseDataset', sigma=5, dataroot_gt='{rgb}',
          meta_info='{tmp}/meta.txt'), FileNotFoundError, 'meta_info.*zzz.png'),
    (dict(type='GaussianNoiseDataset', sigma=5, dataroot_gt='{rgb}', io_backend={'type': 'lmdb'}), ValueError, 'lmdb'),
])
def test_bad_configuration_names_the_key(folders, bad_inputs, opt, error, match):
    paths = {'tmp': bad_inputs, 'rgb': folders / 'rgb', 'kernels': folders / 'kernels'}
    opt = {k: v.format(**paths) if isinstance(v, str) else v for k, v in opt.items()}
    with pytest.raises(error, match=match):
        build(**opt)


@pytest.mark.parametrize('opt,error,match', [
    (dict(type='GaussianNoiseDataset', sigma=5, dataroot_gt='{tmp}/corrupt'), ValueError, 'x.png.*corrupt'),
    (dict(type='BicubicDownsampleDataset', scale=4, dataroot_gt='{tmp}/tiny'), ValueError, 't.png.*3x6.*scale 4'),
    (dict(type='BlurKernelDataset', dataroot_gt='{tmp}/tiny', kernel_path='{kernels}/k0.npy',
          mod_crop=1), ValueError, 't.png.*3x6.*kernel k0'),
    (dict(type='GaussianNoiseDataset', sigma=5, phase='train', gt_size=20,
          dataroot_gt='{rgb}'), ValueError, 'gt_size 20 is larger than image .*c.png'),
    (dict(type='GaussianNoiseDataset', sigma=5, phase='train', gt_size=18, dataroot_gt='{rgb}'), None, None),
])
def test_bad_data_names_the_file(folders, bad_inputs, opt, error, match):
    paths = {'tmp': bad_inputs, 'rgb': folders / 'rgb', 'kernels': folders / 'kernels'}
    opt = {k: v.format(**paths) if isinstance(v, str) else v for k, v in opt.items()}
    ds = build(**opt)
    if error is None:  # 18 fits a.png but not c.png (17 rows)
        ds[0]
        with pytest.raises(ValueError, match='gt_size 18 is larger than image .*c.png.* 17x33'):
            ds[2]
        return
    with pytest.raises(error, match=match):
        ds[len(ds) - 1]


def test_lmdb_key_missing_names_the_key(folders, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('a.png (22,27,3) 1\nghost.png (1,1,3) 1\n')
    ds = build(type='GaussianNoiseDataset', sigma=5, dataroot_gt=str(folders / 'rgb.lmdb'), io_backend={'type': 'lmdb'},
               meta_info=str(meta))
    ds[0]
    with pytest.raises(KeyError, match='ghost'):
        ds[1]


def _to_uint8(tensor):
    """A gt sample back to uint8 HWC: exact, since gt is uint8 / 255 in float32."""
    img = np.rint(as_hwc(tensor).astype(np.float64) * 255)
    assert np.abs(img / 255 - as_hwc(tensor)).max() < 1e-6
    return img.astype(np.uint8)


def test_train_noise_is_the_samples_own_sigma_and_seed(folders):
    ds = build(type='GaussianNoiseDataset', phase='train', dataroot_gt=str(folders / 'rgb'), gt_size=12,
               sigma_range=[5, 40])
    random.seed(0), np.random.seed(0)
    samples = [ds[i % 3] for i in range(30)]
    sigmas = [s['sigma'] for s in samples]
    assert all(5 <= s <= 40 for s in sigmas) and max(sigmas) - min(sigmas) > 20  # drawn across the range
    assert len({s['noise_seed'] for s in samples}) == len(samples)
    for s in samples:
        gt = as_hwc(s['gt'])
        noise = np.random.RandomState(s['noise_seed']).normal(0, s['sigma'] / 255., gt.shape)
        np.testing.assert_array_equal(as_hwc(s['lq']), (gt + noise).astype(np.float32))


def test_train_blur_is_the_samples_own_kernel_sigma_and_seed(folders):
    """lq = the circular blur of gt by the sample's kernel (uint8, as the protocol) plus the sample's noise. The
    sample's kernel is float32 (the network's input), the dataset blurred with its float64 original, so a pixel
    may round to the neighbouring grey level; any other difference is a wrong degradation."""
    ds = build(type='BlurKernelDataset', phase='train', dataroot_gt=str(folders / 'rgb'), gt_size=16, kernel_size=7,
               sigma_range=[0, 10])
    random.seed(0), np.random.seed(0)
    off_by_a_level = 0
    sigmas = []
    for i in range(24):
        s = ds[i % 3]
        sigmas.append(s['sigma'])
        gt = _to_uint8(s['gt'])
        kernel = s['kernel'][0].double().numpy()
        blurred = np.float32(ndimage.convolve(gt, kernel[..., None], mode='wrap') / 255.)
        noise = np.random.RandomState(s['noise_seed']).normal(0, s['sigma'] / 255., gt.shape)
        expected = (blurred + noise).astype(np.float32)
        diff = np.abs(as_hwc(s['lq']) - expected)
        assert diff.max() <= 1 / 255. + 1e-6, (i, diff.max() * 255)
        off_by_a_level += int((diff > 1e-6).sum())
        assert not np.allclose(blurred, as_hwc(s['gt']), atol=1 / 255.)  # it did blur
    assert off_by_a_level <= 0.001 * 24 * 16 * 16 * 3  # none seen here
    assert all(0 <= s <= 10 for s in sigmas) and max(sigmas) - min(sigmas) > 5


@pytest.mark.parametrize('augment', [True, False])
def test_train_flips_and_rotations_occur(tmp_path, augment):
    """With gt_size equal to the image size the crop is the whole image, so every gt sample is one of the 8
    flips/rotations of it: with use_hflip and use_rot all 8 occur; without, only the image itself."""
    img = np.random.RandomState(3).randint(0, 256, (16, 16, 1), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'x.png'), img)
    transforms = [np.rot90(f, k) for f in (img, img[:, ::-1]) for k in range(4)]
    ds = build(type='GaussianNoiseDataset', phase='train', dataroot_gt=str(tmp_path), color='gray', gt_size=16, sigma=0,
               use_hflip=augment, use_rot=augment)
    random.seed(0), np.random.seed(0)
    seen = []
    for _ in range(64):
        gt = _to_uint8(ds[0]['gt'])
        matches = [k for k, t in enumerate(transforms) if np.array_equal(gt, t)]
        assert len(matches) == 1
        seen.append(matches[0])
    assert set(seen) == (set(range(8)) if augment else {0})


def test_luma_is_the_grayscale_in_three_channels_and_its_y_is_the_colour_images_y(folders):
    ds = build(type='BicubicDownsampleDataset', dataroot_gt=str(folders / 'rgb'), color='luma', scale=1)
    for index, name in enumerate(sorted(SIZES)):
        bgr = cv2.imread(str(folders / 'rgb' / name))
        gt = as_hwc(ds[index]['gt'])
        assert gt.shape == (*SIZES[name], 3)
        for c in range(3):  # OpenCV's BT.601 grayscale in every channel
            np.testing.assert_array_equal(gt[..., c], np.float32(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) / 255.))
        # the Y of the luma image (as the SR metric computes it) is the colour image's Y, to the uint8 rounding
        y_colour = 16 + (65.481 * bgr[..., 2] + 128.553 * bgr[..., 1] + 24.966 * bgr[..., 0]) / 255.
        y_luma = 16 + (65.481 + 128.553 + 24.966) * gt[..., 0]
        assert np.abs(y_luma - y_colour).max() <= 0.5 * 219 / 255 + 1e-3
