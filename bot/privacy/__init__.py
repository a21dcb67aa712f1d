"""Residents' personal data: how long it is kept (:mod:`bot.privacy.retention`)."""
