"""Guided dialogs, reply wording and NLU training data, as data files shipped with the package."""
