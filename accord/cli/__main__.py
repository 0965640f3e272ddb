"""`python -m accord.cli`: the same as the `accord` script, and nothing else."""

from accord.cli.commands import console_main

console_main()
