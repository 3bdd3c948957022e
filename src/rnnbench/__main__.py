"""The ``rnnbench`` command's entry point (``python -m rnnbench`` too). It imports the CLI
inside a guard, so that a Ctrl-C while the modules load is one line and exit 130, like a
Ctrl-C at any later moment, not a traceback. Once the command has returned, everything it
did is recorded and its exit status known: a Ctrl-C while the interpreter shuts down (its
exit handlers take a moment) ends it at once with that status (``cli.exit_on_late_interrupt``)."""

import sys


def main(argv=None) -> int:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("rnnbench: interrupted", file=sys.stderr)
        return 130
    from .cli import exit_on_late_interrupt

    return exit_on_late_interrupt(cli_main(argv))


if __name__ == "__main__":
    sys.exit(main())
