"""``python -m pipeline`` is the ``refinery`` command (handy under ``ray job submit --working-dir``)."""

import sys

from pipeline.cli import main

sys.exit(main())
