"""`python -m selfsim`: the `selfsim` command line"""

import sys

from selfsim.cli import main

sys.exit(main())
