"""The case desk (分拨 → 处置 → 监管): appeals handled to the end inside the community.

Staff of a community accept an appeal (受理), assign it to a handler (派单) — the property company, the
community office, a grid worker, a department, or the city's case backend — and the handler's people
report progress (进展), finish it (办结) or hand it back (退回). The same operations serve the console and
the chat commands (:mod:`bot.cases.desk`, :mod:`bot.cases.commands`); every step is an appeal event with
its actor and an audit entry, and reaches the resident, the relaying building leader and the supporters
through the outbox (:mod:`bot.appeals.notify`). Deadlines that act are in :mod:`bot.cases.deadlines`.

Who may do what: a community's staff act on all its appeals; a handler's people see and act on only the
appeals assigned to their handler (:class:`bot.cases.access.CaseActor`).
"""
