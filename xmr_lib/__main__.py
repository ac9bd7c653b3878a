"""``python -m xmr_lib ...``: the command line of :mod:`xmr_lib.course.cli`."""

import sys

from xmr_lib.course.cli import main

sys.exit(main())
