"""The one exception type for mistakes a user can fix.

The CLI prints it as a single ``error: ...`` line and exits with status 2, so every message
names the bad file or option and says what to do about it.

Imports nothing of this package: any module may import it.
"""


class PushforwardError(Exception):
    """A user error: bad option, missing or corrupt data, bad checkpoint."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped training after a checkpoint; the CLI exits 128 + signum."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(f"stopped by signal {signum} at step {step}")
        self.signum, self.step = signum, step
