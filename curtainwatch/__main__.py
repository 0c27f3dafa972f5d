"""`python -m curtainwatch`: the same as the `curtainwatch` command."""

import sys

from curtainwatch.cli import main

sys.exit(main())
