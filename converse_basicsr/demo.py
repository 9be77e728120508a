"""The demo (``converse-demo``, ``make demo``): reverse convolution, then a Converse-DnCNN trained on the CPU.
The steps are in :mod:`converse_basicsr.training.demo`.

1. The operator: blur scikit-image's ``camera`` with a known 7×7 kernel (depthwise circular convolution)
   and undo the blur with ``converse2d`` given that kernel; print both PSNRs.
2. The main job: write scikit-image's bundled sample images (no download) to ``<output>/data/{train,val}``,
   train a small Converse-DnCNN for grayscale denoising at σ = 25 through BasicSR's training pipeline
   with the shipped demo config (``options/demo/train_demo_dncnn.yml``, its dataroots pointed at
   ``<output>/data``; a few minutes), validating on the held-out images; then restore the held-out
   ``camera`` image, write noisy | restored | clean side by side to
   ``<output>/demo_denoising_camera_sigma25.png`` and print the PSNR of the noisy input and of the result.

``--iters N`` trains N iterations instead of the config's (a smoke test: ``--iters 4``);
``--operator-only`` runs step 1 alone. Everything is written under ``--output`` (default ``demo_output``
in the current directory; ``scripts/demo.py`` uses the checkout's ``demo_output/``).
"""
import sys

import torch

from converse_basicsr.training.demo import CONFIG, run_demo
from converse_basicsr.utils.options import SPECS, CheckedParser, arg, check_writable_dir, config_arg
from converse_basicsr.utils.runtime import retain_freed_memory


def writable(folder):
    return check_writable_dir(folder, 'the value')


def parse_args(argv=None):
    """The ``converse-demo`` flags, each checked by :mod:`converse_basicsr.utils.options` (exit status 2)."""
    parser = CheckedParser(prog='converse-demo', description=__doc__.split('\n')[0])
    parser.add_argument('--output', default='demo_output', type=arg(SPECS['text'], writable),
                        help='folder for the data, experiments and result image (default: ./demo_output)')
    parser.add_argument('--config', default=CONFIG, type=config_arg('demo'),
                        help=f'demo config, a shipped name or a YAML path (default: {CONFIG})')
    parser.add_argument('--iters', type=arg(SPECS['positive_int']),
                        help="train this many iterations instead of the config's total_iter")
    parser.add_argument('--operator-only', action='store_true', help='run step 1 (the operator) only')
    return parser.parse_args(argv)


def main(argv=None):
    """Console entry point (``converse-demo``): exit status 0 on success."""
    args = parse_args(argv)
    retain_freed_memory()
    torch.set_num_threads(1)  # on a busy or small CPU, more threads spin and get slower, not faster
    return run_demo(args.output, args.config, args.iters, args.operator_only)


if __name__ == '__main__':
    sys.exit(main())
