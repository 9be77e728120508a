"""Pack a folder of training images into an LMDB with BasicSR's ``lmdb_util``.

    python scripts/prepare_lmdb.py --input datasets/DIV2K/DIV2K_train_HR_sub \
        --output datasets/DIV2K/DIV2K_train_HR_sub.lmdb

The LMDB holds every image PNG-encoded under its path relative to ``--input`` without the
extension, and a ``meta_info.txt`` (``KEY.png (H,W,C) LEVEL`` per line) that the datasets read
with ``io_backend: {type: lmdb}``. Images keep their channels (a grayscale PNG stays 1-channel).
Two images whose keys would be equal (``a.png``, ``a.jpg``) are refused before anything is
written (the package's output-naming rule). The LMDB is built as ``.<name>.partial.lmdb`` beside
``--output`` and renamed when complete, so a killed run never leaves a half-written LMDB (or
``meta_info.txt``) under the final name; a stale partial one from a killed run is removed.
"""
import argparse
import os
import shutil
import sys
from os import path as osp

import cv2

# the package first: it makes ``import basicsr`` work on current torchvision
from converse_basicsr.data.io import IMG_EXTENSIONS, is_image_file, plan_output_names, run_script  # isort: split
from basicsr.utils import scandir
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from converse_basicsr.utils.options import SPECS, CheckedParser, arg


def prepare_lmdb(input_folder, lmdb_path, compress_level=1, n_thread=4, batch=5000):
    """Write ``lmdb_path`` (must end in ``.lmdb`` and not exist) from the images under ``input_folder``;
    returns the keys in order."""
    if not osp.isdir(input_folder):
        raise FileNotFoundError(f'--input: {input_folder!r} is not a folder')
    lmdb_path = lmdb_path.rstrip('/')
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'--output must end with .lmdb, got {lmdb_path!r}')
    if osp.exists(lmdb_path):
        raise FileExistsError(f'--output: {lmdb_path!r} already exists; remove it or choose another path')
    paths = sorted(p for p in scandir(input_folder, recursive=True) if is_image_file(p))
    if not paths:
        raise ValueError(f'--input: no images ({", ".join(IMG_EXTENSIONS)}) in {input_folder!r}')
    keys = plan_output_names(paths, lambda p: [osp.splitext(p)[0].replace(os.sep, '/')], 'LMDB key')
    keys = [names[0] for names in keys.values()]
    for p in paths:  # fail before writing anything, naming the file
        if cv2.imread(osp.join(input_folder, p), cv2.IMREAD_UNCHANGED) is None:
            raise ValueError(f'cannot read image {osp.join(input_folder, p)!r} (unreadable or corrupt)')
    on_disk = sum(osp.getsize(osp.join(input_folder, p)) for p in paths)
    partial = osp.join(osp.dirname(lmdb_path), f'.{osp.basename(lmdb_path)[:-len(".lmdb")]}.partial.lmdb')
    if osp.exists(partial):  # left by a killed run
        shutil.rmtree(partial)
    try:
        options = dict(multiprocessing_read=n_thread > 1, n_thread=max(n_thread, 1),
                       map_size=max(20 * on_disk, 1 << 26))
        make_lmdb_from_imgs(input_folder, partial, paths, keys, batch=batch, compress_level=compress_level, **options)
        os.replace(partial, lmdb_path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return keys


def main(argv=None):
    parser = CheckedParser(prog='prepare_lmdb', description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    text = arg(SPECS['text'])
    parser.add_argument('--input', type=text, required=True, help='folder of images (searched recursively)')
    parser.add_argument('--output', type=text, required=True, help='LMDB folder to create, ending in .lmdb')
    parser.add_argument('--compress-level', type=arg(SPECS['compression']), default=1,
                        help='PNG compression 0-9 inside the LMDB')
    parser.add_argument('--n-thread', type=arg(SPECS['positive_int']), default=4,
                        help='processes reading images (1: no multiprocessing)')
    args = parser.parse_args(argv)
    return run_script('prepare_lmdb', prepare_lmdb, args.input, args.output, args.compress_level, args.n_thread)


if __name__ == '__main__':
    sys.exit(main())
