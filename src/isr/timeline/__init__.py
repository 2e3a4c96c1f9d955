"""The archive as a timeline: what was recorded of a source, by time.

``times.py`` reads the times people type; ``index.py`` keeps the index by time
(``.isr/index.sqlite``, a cache rebuilt from the files and their sidecars);
``query.py`` turns its rows into a source's timeline; ``text.py`` prints one for
``isr timeline``.
"""
