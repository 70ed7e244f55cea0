"""`python -m connections_pipeline.sandbox serve ...`"""

import sys

from .cli import main

sys.exit(main())
