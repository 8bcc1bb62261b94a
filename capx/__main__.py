"""``python -m capx`` runs the ``capx`` command."""

import sys

from capx.cli import main

sys.exit(main())
