"""`python -m memsim` == the `memsim` console script."""
import sys

from memsim.cli import main

sys.exit(main())
