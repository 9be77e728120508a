"""converse-compare's figures: the crop box of each image (chosen with ``--crop`` or found automatically), the crop
grid (the ground truth with the box, then every model's crop zoomed, its full label wrapped under it) and the
PSNR-vs-time plot (full labels in a legend, so nearby points never hide each other's names)."""
import io
from os import path as osp

import cv2
import numpy as np

from converse_basicsr.data.io import quantise, write_atomic

GRID_TILE = 128  # default side of a zoomed crop in the crop grid, pixels
GRID_GAP = 4
FONT, FONT_SCALE, LINE_HEIGHT, MARGIN = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 15, 3


def to_rgb_uint8(tensor):
    """(1, C, H, W) float RGB/gray → HWC uint8 RGB (quantised as BasicSR does)."""
    img = quantise(tensor[0].numpy().transpose(1, 2, 0), np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def choose_crop(gt, size):
    """(top, left, side) of the ``size`` square of ``gt`` (HWC uint8) with the most gradient energy; on an image
    whose short side is below ``size`` the square is that side."""
    h, w = gt.shape[:2]
    side = max(1, min(size, h, w))
    gray = cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    window = cv2.boxFilter(energy, -1, (side, side), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = window[:h - side + 1, :w - side + 1]
    top, left = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(top), int(left), side


def parse_crop(value):
    """A chosen crop: ``'IMAGE:X,Y,SIZE'`` (``--crop``, YAML ``crops:`` item) or ``{image, x, y, size}`` →
    ``{'image', 'x', 'y', 'size'}``; IMAGE is a file name, its stem, or ``DATASET/NAME``; X, Y the box's left
    and top in ground-truth pixels. A :class:`ValueError` naming the value otherwise."""
    if isinstance(value, dict):
        image, numbers = value.get('image'), [value.get(k) for k in ('x', 'y', 'size')]
    else:
        image, _, rest = str(value).rpartition(':')
        numbers = rest.split(',')
    try:
        x, y, size = (int(str(n).strip()) for n in numbers)
    except (TypeError, ValueError):
        x = y = size = None
    if not image or x is None or x < 0 or y < 0 or size < 1:
        raise ValueError(f'crop {value!r}: expected IMAGE:X,Y,SIZE (or {{image, x, y, size}}) with X, Y >= 0 and '
                         'SIZE >= 1, in ground-truth pixels')
    return dict(image=str(image), x=x, y=y, size=size)


def crop_boxes(samples, gts, crops, size):
    """(top, left, side) per image: the chosen crop that names it (``crops``, see :func:`parse_crop`) or the
    automatic one (:func:`choose_crop` with ``size``). A chosen crop that names no image, or whose box leaves
    its image, is a :class:`ValueError` naming it (raised before anything is written)."""
    chosen = [parse_crop(c) for c in crops or ()]
    used = set()
    boxes = []
    for sample, gt in zip(samples, gts):
        stem = osp.splitext(sample.image)[0]
        names = {sample.image, stem, f'{sample.dataset}/{sample.image}', f'{sample.dataset}/{stem}'}
        match = [n for n, c in enumerate(chosen) if c['image'] in names]
        if not match:
            boxes.append(choose_crop(gt, size))
            continue
        crop = chosen[match[-1]]
        used.update(match)
        h, w = gt.shape[:2]
        if crop['x'] + crop['size'] > w or crop['y'] + crop['size'] > h:
            raise ValueError(f"crop {crop['image']}:{crop['x']},{crop['y']},{crop['size']}: the box leaves "
                             f'{sample.dataset}/{sample.image} ({w}x{h} pixels)')
        boxes.append((crop['y'], crop['x'], crop['size']))
    unused = [chosen[n]['image'] for n in range(len(chosen)) if n not in used]
    if unused:
        names = ', '.join(f'{s.dataset}/{s.image}' for s in samples[:8]) + (', ...' if len(samples) > 8 else '')
        raise ValueError(f"crop for {', '.join(unused)}: no such image (images: {names})")
    return boxes


def wrap(text, width):
    """``text`` as lines no wider than ``width`` pixels in the grid's font: split at spaces and newlines, a word
    too long for one line split between characters; nothing is dropped."""
    lines = []
    for paragraph in str(text).split('\n'):
        line = ''
        for word in paragraph.split(' '):
            candidate = f'{line} {word}' if line else word
            if _text_width(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ''
            for char in word:
                if line and _text_width(line + char) > width:
                    lines.append(line)
                    line = ''
                line += char
        lines.append(line)
    return lines


def _text_width(text):
    return cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0]


def _band(lines, width, height):
    band = np.full((height, width, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(band, text, (MARGIN, 12 + LINE_HEIGHT * i), FONT, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def crop_grid(gt, panels, box, tile=GRID_TILE):
    """One row: the full ground truth with the crop box drawn, then each image's crop zoomed (nearest) to
    ``tile`` pixels, each with its text under it, wrapped to the tile's width. ``panels``: [(text lines, HWC
    uint8 RGB image)]."""
    top, left, side = box
    zoom = tile / gt.shape[0]
    full = cv2.resize(gt, (max(1, round(gt.shape[1] * zoom)), tile), interpolation=cv2.INTER_AREA)
    corner = (round(left * zoom), round(top * zoom))
    cv2.rectangle(full, corner, (round((left + side) * zoom) - 1, round((top + side) * zoom) - 1), (255, 0, 0), 1)
    images = [full] + [
        cv2.resize(image[top:top + side, left:left + side], (tile, tile), interpolation=cv2.INTER_NEAREST)
        for _, image in panels
    ]
    texts = [['ground truth', f'box {side}px at ({left},{top})']] + [lines for lines, _ in panels]
    wrapped = [[piece for line in lines for piece in wrap(line, image.shape[1] - 2 * MARGIN)]
               for lines, image in zip(texts, images)]
    height = LINE_HEIGHT * max(len(lines) for lines in wrapped) + 4
    row = []
    for image, lines in zip(images, wrapped):
        if row:
            row.append(np.full((tile + height, GRID_GAP, 3), 255, np.uint8))
        row.append(np.concatenate([image, _band(lines, image.shape[1], height)], axis=0))
    return np.concatenate(row, axis=1)


def psnr_time_figure(rows, setup, metric='psnr'):
    """The figure of ``metric`` against seconds per image, one panel per dataset, one marker per model row,
    the full labels in one legend beside the panels."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    datasets = list(dict.fromkeys(r['dataset'] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets) + 3, 4.5), squeeze=False,
                             layout='constrained')
    markers = 'osD^vP*Xh<>p'
    handles = {}
    for ax, dataset in zip(axes[0], datasets):
        for n, r in enumerate(r for r in rows if r['dataset'] == dataset):
            if r['error'] or r.get(metric) in ('', None) or r['seconds_per_image'] == '':
                continue
            key = r.get('entry', n)
            handles[key] = ax.scatter(r['seconds_per_image'], r[metric], marker=markers[key % len(markers)],
                                      color=f'C{key % 10}', s=40, label=r['model'])
        ax.set_xscale('symlog', linthresh=1e-3)
        ax.set(title=dataset, xlabel=f"seconds per image ({setup['device']}, {setup['threads']} threads)",
               ylabel=f'{metric.upper()} (dB)' if metric.startswith('psnr') else metric.upper())
        ax.grid(alpha=0.3)
    if handles:
        ordered = [handles[k] for k in sorted(handles)]
        fig.legend(ordered, [h.get_label() for h in ordered], loc='outside right upper', fontsize=8, frameon=False)
    return fig


def plot_psnr_time(path, rows, setup, metric='psnr'):
    """Write :func:`psnr_time_figure` to ``path`` (PNG, atomically); returns ``path``."""
    fig = psnr_time_figure(rows, setup, metric)
    write_atomic(path, lambda temp: fig.savefig(temp, dpi=150))
    _close(fig)
    return path


def figure_png(fig):
    """PNG bytes of a figure (for the HTML report); closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110)
    _close(fig)
    return buffer.getvalue()


def _close(fig):
    from matplotlib import pyplot as plt
    plt.close(fig)
