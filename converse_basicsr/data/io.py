"""Image IO: the one list of image extensions, reading/writing image files (``read_image``,
``write_image``, atomic), the output-naming rule, and the datasets' ground-truth images.

Shared by ``converse-restore`` (``inference``), the data preparation scripts and the test and
training pipelines. A dataset entry names its ground-truth images with

- ``dataroot_gt``: a folder of images, or a ``*.lmdb`` folder made by ``basicsr.utils.lmdb_util``;
- ``io_backend: {type: disk | lmdb, ...}``: extra keys go to ``FileClient`` (default ``disk``);
- ``meta_info`` (optional): a text file whose lines start with an image name (relative to
  ``dataroot_gt``; for LMDB the key plus extension, BasicSR's ``meta_info.txt`` format). For LMDB it
  defaults to ``<dataroot_gt>/meta_info.txt``; for a folder, without it every image is used, sorted by name;
- ``color: rgb | gray | luma``: images are returned as uint8 HWC, RGB order (BasicSR's cv2 reads BGR; the
  protocols and the published models use RGB), one channel ``(H, W, 1)``, or (``luma``) the image's
  grayscale (BT.601 luma, OpenCV's conversion) in all three channels ``(H, W, 3)``: what a 3-channel model
  trained on gray images (Train400) is given, and since the BT.601 Y of a gray pixel ``v`` is
  ``16 + 219/255·v``, such a model's Y-channel PSNR is the SR protocol's Y-channel PSNR of the colour image.

Files from others are checked before they are decoded or mapped: :func:`check_lmdb` compares an LMDB's
``data.mdb`` with the size its own header declares (a truncated one would kill the process with SIGBUS),
:func:`header_pixels` reads an image's size from its header (a 48 KB PNG may declare 400 million pixels), and
:func:`truncation_note` says when a JPEG or PNG ends before its end marker (OpenCV decodes it partly, silently).
"""
import os
import re
import struct
import sys
import tempfile
import warnings
from os import path as osp
from pathlib import Path

import cv2
import numpy as np

from basicsr.utils import FileClient, imfrombytes

from ..utils.checks import ConverseError

# Every image format OpenCV reads and writes here; ``.npy`` float arrays are accepted by ``read_image`` too.
IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')
ARRAY_EXTENSIONS = ('.npy', )
TIFF_EXTENSIONS = ('.tif', '.tiff')
# Float inputs are nominally in [0, 1]; unclipped noise goes a little beyond. Values outside this
# range mean another scale (0-255, 0-65535), which the models would turn into garbage.
FLOAT_INPUT_RANGE = (-1.0, 2.0)
COLORS = ('rgb', 'gray', 'luma')
BACKENDS = ('disk', 'lmdb')
# converse-restore's default limit on an input's pixels (header width x height): a 10000 x 10000 image;
# its --max-pixels raises it. Decoding takes 3 bytes per pixel before the model's own memory.
MAX_INPUT_PIXELS = 100_000_000
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


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
    names = sorted(name for name in os.listdir(folder) if is_image_file(name) and osp.isfile(osp.join(folder, name)))
    if not names:
        raise ValueError(f'dataroot_gt {folder!r} contains no images (extensions {", ".join(IMG_EXTENSIONS)})')
    return names


def check_lmdb(folder):
    """``folder`` if its ``data.mdb`` is as long as the environment's own header says (last page + 1 pages of the
    header's page size); else a ``ValueError`` naming the file. Only the header pages are read: the data pages
    of a truncated file would raise SIGBUS when touched."""
    import lmdb
    data = osp.join(folder, 'data.mdb')
    if not osp.isfile(data):
        raise ValueError(f'LMDB {folder!r} has no data.mdb (not an LMDB folder)')
    size = osp.getsize(data)
    try:
        env = lmdb.open(folder, readonly=True, lock=False, readahead=False, max_readers=1)
    except lmdb.Error as error:
        raise ValueError(f'LMDB {data!r} cannot be opened ({size} bytes): {error}') from None
    try:
        page = env.stat()['psize']
        needed = (env.info()['last_pgno'] + 1) * page
    finally:
        env.close()
    if size < needed:
        raise ValueError(f'LMDB {data!r} is truncated: {size} bytes, but its header declares {needed} '
                         f'({needed // page} pages of {page} bytes); copy or create it again')
    return folder


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
            check_lmdb(dataroot)
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
        """Image ``index`` as uint8, ``(H, W, 3)`` RGB, ``(H, W, 1)`` gray or ``(H, W, 3)`` luma."""
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
        if self.color == 'luma':  # BT.601 from the decoded colour (a decoder's own grayscale rounds differently)
            return np.repeat(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None], 3, axis=2)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def uint8_to_float(img):
    """uint8 → float32 in [0, 1], as the published code does (``float32(img / 255.)``)."""
    return (img / 255.).astype(np.float32)


# ----------------------------------------------------------------------------- image files
class ImageError(ConverseError):
    """An input image (or kernel) that cannot be read or used, or an output that cannot be written."""


class OutputNameError(ImageError):
    """Two inputs whose outputs would have the same name, or an output that would overwrite an input."""


def is_image_file(path, arrays=False):
    """Whether ``path``'s extension is an image format (``arrays=True``: or a ``.npy`` array)."""
    return str(path).lower().endswith(IMG_EXTENSIONS + (ARRAY_EXTENSIONS if arrays else ()))


def read_image(path):
    """An image file as an RGB (or single-channel) HW(C) array: uint8/uint16 from image files
    (16-bit PNG/TIFF keep 16 bits), float32 from ``.npy`` (HW or HWC, RGB, nominally in [0, 1])."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f'input image {path} does not exist')
    if path.suffix.lower() in ARRAY_EXTENSIONS:
        try:
            img = np.load(path, allow_pickle=False)
        except Exception as err:
            raise ImageError(f'cannot read {path} as a numpy array: {err}') from err
        if img.dtype.kind == 'f':
            img = img.astype(np.float32)
        return check_image(img, path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f'cannot read image {path} (not an image file OpenCV can decode)')
    img = check_image(img, path)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def header_pixels(path):
    """The pixel count (width x height) that the header of the image file at ``path`` declares, read without
    decoding the image (a ``.npy`` array's shape likewise); None when no header can be read."""
    path = Path(path)
    if path.suffix.lower() in ARRAY_EXTENSIONS:
        try:
            shape = np.load(path, mmap_mode='r', allow_pickle=False).shape
        except Exception:  # noqa: BLE001  (read_image names the problem)
            return None
        return int(shape[0]) * int(shape[1]) if len(shape) >= 2 else None
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as img:  # reads the header only
                return img.width * img.height
    except Image.DecompressionBombError as error:  # Pillow's own limit, far above most: its message has the count
        match = re.search(r'\((\d+) pixels\)', str(error))
        return int(match.group(1)) if match else 2 * Image.MAX_IMAGE_PIXELS + 1
    except Exception:  # noqa: BLE001  (not a format Pillow reads: OpenCV's decoder decides)
        return None


def check_pixel_limit(path, limit=MAX_INPUT_PIXELS, option='--max-pixels'):
    """An :class:`ImageError` when the header of ``path`` declares more than ``limit`` pixels (nothing decoded)."""
    pixels = header_pixels(path)
    if pixels is not None and pixels > limit:
        raise ImageError(f'{path}: its header declares {pixels} pixels, more than the limit of {limit} ({option} '
                         'raises it); not decoded')
    return pixels


def _jpeg_complete(data):
    """Whether JPEG ``data`` reaches its end-of-image marker, walking its segments (entropy-coded data never holds
    a marker other than a restart: 0xFF is stuffed as FF 00)."""
    pos = 2
    while True:
        pos = data.find(b'\xff', pos)
        if pos < 0 or pos + 1 >= len(data):
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker in (0x00, 0xFF, 0x01) or 0xD0 <= marker <= 0xD7:  # stuffed byte, fill, standalone markers
            pos += 1 if marker == 0xFF else 2
            continue
        if pos + 4 > len(data):
            return False
        pos += 2 + struct.unpack('>H', data[pos + 2:pos + 4])[0]  # a segment: skip its length


def _png_complete(f, size):
    """Whether the PNG file ``f`` (of ``size`` bytes) holds its chunks in full up to IEND."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= size:
        f.seek(pos)
        length, kind = struct.unpack('>I4s', f.read(8))
        pos += 12 + length  # length, type, data, CRC
        if kind == b'IEND':
            return pos <= size
    return False


def truncation_note(path):
    """A note when the JPEG or PNG file at ``path`` ends before its end marker (a file cut short, which OpenCV
    decodes partly without an error), else None."""
    with open(path, 'rb') as f:
        head = f.read(8)
        size = f.seek(0, os.SEEK_END)
        if head[:2] == b'\xff\xd8':
            f.seek(0)
            complete, kind = _jpeg_complete(f.read()), 'JPEG'
        elif head == PNG_SIGNATURE:
            complete, kind = _png_complete(f, size), 'PNG'
        else:
            return None
    return None if complete else f'{path} ends before its {kind} end marker: a truncated file, decoded only partly'


def check_image(img, source):
    """``img`` if it is an HW / HWC (1, 3 or 4 channels) uint8, uint16 or finite float32 array whose
    float values lie in ``FLOAT_INPUT_RANGE``; an :class:`ImageError` naming ``source`` otherwise."""
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageError(f'{source}: unsupported dtype {img.dtype} (expected uint8, uint16 or float)')
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))):
        raise ImageError(f'{source}: expected an HW or HWC image with 1, 3 or 4 channels, got shape {img.shape}')
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f'{source}: empty image of shape {img.shape}')
    if img.dtype == np.float32:
        if not np.isfinite(img).all():
            raise ImageError(f'{source}: contains NaN or infinite values')
        low, high = float(img.min()), float(img.max())
        if low < FLOAT_INPUT_RANGE[0] or high > FLOAT_INPUT_RANGE[1]:
            raise ImageError(f'{source}: float values range over [{low:g}, {high:g}]; float images must be '
                             f'in [0, 1] (a little beyond for unclipped noise, at most {list(FLOAT_INPUT_RANGE)}): '
                             'divide 8-bit values by 255, 16-bit ones by 65535')
    return img


def quantise(img, dtype):
    """float image in [0, 1] → ``dtype`` (clipped, scaled to the type's peak, rounded)."""
    peak = np.iinfo(dtype).max
    return (np.clip(img, 0, 1) * peak).round().astype(dtype)


def write_atomic(path, write):
    """``write(temporary path)`` for a temporary file beside ``path`` (same extension, so format choices
    by extension still work), then rename it to ``path``: a kill never leaves a partial file under the
    final name, and a failed write leaves nothing."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix=f'.partial{path.suffix}', dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the permissions of a newly created file (mkstemp makes them 0600)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` through :func:`write_atomic`."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding='utf-8'))


def imwrite_atomic(path, img, params=()):
    """``cv2.imwrite`` through :func:`write_atomic`; ``img`` is in OpenCV's channel order (BGR)."""

    def write(tmp):
        if not cv2.imwrite(tmp, img, list(params)):
            raise ImageError(f'cannot write {path} (OpenCV refused the format or the data)')

    return write_atomic(path, write)


def write_image(path, img):
    """Write an RGB (or single-channel) uint8/uint16 array atomically; float input is written as 8 bit.
    The format follows the extension (16 bits survive in PNG and TIFF)."""
    if img.dtype.kind == 'f':
        img = quantise(img, np.uint8)
    if not np.issubdtype(img.dtype, np.integer):
        raise ImageError(f'cannot write {path}: unsupported dtype {img.dtype}')
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    return imwrite_atomic(path, img)


def plan_output_names(inputs, names_for, what='output'):
    """The naming rule shared by ``converse-restore`` and the data scripts: ``{input: names_for(input)}``,
    checked before anything is written. Two inputs that would produce the same name (compared
    case-insensitively, as on macOS/Windows file systems: ``a.png`` and ``a.jpg`` both giving ``a``)
    are an :class:`OutputNameError` naming both files; rename one of them."""
    owners, plan = {}, {}
    for item in inputs:
        names = list(names_for(item))
        for name in names:
            other = owners.setdefault(str(name).casefold(), item)
            if other != item:
                raise OutputNameError(f'{other} and {item} would both be written as {what} {name!r}; '
                                      'rename one of them (nothing was written)')
        plan[item] = names
    return plan


def check_not_inputs(outputs, inputs):
    """An :class:`OutputNameError` when a planned output path is one of the input files."""
    inputs = {osp.normcase(osp.realpath(p)): p for p in inputs}
    for out in outputs:
        source = inputs.get(osp.normcase(osp.realpath(out)))
        if source is not None:
            raise OutputNameError(f'output {out} would overwrite the input {source}; choose another output folder '
                                  '(nothing was written)')


def run_script(prog, fn, *args):
    """Run ``fn(*args)`` for a data-preparation script: a bad input (``OSError``, ``ValueError``) is one line,
    ``<prog>: error: ...``, on stderr and exit status 2 instead of a traceback. Returns the exit status."""
    try:
        fn(*args)
    except (OSError, ValueError) as err:
        print(f'{prog}: error: {err}', file=sys.stderr)
        return 2
    return 0
