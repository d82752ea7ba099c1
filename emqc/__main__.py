"""The ``emqc`` command (console script and ``python -m emqc``).

Before anything heavy is imported it restarts itself once with the allocator settings
of :mod:`emqc._memory` (scoring reuses freed memory instead of having the kernel zero
fresh pages for every block); importing the command line first would do that work twice.
"""

from emqc._memory import restart_with_scoring_allocator


def main() -> None:
    """Entry point of the ``emqc`` console script."""
    restart_with_scoring_allocator()
    from emqc.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
