"""`python -m deltaprop.bench [options]`: the same as `deltaprop bench`."""
import sys

from . import main

if __name__ == "__main__":  # (never on import: the docs build imports every module)
    sys.exit(main())
