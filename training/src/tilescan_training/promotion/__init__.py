"""Promotion of a trained model: compare it with a git revision's model (``report``) and decide (``gate``).

Both read the workspace and the baseline through ``dvc metrics diff`` / ``dvc params diff``; the rules live
in ``params.yaml`` under ``promote:``.
"""
