"""`python -m studies.cli ARGS` is `cascadesim ARGS`."""
import sys

from studies.cli import main

sys.exit(main())
