"""converse-restore's folder loop: the inputs (a file or a folder), their output names checked before anything is
written, one :class:`~converse_basicsr.inference.restorer.Restorer` from the command's options, and every image
restored with one line per image (a failed image is reported and writes nothing; the others still run).

Inputs are files from others: an image whose header declares more than ``--max-pixels`` pixels (default
``data.io.MAX_INPUT_PIXELS``) fails before it is decoded, and one that ends before its end marker (a truncated
JPEG or PNG, which OpenCV decodes partly without an error) is restored with a note saying so.

Exit status of :func:`restore_folder`: 0 all images restored; 1 some images failed; :class:`UsageError` (exit 2)
for bad arguments (missing input, bad ``--arch-kwargs``, unwritable output, two inputs whose outputs would share
a name or overwrite an input, a non-blind model without its kernel).
"""
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from tqdm import tqdm

from converse_basicsr.data.io import (MAX_INPUT_PIXELS, check_not_inputs, check_pixel_limit, plan_output_names,
                                      truncation_note)
from converse_basicsr.inference.restorer import IMAGE_EXTENSIONS, ImageError, Restorer, output_names
from converse_basicsr.inference.tiling import parse_tile
from converse_basicsr.utils.checks import ConverseError


class UsageError(ConverseError):
    """Bad command-line input: reported in one line, exit status 2."""


def build_restorer(args):
    """The :class:`Restorer` of the converse-restore options ``args`` (attributes named as the flags)."""
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
        model = getattr(args, 'onnx', None) or args.model  # an .onnx file is one more source of the resolver
        return Restorer(model, device=args.device, half=args.half, tile=parse_tile(args.tile, '--tile'),
                        tile_pad=args.tile_pad, scale=args.scale, kernel=args.kernel, model_dir=args.model_dir,
                        arch=args.arch, arch_kwargs=kwargs, kernel_check=not args.no_kernel_check)


def list_inputs(path):
    """The image files of ``path`` (itself when it is a file), sorted."""
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
    """The output folder, created, after a test that a file can be written in it."""
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


def restore_folder(args):
    """Restore every input of the converse-restore options ``args``; returns the exit status (0 or 1). Raises
    :class:`UsageError` for bad arguments."""
    inputs = list_inputs(args.input)
    check_outputs(inputs, Path(args.output), args.compare)
    restorer = build_restorer(args)  # a model that cannot be built leaves no output folder behind
    output = prepare_output(args.output)
    if restorer.kernel_size and restorer.kernel is None:
        raise UsageError(f'model {restorer.name} is non-blind: give its {restorer.kernel_size}x{restorer.kernel_size} '
                         'blur kernel with --kernel FILE.npy')
    for message in restorer.messages:
        print(f'warning: {message}', file=sys.stderr)
    failed, start = [], time.time()
    max_pixels = getattr(args, 'max_pixels', None) or MAX_INPUT_PIXELS
    for path in tqdm(inputs, desc=f'{restorer.name}', unit='img', file=sys.stderr):
        try:
            check_pixel_limit(path, max_pixels)  # from the header, before anything is decoded
            partly = truncation_note(path)
            out_path, result = restorer.restore_file(path, output, args.compare)
        except (ImageError, ValueError, RuntimeError, OSError) as err:
            failed.append(path)
            tqdm.write(f'error: {path}: {err}', file=sys.stderr)
            continue
        tiled = f', tiles of {result.tile}' if result.tile else ''
        notes = ''.join(f'; note: {n}' for n in result.notes + ([partly] if partly else []))
        tqdm.write(f'{path} -> {out_path} ({result.image.shape[1]}x{result.image.shape[0]}, '
                   f'{result.image.dtype}{tiled}){notes}')
    print(f'restored {len(inputs) - len(failed)}/{len(inputs)} images with {restorer.name} on {restorer.device} '
          f'in {time.time() - start:.1f} s -> {output}')
    if failed:
        print(f'failed: {", ".join(str(p) for p in failed)}', file=sys.stderr)
    return 1 if failed else 0
