"""`python -m engine.cli` runs `recast-engine`."""

import sys

from engine.cli import main

sys.exit(main())
