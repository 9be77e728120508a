"""``python -m converse_basicsr.export``: the ``converse-export`` command."""
import sys

from .cli import main

sys.exit(main())
