"""``converse-compare`` / ``python -m converse_basicsr.compare``: several models, one protocol, one table.

The command line only: the runner, its options and the YAML keys are in
:mod:`converse_basicsr.evaluation.runner`; ``compare`` and ``load_model`` are re-exported for the Python API.
"""
import os
import sys

from converse_basicsr.evaluation.compare_metrics import NAMES
from converse_basicsr.evaluation.compare_options import flag_types
from converse_basicsr.evaluation.model_entries import load_model  # noqa: F401  (public name)
from converse_basicsr.evaluation.runner import CompareOptions, compare, run_from_args  # noqa: F401  (public names)
from converse_basicsr.utils.checks import ConverseError
from converse_basicsr.utils.imports import import_user_modules, import_yaml_modules
from converse_basicsr.utils.options import CheckedParser, add_import_option, fail
from converse_basicsr.utils.runtime import retain_freed_memory
from converse_basicsr.utils.safe_yaml import load_yaml


def build_parser():
    """The ``converse-compare`` flags (each overrides the same key of the ``-opt`` YAML), each checked by the table
    of :mod:`converse_basicsr.evaluation.compare_options` (a bad value: one line, exit status 2)."""
    types = flag_types()
    p = CheckedParser(prog='converse-compare', description='several models, one protocol, one table')
    p.add_argument('-opt', help='comparison YAML (options/compare/*.yml)')
    p.add_argument('--name', type=types['name'], help='results/<name>/ (default: the YAML name, else "compare")')
    p.add_argument('--task', choices=['denoise', 'sr', 'deblur'], help='protocol task (instead of a YAML)')
    p.add_argument('--sigma', type=types['sigma'], help='noise level (0-255 units): denoise default 25, deblur 2.55')
    p.add_argument('--color', choices=['gray', 'rgb'], help='denoise: gray (default) or rgb')
    p.add_argument('--scale', type=types['scale'], help='sr: scale factor (default 4)')
    p.add_argument('--kernel-path', type=types['kernel_path'], help='deblur: a .npy kernel or a folder of them')
    p.add_argument('--dataset', type=types['dataset'], action='append', default=[], metavar='NAME=FOLDER',
                   help='a test set (repeatable)')
    p.add_argument(
        '--model', type=types['model'], action='append', default=[], metavar='MODEL',
        help="[LABEL=]SOURCE: input, bicubic, a zoo name, package.module:callable, a checkpoint file "
        "(.pth/.pt/.ckpt/.safetensors: as it describes itself, else detected) or an .onnx file (repeatable)")
    p.add_argument('--model-dir', type=types['model_dir'],
                   help='where zoo checkpoints are (default $CONVERSE_MODEL_DIR or the cache)')
    p.add_argument('--device', type=types['device'], help='torch device (default cpu)')
    p.add_argument('--tile', type=types['tile'], help="tile size in input pixels, or 'auto'; default whole images")
    p.add_argument('--threads', type=types['threads'], help='torch threads for every model (default: torch default)')
    p.add_argument('--flops-size', type=types['flops_size'],
                   help='output side at which compute is counted (default 256)')
    p.add_argument('--plot', action='store_true', help='also write psnr_vs_time.png')
    p.add_argument('--results-root', type=types['results_root'],
                   help='where results/<name>/ goes (default: the YAML results_root, else results)')
    add_output_flags(p, types)
    return add_import_option(p)


def import_modules(args):
    """The ``--import`` modules, then the ``custom_imports`` of the ``-opt`` YAML (read with the safe loader);
    returns that YAML's content (None without one), which the run then uses: the file is read once."""
    import_user_modules(args.imports)
    if args.opt and os.path.isfile(args.opt):
        loaded = load_yaml(args.opt)
        import_yaml_modules(loaded, args.opt)
        return loaded
    return None


def add_output_flags(p, types):
    """The flags of what the report shows: metrics, crops, grid tiles, saved outputs, the LaTeX columns."""
    p.add_argument('--metric', action='append', choices=list(NAMES), metavar='METRIC',
                   help=f"a metric column (repeatable): {', '.join(NAMES)}; default the protocol's PSNR and SSIM")
    p.add_argument('--lpips-weights', type=types['lpips_weights'], metavar='FILE',
                   help="LPIPS weights: the state dict of lpips.LPIPS(net='alex') (needed by --metric lpips)")
    p.add_argument(
        '--crop', type=types['crop'], action='append', metavar='IMAGE:X,Y,SIZE',
        help='the crop box of one image (repeatable): left X, top Y, side SIZE in ground-truth pixels; '
        'IMAGE a file name, its stem or DATASET/NAME; other images get the automatic box')
    p.add_argument('--grid-tile', type=types['grid_tile'], metavar='PIXELS',
                   help='side of a zoomed crop in the grids and the HTML report (default 128)')
    p.add_argument('--save-outputs', action='store_true',
                   help="write each model's full-size output (PNG) under outputs/<model>/<dataset>/")
    p.add_argument(
        '--tex-columns', type=types['tex_columns'], metavar='LIST',
        help='extra columns of comparison.tex, comma-separated: params, flops, time (default params,flops;'
        ' none for none)')


def main(argv=None):
    """Console entry point (``converse-compare``): 0 when every model ran, 1 when one failed, 2 bad options."""
    args = build_parser().parse_args(argv)
    retain_freed_memory()  # the same CPU memory policy as converse-test, for the same numbers and speed
    try:
        loaded = import_modules(args)
    except ConverseError as err:
        return fail('converse-compare', err)
    return run_from_args(args, loaded)


if __name__ == '__main__':
    sys.exit(main())
