"""`python -m relbench` (also what `accelerate launch -m relbench` runs)."""

from relbench.cli import main

raise SystemExit(main())
