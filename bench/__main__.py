"""``python -m bench`` = ``python bench/run.py`` (see bench/run.py)."""
import sys

from bench.run import main

sys.exit(main())
