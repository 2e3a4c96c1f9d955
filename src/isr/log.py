"""Logging to stdout and to ``log_file``, which logrotate may move at any time."""

from __future__ import annotations

import logging
import logging.handlers
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    """Replace the root handlers: one to stdout, one ``WatchedFileHandler``
    (it reopens the file when logrotate renames it)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT)
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(formatter)
    root.addHandler(out)
    if log_file:
        try:
            fh = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            root.warning("cannot open log file %s: %s; logging to stdout only", log_file, exc)
        else:
            fh.setFormatter(formatter)
            root.addHandler(fh)
    root.setLevel(level)
