"""The appeals tests file appeals the way residents do (through the dispatcher), with the case-backend
tests' runtimes, and give communities staff with the staff tests' cheap password hashing."""

from tests.backend.conftest import make_runtime, reference  # noqa: F401
from tests.staff.conftest import cheap_password_hashing, console, world  # noqa: F401
