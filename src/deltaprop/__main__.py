"""`python -m deltaprop`: the same as the `deltaprop` command."""
import sys

from deltaprop.cli import main

if __name__ == "__main__":
    sys.exit(main())
