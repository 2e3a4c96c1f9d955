"""Lets ``python -m isr`` behave like the ``isr`` console script."""

from isr.cli import main

raise SystemExit(main())
