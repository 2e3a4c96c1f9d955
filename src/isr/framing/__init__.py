"""Framers: split byte streams into whole frames or pages, with no I/O."""
