"""`python -m pgrun ...`: the `pgrun` command."""

from pgrun.cli.train import main

main()
