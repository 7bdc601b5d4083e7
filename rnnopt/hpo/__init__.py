"""Hyperparameter optimisation of cells with Optuna: study files, search spaces, the plan, samplers
and pruners, the objective (the one writer of trial attributes), the ask/tell worker loop and
confirmation of the best settings. ``rnnopt.study`` is its command line."""
