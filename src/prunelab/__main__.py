"""``python -m prunelab``, e.g. under ``torchrun --nproc_per_node N -m prunelab run RECIPE``."""

import sys

from prunelab.cli import main

sys.exit(main())
