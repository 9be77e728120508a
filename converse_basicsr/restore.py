"""``converse-restore`` / ``python -m converse_basicsr.restore``: restore images with a zoo model.

Exit status: 0 all images restored; 1 some images failed (each is reported, the others are
still processed; a failed image writes nothing); 2 bad arguments (unknown model or device, missing
input, bad kernel, unwritable output, two inputs whose outputs would share a name or overwrite an input).
"""
import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from tqdm import tqdm

from converse_basicsr.hub.zoo import ZOO, ZooError
from converse_basicsr.inference.restorer import IMAGE_EXTENSIONS, ImageError, Restorer, output_names
from converse_basicsr.inference.tiling import parse_tile
from converse_basicsr.utils.runtime import retain_freed_memory

from .data.io import check_not_inputs, plan_output_names


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


def build_parser():
    models = ', '.join(f'{e.name} ({e.task})' for e in ZOO.values())
    p = argparse.ArgumentParser(prog='converse-restore', description='Restore images with a Converse model.')
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', help=f'zoo name [{models}] or a checkpoint file')
    source.add_argument('--onnx', help='an exported .onnx file (converse-export), run by ONNX Runtime')
    p.add_argument('--arch', help='arch type for a custom checkpoint (e.g. ConverseDnCNN); default: from the zoo')
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
        '--scale', type=int, help='sf of a kernel-conditioned model (default 1); for other models the '
        'expected scale, checked against the measured one')
    p.add_argument('--device', default='cpu', help='torch device, e.g. cpu, cuda, cuda:1 (default cpu)')
    p.add_argument('--half', action='store_true', help='float16 on CUDA (on the CPU: warning, float32)')
    p.add_argument(
        '--tile', default=None, help="tile size in input pixels, or 'auto' (tile only if memory "
        "would not suffice); default: whole image")
    p.add_argument('--tile-pad', type=int, default=32, help='context pixels around each tile (default 32)')
    p.add_argument('--compare', action='store_true', help='also write <name>_compare.png: input | output')
    return p


def _restorer(args):
    if args.arch_kwargs is not None and not args.arch:
        raise UsageError('--arch-kwargs needs --arch (the arch type they are for)')
    try:
        kwargs = json.loads(args.arch_kwargs or '{}')
    except json.JSONDecodeError as err:
        raise UsageError(f'--arch-kwargs is not valid JSON ({args.arch_kwargs!r}): {err}') from None
    if not isinstance(kwargs, dict):
        raise UsageError(f'--arch-kwargs must be a JSON object, got {args.arch_kwargs!r}')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # reported from restorer.messages instead
        model = args.model
        if args.onnx:  # an exported file behind the nn.Module interface (needs the export extra)
            from converse_basicsr.export.runtime import load_onnx
            model = load_onnx(args.onnx)
        return Restorer(model, device=args.device, half=args.half, tile=parse_tile(args.tile, '--tile'),
                        tile_pad=args.tile_pad, scale=args.scale, kernel=args.kernel, model_dir=args.model_dir,
                        arch=args.arch, arch_kwargs=kwargs, kernel_check=not args.no_kernel_check)


def list_inputs(path):
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f'--input {path} does not exist')
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UsageError(f'--input {path} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
    return files


def prepare_output(path):
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as err:
        raise UsageError(f'--output {path} is not a writable directory: {err.strerror or err}') from None
    return path


def check_outputs(inputs, output, compare):
    """The output names of every input (the naming rule of ``data.io.plan_output_names``), checked before
    anything is written: two inputs sharing an output name, or an output that is an input, end the run (exit
    status 2). ``Restorer.restore_file`` checks each file again, for callers of the library."""
    plan = plan_output_names(inputs, lambda p: output_names(p, compare))
    check_not_inputs([output / name for names in plan.values() for name in names], inputs)


def run(args):
    """Restore every input; returns the exit status. Raises UsageError for bad arguments."""
    inputs = list_inputs(args.input)
    check_outputs(inputs, Path(args.output), args.compare)
    output = prepare_output(args.output)
    restorer = _restorer(args)
    if restorer.kernel_size and restorer.kernel is None:
        raise UsageError(f'model {restorer.name} is non-blind: give its {restorer.kernel_size}x{restorer.kernel_size} '
                         'blur kernel with --kernel FILE.npy')
    for message in restorer.messages:
        print(f'warning: {message}', file=sys.stderr)
    failed, start = [], time.time()
    for path in tqdm(inputs, desc=f'{restorer.name}', unit='img', file=sys.stderr):
        try:
            out_path, result = restorer.restore_file(path, output, args.compare)
        except (ImageError, ValueError, RuntimeError, OSError) as err:
            failed.append(path)
            tqdm.write(f'error: {path}: {err}', file=sys.stderr)
            continue
        tiled = f', tiles of {result.tile}' if result.tile else ''
        notes = ''.join(f'; note: {n}' for n in result.notes)
        tqdm.write(f'{path} -> {out_path} ({result.image.shape[1]}x{result.image.shape[0]}, '
                   f'{result.image.dtype}{tiled}){notes}')
    print(f'restored {len(inputs) - len(failed)}/{len(inputs)} images with {restorer.name} on {restorer.device} '
          f'in {time.time() - start:.1f} s -> {output}')
    if failed:
        print(f'failed: {", ".join(str(p) for p in failed)}', file=sys.stderr)
    return 1 if failed else 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    retain_freed_memory()
    try:
        return run(args)
    except (UsageError, ZooError, ImageError, ValueError) as err:
        print(f'converse-restore: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
