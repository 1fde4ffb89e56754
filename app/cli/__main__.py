"""`python -m app.cli ...` is `dynabert ...`."""
import sys

from app.cli.main import main

sys.exit(main())
