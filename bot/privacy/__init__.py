"""Residents' personal data: the one masking rule for residents' groups (:mod:`bot.privacy.masking`), their
rights — the notice, withdrawing an appeal, seeing and erasing their data (:mod:`bot.privacy.rights`) — and how
long it is kept (:mod:`bot.privacy.retention`)."""
