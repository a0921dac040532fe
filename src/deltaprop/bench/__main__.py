"""`python -m deltaprop.bench [options]`: the same as `deltaprop bench`."""
import sys

from . import main

sys.exit(main())
