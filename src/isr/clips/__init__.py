"""Clips: the audio of one source between two moments, across files, as one file.

``units.py`` describes a recording's units (frames or samples) and their times;
``frames.py`` walks self-delimiting frames fast; the cutters (``mp3.py``,
``adts.py``, ``flac.py`` with ``flacpcm.py``, ``wav.py``; the protocol in
``cutter.py``, each named in the format registry) walk their files and assemble
clips; ``tables.py`` keeps the walks; ``plan.py`` picks the units; ``body.py`` holds
a clip's bytes as pieces with a known length; ``manifest.py`` writes what a clip
holds; ``clip.py`` puts them together for the web UI (``isr.web.clips``) and
``isr clip`` (``export.py``).
"""
