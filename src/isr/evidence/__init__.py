"""Evidence that the record is complete and untouched (DESIGN.md, "Evidence").

- ``digest``: each file's SHA-256, computed as it is written;
- ``chain``: the hash chain of each source, ``.isr/chain/<source>.jsonl``;
- ``keys``: the Ed25519 key pair that signs each day's chain head;
- ``check``: the one read of each closed file, with every CRC its format carries;
- ``pending``: the checks owed, kept across a restart;
- ``service``: what the recorder runs of all that, off its event loop;
- ``verify``: ``isr verify``;
- ``lines``: which chain line recorded a file (a clip's manifest names it);
- ``clipverify``: ``isr verify --clip``, a clip against its manifest, the files and
  the chain.
"""
