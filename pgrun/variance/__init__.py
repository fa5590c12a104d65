"""The variance lab (`pgrun-variance`): what each estimator of the policy gradient buys,
measured at a fixed policy of a run.

Owns: naming the estimators it compares (`estimators`), drawing batches of complete episodes
(`sampling`), the gradient estimates (`gradients`), the reference gradient of a finite MDP
(`tabular_mdp`), the statistics of K estimates (`statistics`), the policies it measures
(`subjects`), the measurement (`lab`), its outputs (`report`) and the one call that does it
all (`measure`). Built on the run's own parts: may import the training lifecycle and
everything below it, and the Python API (to compose a config); only the CLI imports it.
"""
