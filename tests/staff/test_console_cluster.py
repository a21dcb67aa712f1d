"""The console's Redis paths (login counters, sessions and their per-account index) on a real
three-node Redis Cluster: the admission script must keep to one hash slot, or the cluster answers
CROSSSLOT. The tests are the console's own, run again with ``REDIS_URL=redis+cluster://…``.

Real services only (PostgreSQL as in the real run); skipped without ``redis-server``/``redis-cli``.
"""

from __future__ import annotations

from tests.staff.test_console_login import (  # noqa: F401
    test_colleagues_logging_in_from_one_office_do_not_lock_it,
    test_ending_an_accounts_sessions_logs_out_every_browser,
    test_one_account_attacked_from_many_addresses,
    test_parallel_attempts_on_one_account_never_exceed_its_limit,
)
from tests.test_cluster import cluster_url, pytestmark, settings  # noqa: F401  (fixtures, marks)
