"""Helpers for tests that run training configs."""
import logging

import cv2
import numpy as np


def smooth_image(rng, size, channels=3):
    """A smooth random uint8 image (low-pass noise), so PSNR values are meaningful."""
    img = cv2.resize(rng.rand(5, 5, channels).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 255, 0, 255).astype(np.uint8).reshape(size, size, channels)


class LogRecords(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def plain(value):
    """OrderedDicts → dicts and tuples → lists, so yaml.dump writes plain data (no ``!!python/*`` tags, which the
    package's safe loader refuses)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
