"""The ``pushforward`` command: a Ctrl-C while the library is still importing (torch takes
seconds) ends as quietly as one during a command, with status 130 and no traceback.

May import, of this package: cli.
"""

import signal
import sys
from types import FrameType


def main() -> int:
    # A KeyboardInterrupt raised inside an import can land in a C extension's initialisation
    # (numpy's cannot be loaded twice in a process) or be swallowed by a library's broad
    # except, and the command then fails later or runs on as if nothing was asked. So while
    # importing, SIGINT is only noted, and acted on once the imports are done.
    asked: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        asked.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, note)
    except ValueError:  # not the main thread: signals cannot be caught there
        previous = None
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        asked.append(signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if asked:
        print("interrupted", file=sys.stderr)
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())
