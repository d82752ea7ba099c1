"""``python -m emqc`` runs the command line."""

from emqc.cli import main

if __name__ == "__main__":
    main()
