"""Pack a folder of training images into an LMDB with BasicSR's ``lmdb_util``.

    python scripts/prepare_lmdb.py --input datasets/DIV2K/DIV2K_train_HR_sub \
        --output datasets/DIV2K/DIV2K_train_HR_sub.lmdb

The LMDB holds every image PNG-encoded under its path relative to ``--input`` without the
extension, and a ``meta_info.txt`` (``KEY.png (H,W,C) LEVEL`` per line) that the datasets read
with ``io_backend: {type: lmdb}``. Images keep their channels (a grayscale PNG stays 1-channel).
"""
import argparse
import os
import sys
from os import path as osp

import cv2

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from prepare_subimages import IMAGE_EXTENSIONS  # noqa: E402

from basicsr.utils import scandir  # noqa: E402
from basicsr.utils.lmdb_util import make_lmdb_from_imgs  # noqa: E402


def prepare_lmdb(input_folder, lmdb_path, compress_level=1, n_thread=4, batch=5000):
    """Write ``lmdb_path`` (must end in ``.lmdb`` and not exist) from the images under ``input_folder``;
    returns the keys in order."""
    if not osp.isdir(input_folder):
        raise FileNotFoundError(f'--input: {input_folder!r} is not a folder')
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'--output must end with .lmdb, got {lmdb_path!r}')
    if osp.exists(lmdb_path):
        raise FileExistsError(f'--output: {lmdb_path!r} already exists; remove it or choose another path')
    paths = sorted(p for p in scandir(input_folder, recursive=True) if p.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f'--input: no images ({", ".join(IMAGE_EXTENSIONS)}) in {input_folder!r}')
    for p in paths:  # fail before writing anything, naming the file
        if cv2.imread(osp.join(input_folder, p), cv2.IMREAD_UNCHANGED) is None:
            raise ValueError(f'cannot read image {osp.join(input_folder, p)!r} (unreadable or corrupt)')
    keys = [osp.splitext(p)[0].replace(os.sep, '/') for p in paths]
    on_disk = sum(osp.getsize(osp.join(input_folder, p)) for p in paths)
    make_lmdb_from_imgs(input_folder, lmdb_path, paths, keys, batch=batch, compress_level=compress_level,
                        multiprocessing_read=n_thread > 1, n_thread=max(n_thread, 1),
                        map_size=max(20 * on_disk, 1 << 26))
    return keys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of images (searched recursively)')
    parser.add_argument('--output', required=True, help='LMDB folder to create, ending in .lmdb')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression 0-9 inside the LMDB')
    parser.add_argument('--n-thread', type=int, default=4, help='processes reading images (1: no multiprocessing)')
    args = parser.parse_args(argv)
    prepare_lmdb(args.input, args.output, args.compress_level, args.n_thread)


if __name__ == '__main__':
    main()
