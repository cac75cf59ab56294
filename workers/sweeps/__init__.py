"""Sweeps: the controller that advances them and Optuna, their sampler and pruner."""
