"""``make demo`` / ``python scripts/demo.py [--iters N] [--operator-only]``: the package's demo
(``converse_basicsr/demo.py``, also the console script ``converse-demo``) with its output in the
checkout's ``demo_output/``; run from anywhere."""
import sys
from os import path as osp

from converse_basicsr.demo import main

OUTPUT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'demo_output')

if __name__ == '__main__':
    sys.exit(main(['--output', OUTPUT] + sys.argv[1:]))
