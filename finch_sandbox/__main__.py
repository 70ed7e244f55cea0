"""`python -m finch_sandbox serve ...`"""

import sys

from .cli import main

sys.exit(main())
