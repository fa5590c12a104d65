"""Analysis: reading finished runs back, grouping them and summarizing them over seeds.

Owns: finding runs and grouping them by their resolved configs (`run_groups`), statistics
over seeds (`stats`: sample std, IQM, bootstrap confidence intervals) and learning curves
and tables (`plot`; its command, `pgrun-plot`, is pgrun.cli.plot). Reads run directories only: never imports
torch, the networks, the algorithms or the training loop.
"""
