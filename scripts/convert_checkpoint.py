"""Convert a checkpoint between the published plain state dict and BasicSR's ``{'params': ...}``.

    python scripts/convert_checkpoint.py converse_dncnn.pth converse_dncnn_basicsr.pth --to basicsr
    python scripts/convert_checkpoint.py net_g_latest.pth converse_dncnn.pth --to plain

``--to plain`` takes ``params_ema`` when the file has it (BasicSR's EMA weights), else ``params``
(``--key`` picks one). ``--to basicsr`` writes under ``--key`` (default ``params``), which is what
``path: pretrain_network_g`` with ``param_key_g: params`` loads.
"""
import argparse
import sys

import torch


def convert(checkpoint, to, key=None):
    if not isinstance(checkpoint, dict):
        raise ValueError(f'not a state dict: {type(checkpoint).__name__}')
    wrapped = [k for k in ('params_ema', 'params') if isinstance(checkpoint.get(k), dict)]
    if to == 'plain':
        if not wrapped:
            raise ValueError('already a plain state dict (no params / params_ema key)')
        key = key or wrapped[0]
        if key not in wrapped:
            raise ValueError(f'--key {key!r} not in the checkpoint (it has {wrapped})')
        return checkpoint[key]
    if wrapped:
        raise ValueError(f'already in BasicSR format (keys {wrapped})')
    return {key or 'params': checkpoint}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('input')
    p.add_argument('output')
    p.add_argument('--to', choices=('basicsr', 'plain'), required=True)
    p.add_argument('--key', choices=('params', 'params_ema'), help='the BasicSR key to write / read')
    args = p.parse_args(argv)
    try:
        checkpoint = torch.load(args.input, map_location='cpu', weights_only=True)
        torch.save(convert(checkpoint, args.to, args.key), args.output)
    except (OSError, RuntimeError, ValueError) as err:
        print(f'convert_checkpoint: error: {args.input}: {err}', file=sys.stderr)
        return 2
    print(f'{args.input} -> {args.output} ({args.to})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
