"""`python -m entryway` is the `entryway` command."""

from entryway.cli.main import main

main()
