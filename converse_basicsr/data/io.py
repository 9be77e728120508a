"""Ground-truth images for the degradation datasets: listing and reading them through BasicSR's FileClient.

Shared by the test and the training pipelines. A dataset entry names its images with

- ``dataroot_gt``: a folder of images, or a ``*.lmdb`` folder made by ``basicsr.utils.lmdb_util``;
- ``io_backend: {type: disk | lmdb, ...}``: extra keys go to ``FileClient`` (default ``disk``);
- ``meta_info`` (optional): a text file whose lines start with an image name (relative to
  ``dataroot_gt``; for LMDB the key plus extension, BasicSR's ``meta_info.txt`` format). For LMDB it
  defaults to ``<dataroot_gt>/meta_info.txt``; for a folder, without it every image is used, sorted by name;
- ``color: rgb | gray``: images are returned as uint8 HWC, RGB order (BasicSR's cv2 reads BGR; the
  protocols and the published models use RGB) or one channel ``(H, W, 1)``.
"""
import os
from os import path as osp

import cv2
import numpy as np

from basicsr.utils import FileClient, imfrombytes

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')
COLORS = ('rgb', 'gray')
BACKENDS = ('disk', 'lmdb')


def read_meta_info(meta_info):
    """First whitespace-separated token of every non-empty line of ``meta_info``."""
    if not osp.isfile(meta_info):
        raise FileNotFoundError(f'meta_info file {meta_info!r} does not exist')
    with open(meta_info, encoding='utf-8') as f:
        names = [line.split()[0] for line in f if line.strip()]
    if not names:
        raise ValueError(f'meta_info file {meta_info!r} lists no images')
    return names


def list_images(folder):
    """Image files directly inside ``folder``, sorted by name."""
    names = sorted(name for name in os.listdir(folder)
                   if name.lower().endswith(IMG_EXTENSIONS) and osp.isfile(osp.join(folder, name)))
    if not names:
        raise ValueError(f'dataroot_gt {folder!r} contains no images (extensions {", ".join(IMG_EXTENSIONS)})')
    return names


class GroundTruthImages:
    """The ground-truth images of one dataset entry (see the module docstring for the option keys).

    ``paths[i]`` is the image's path (folder backend) or its LMDB key; ``read(i)`` returns uint8 HWC.
    """

    def __init__(self, opt):
        dataroot = opt.get('dataroot_gt')
        if not dataroot:
            raise KeyError(f"dataset option 'dataroot_gt' is required (dataset {opt.get('name')!r})")
        dataroot = str(dataroot)
        if not osp.isdir(dataroot):
            raise FileNotFoundError(f'dataroot_gt {dataroot!r} does not exist or is not a folder '
                                    f"(dataset {opt.get('name')!r})")
        self.color = opt.get('color', 'rgb')
        if self.color not in COLORS:
            raise ValueError(f'color must be one of {COLORS}, got {self.color!r}')
        self.io_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.backend = self.io_opt.pop('type', 'disk')
        if self.backend not in BACKENDS:
            raise ValueError(f'io_backend type must be one of {BACKENDS}, got {self.backend!r}')
        self.dataroot = dataroot
        meta_info = opt.get('meta_info')
        if self.backend == 'lmdb':
            if not dataroot.rstrip('/').endswith('.lmdb'):
                raise ValueError(f"dataroot_gt {dataroot!r} must be a '*.lmdb' folder for io_backend type lmdb")
            meta_info = meta_info or osp.join(dataroot, 'meta_info.txt')
            self.paths = [osp.splitext(name)[0] for name in read_meta_info(meta_info)]
            self.io_opt.setdefault('db_paths', [dataroot])
            self.io_opt.setdefault('client_keys', ['gt'])
        elif meta_info:
            self.paths = [osp.join(dataroot, name) for name in read_meta_info(meta_info)]
            missing = [p for p in self.paths if not osp.isfile(p)]
            if missing:
                raise FileNotFoundError(f'meta_info {meta_info!r} lists {len(missing)} missing image(s), '
                                        f'first {missing[0]!r}')
        else:
            self.paths = [osp.join(dataroot, name) for name in list_images(dataroot)]
        self.file_client = None  # opened lazily: one per dataloader worker

    def __len__(self):
        return len(self.paths)

    def read(self, index):
        """Image ``index`` as uint8, ``(H, W, 3)`` RGB or ``(H, W, 1)`` gray."""
        if self.file_client is None:
            self.file_client = FileClient(self.backend, **self.io_opt)
        path = self.paths[index]
        if self.backend == 'lmdb':
            content = self.file_client.get(path, 'gt')
            if content is None:
                raise KeyError(f'LMDB key {path!r} (from meta_info) is missing in {self.dataroot!r}')
        else:
            try:
                content = self.file_client.get(path)
            except OSError as error:
                raise FileNotFoundError(f'cannot read image {path!r}: {error}') from error
        img = None
        if content:
            img = imfrombytes(content, flag='grayscale' if self.color == 'gray' else 'color')
        if img is None:
            raise ValueError(f'image {path!r} is unreadable or corrupt (cv2 could not decode it)')
        if self.color == 'gray':
            return img[..., None]
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def uint8_to_float(img):
    """uint8 → float32 in [0, 1], as the published code does (``float32(img / 255.)``)."""
    return (img / 255.).astype(np.float32)
