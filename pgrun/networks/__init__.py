"""The networks: policies, their action distributions and observation encoders, value networks.

Owns: the Policy protocol and its implementation (`policy`), the action distributions with
their closed-form log-prob, entropy and KL, registered by action space (`distributions`),
the observation encoders, registered by name (`encoders`), the value network V(s) (`value`)
and the layers they are made of (`layers`). May import torch, gymnasium's spaces and
pgrun.config; never the collection, the estimators, the algorithms, the training loop or
the CLI.
"""
