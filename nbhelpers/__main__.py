"""Entry point of `python -m nbhelpers`."""

import sys

from nbhelpers.cli import main

sys.exit(main())
