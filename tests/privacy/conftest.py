"""The privacy tests use the case-backend tests' runtimes and reference backend, and the staff tests'
world (two communities with staff) and console client."""

from tests.backend.conftest import make_runtime, reference  # noqa: F401
from tests.staff.conftest import cheap_password_hashing, console, world  # noqa: F401
