"""`python -m demo`: the same as `ml-platform-demo`."""

import sys

from demo.cli import main

sys.exit(main())
