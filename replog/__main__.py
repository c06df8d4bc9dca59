"""`python -m replog` runs one node."""

from replog.cli import main

raise SystemExit(main())
