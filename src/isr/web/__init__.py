"""The web UI: browse, play, analyse and delete recordings over HTTP.

It reads only the recordings directory and ``.isr/status.json``, so it can run in a
second container that mounts the directory at another path.
"""
