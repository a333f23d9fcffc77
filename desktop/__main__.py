"""`python -m desktop` is `recast-studio`."""

import sys

from desktop.app import main

sys.exit(main())
