"""``python -m pneumonia_score`` is the ``pneumonia-score`` command."""

from pneumonia_score.cli import main

if __name__ == "__main__":
    main()
