"""``python -m harness.cli``: the ``hil`` command."""

import sys

from harness.cli import main

sys.exit(main())
