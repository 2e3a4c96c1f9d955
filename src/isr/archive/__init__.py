"""The off-site archive: closed files, sidecars and hash chains to S3-compatible
object storage (``[archive]``).

- ``queue``: the durable queue, ``.isr/archive/queue.sqlite3``;
- ``store``: the object store, through boto3;
- ``uploader``: the thread that empties the queue, and the health it reports.
"""
