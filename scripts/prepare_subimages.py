"""Crop large training images (e.g. DIV2K / Flickr2K HR) into overlapping sub-images.

    python scripts/prepare_subimages.py --input datasets/DIV2K/DIV2K_train_HR \
        --output datasets/DIV2K/DIV2K_train_HR_sub --crop-size 480 --step 240

Sub-images load much faster than 2K images when a training patch is cropped at random; the
default 480/240/0 are BasicSR's usual settings for DIV2K. Each image ``NAME.png`` gives
``NAME_s001.png``, ``NAME_s002.png``, … (row-major). A border strip narrower than
``--thresh-size`` is dropped; otherwise the last crop is moved back to end at the border.
Two inputs with the same name but different extensions (``a.png``, ``a.jpg``) would write the
same crops: the run is refused before anything is written (the package's output-naming rule,
``converse_basicsr.data.io.plan_output_names``). Every input is decoded once before the first crop is
written, so an unreadable image stops the run with nothing written; every crop is written atomically.
The numeric flags are checked by ``converse_basicsr.utils.options`` (a bad value: one line, exit status 2).
"""
import argparse
import os
import sys
from multiprocessing import Pool
from os import path as osp

import cv2
from tqdm import tqdm

from converse_basicsr.data.io import IMG_EXTENSIONS, imwrite_atomic, is_image_file, plan_output_names, run_script
from converse_basicsr.utils.options import SPECS, CheckedParser, arg, check_value


def crop_positions(length, crop_size, step, thresh_size):
    """Top-left offsets along one axis: every ``step``, plus one ending at the border when the
    remaining strip is wider than ``thresh_size``."""
    if length <= crop_size:
        return [0]
    positions = list(range(0, length - crop_size + 1, step))
    if length - (positions[-1] + crop_size) > thresh_size:
        positions.append(length - crop_size)
    return positions


def crop_image(path, output, crop_size, step, thresh_size, compression_level):
    """Write the sub-images of one image; returns how many were written."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot read image {path!r} (unreadable or corrupt)')
    stem = osp.splitext(osp.basename(path))[0]
    h, w = img.shape[:2]
    count = 0
    for y in crop_positions(h, crop_size, step, thresh_size):
        for x in crop_positions(w, crop_size, step, thresh_size):
            count += 1
            crop = img[y:y + crop_size, x:x + crop_size, ...]
            imwrite_atomic(
                osp.join(output, f'{stem}_s{count:03d}.png'), crop, [cv2.IMWRITE_PNG_COMPRESSION, compression_level])
    return count


def list_images(folder):
    if not osp.isdir(folder):
        raise FileNotFoundError(f'--input: {folder!r} is not a folder')
    files = sorted(f for f in os.listdir(folder) if is_image_file(f))
    if not files:
        raise ValueError(f'--input: no images ({", ".join(IMG_EXTENSIONS)}) in {folder!r}')
    return [osp.join(folder, f) for f in files]


def prepare_subimages(input_folder, output_folder, crop_size=480, step=240, thresh_size=0, n_thread=4,
                      compression_level=3):
    """Crop every image of ``input_folder`` into ``output_folder``; returns the number of sub-images."""
    for flag, value, spec in (('--crop-size', crop_size, SPECS['positive_int']), ('--step', step,
                                                                                  SPECS['positive_int']),
                              ('--thresh-size', thresh_size, SPECS['non_negative_int']), ('--n-thread', n_thread,
                                                                                          SPECS['positive_int']),
                              ('--compression-level', compression_level, SPECS['compression'])):
        check_value(flag, value, spec)
    paths = list_images(input_folder)
    if osp.exists(output_folder) and osp.samefile(input_folder, output_folder):
        raise ValueError(f'--output {output_folder!r} is the --input folder: crops would mix with (and could '
                         'overwrite) the images; choose another folder')
    # crop names are '<stem>_sNNN.png': two inputs collide exactly when their stems do
    plan_output_names(paths, lambda p: [osp.splitext(osp.basename(p))[0]], 'crops of the stem')
    for path in tqdm(paths, unit='image', desc='Check'):  # every input decodes before any crop is written
        if cv2.imread(path, cv2.IMREAD_UNCHANGED) is None:
            raise ValueError(f'cannot read image {path!r} (unreadable or corrupt); nothing was written')
    os.makedirs(output_folder, exist_ok=True)
    args = [(p, output_folder, crop_size, step, thresh_size, compression_level) for p in paths]
    total = 0
    with tqdm(total=len(paths), unit='image', desc='Crop') as pbar:
        if n_thread <= 1:
            for a in args:
                total += crop_image(*a)
                pbar.update(1)
        else:
            with Pool(n_thread) as pool:
                for n in pool.imap_unordered(_crop_star, args):
                    total += n
                    pbar.update(1)
    print(f'{total} sub-images of {len(paths)} images written to {output_folder}')
    return total


def _crop_star(args):
    return crop_image(*args)


def main(argv=None):
    parser = CheckedParser(prog='prepare_subimages', description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    positive, text = arg(SPECS['positive_int']), arg(SPECS['text'])
    parser.add_argument('--input', type=text, required=True, help='folder of large images')
    parser.add_argument('--output', type=text, required=True, help='folder for the sub-images (created)')
    parser.add_argument('--crop-size', type=positive, default=480)
    parser.add_argument('--step', type=positive, default=240, help='offset between crops (crop-size − overlap)')
    parser.add_argument('--thresh-size', type=arg(SPECS['non_negative_int']), default=0,
                        help='drop a border strip narrower than this')
    parser.add_argument('--n-thread', type=positive, default=4)
    parser.add_argument('--compression-level', type=arg(SPECS['compression']), default=3, help='PNG compression 0-9')
    args = parser.parse_args(argv)
    return run_script('prepare_subimages', prepare_subimages, args.input, args.output, args.crop_size, args.step,
                      args.thresh_size, args.n_thread, args.compression_level)


if __name__ == '__main__':
    sys.exit(main())
