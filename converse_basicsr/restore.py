"""``converse-restore`` / ``python -m converse_basicsr.restore``: restore images with a zoo model (the folder loop is
:mod:`converse_basicsr.inference.folder`).

Exit status: 0 all images restored; 1 some images failed (each is reported, the others are
still processed; a failed image writes nothing); 2 bad arguments (unknown model or device, missing
input, bad kernel, unwritable output, two inputs whose outputs would share a name or overwrite an input).
"""
import sys

from converse_basicsr.data.io import MAX_INPUT_PIXELS
from converse_basicsr.hub.zoo import ZOO
from converse_basicsr.inference.folder import restore_folder
from converse_basicsr.inference.restorer import ImageError
from converse_basicsr.utils.checks import ConverseError
from converse_basicsr.utils.imports import import_user_modules
from converse_basicsr.utils.options import SPECS, CheckedParser, add_import_option, arg, check_device
from converse_basicsr.utils.runtime import retain_freed_memory


def present_device(value):
    return check_device(value, 'the value')


def build_parser():
    """The ``converse-restore`` flags."""
    models = ', '.join(f'{e.name} ({e.task})' for e in ZOO.values())
    p = CheckedParser(prog='converse-restore', description='Restore images with a Converse model.')
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        '--model', help=f'zoo name [{models}], a checkpoint file (the network it describes, '
        'else detected), or package.module:callable')
    source.add_argument('--onnx', help='an exported .onnx file (converse-export), run by ONNX Runtime')
    p.add_argument(
        '--arch', help='arch type for a checkpoint that does not describe its network (e.g. '
        'ConverseDnCNN); default: the file\'s description, the run\'s YAML beside models/, or detected')
    p.add_argument('--arch-kwargs', help='JSON kwargs of --arch, e.g. \'{"num_in_ch": 1}\' (needs --arch)')
    p.add_argument(
        '--model-dir', help='where zoo checkpoints are cached (default $CONVERSE_MODEL_DIR or '
        '~/.cache/converse_basicsr)')
    p.add_argument('--input', '-i', required=True, help='an image (.png/.jpg/.tif/..., or .npy float HW or HWC '
                   'RGB in [0, 1]) or a folder of them')
    p.add_argument('--output', '-o', required=True, help='output folder (created if missing)')
    p.add_argument('--kernel', help='blur kernel .npy for non-blind deblurring (7x7 for converse_usrnet)')
    p.add_argument('--no-kernel-check', action='store_true', help='accept a --kernel that is not a normalised '
                   'blur kernel (non-negative, sum 1)')
    p.add_argument(
        '--scale', type=arg(SPECS['scale']), help='sf of a kernel-conditioned model (default 1); for other models the '
        'expected scale, checked against the measured one')
    p.add_argument('--device', default='cpu', type=arg(SPECS['text'], present_device),
                   help='torch device, e.g. cpu, cuda, cuda:1 (default cpu)')
    p.add_argument('--half', action='store_true', help='float16 on CUDA (on the CPU: warning, float32)')
    p.add_argument(
        '--tile', default=None, type=arg(SPECS['tile']),
        help="tile size in input pixels, or 'auto' (tile only if memory "
        "would not suffice); default: whole image")
    p.add_argument('--tile-pad', type=arg(SPECS['tile_pad']), default=32,
                   help='context pixels around each tile (default 32)')
    p.add_argument('--compare', action='store_true', help='also write <name>_compare.png: input | output')
    p.add_argument(
        '--max-pixels', type=arg(SPECS['positive_int']), default=MAX_INPUT_PIXELS,
        help='refuse inputs whose header declares more pixels, before decoding (default '
        f'{MAX_INPUT_PIXELS})')
    return add_import_option(p)


def main(argv=None):
    """Console entry point (``converse-restore``); returns the exit status (module docstring)."""
    args = build_parser().parse_args(argv)
    retain_freed_memory()
    try:
        import_user_modules(args.imports)
        return restore_folder(args)
    except (ConverseError, ImageError, ValueError) as err:
        print(f'converse-restore: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
