"""The archive as a timeline: what was recorded of a source, by time.

``times.py`` reads the times people type.
"""
