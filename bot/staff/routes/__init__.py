"""The console's routes by area, each module with the ``add_…routes(app, console)`` that registers them
(called in order by :func:`bot.staff.console.create_console`)."""
