"""The ``pushforward`` command: a Ctrl-C while the library is still importing (torch takes
seconds) ends as quietly as one during a command, with status 130 and no traceback.

May import, of this package: cli.
"""

import sys


def main() -> int:
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())
