"""`python -m accord.cli`: the same as the `accord` script, and nothing else."""

from accord.cli.commands import main

raise SystemExit(main())
