"""`python -m demo generate | run | ui` from the repository root (demo/cli.py)."""

import sys

from demo.cli import main

sys.exit(main())
