"""What returning NCHW output costs: the memory-format conversion at the end of an arch's forward against a
Converse-DnCNN evaluation at 256² (the paper's size: 20 blocks, 64 features), for 1 and 3 channels.

The archs run their blocks channels last and convert the result to the input's memory format
(``converse_basicsr.archs.blocks.in_layout_of``); this prints the conversion's time as a fraction of the
whole forward, both timed in the same process, best of ``--repeats`` after a warm-up, interleaved.

    python scripts/benchmark_layout.py                # CPU, 256², 5 repeats
    python scripts/benchmark_layout.py --device cuda --size 512
"""
import argparse
import time

import torch

import converse_basicsr  # noqa: F401  (registers the archs)
from converse_basicsr.archs.blocks import in_layout_of
from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN


def _timed(fn, device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(channels, size, repeats, device):
    """``(forward seconds, conversion seconds)``: best of ``repeats`` each."""
    torch.manual_seed(0)
    net = ConverseDnCNN(num_in_ch=channels).to(device).eval()
    x = torch.rand(1, channels, size, size, device=device)
    last = torch.rand(1, channels, size, size, device=device).contiguous(memory_format=torch.channels_last)
    forward, convert = [], []
    with torch.no_grad():
        net(x)
        in_layout_of(x, last)
        for _ in range(repeats):
            forward.append(_timed(lambda: net(x), device))
            convert.append(_timed(lambda: in_layout_of(x, last), device))
    return min(forward), min(convert)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f'Converse-DnCNN eval at {args.size}², {device}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} thread(s)')
    print('| channels | forward (ms) | NCHW conversion (ms) | conversion / forward |')
    print('|---|---|---|---|')
    for channels in (1, 3):
        forward, convert = measure(channels, args.size, args.repeats, device)
        print(f'| {channels} | {forward * 1e3:.1f} | {convert * 1e3:.3f} | {convert / forward:.4%} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
