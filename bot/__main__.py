"""``python -m bot`` is the ``huiyin`` command."""

from bot.cli import main

main()
