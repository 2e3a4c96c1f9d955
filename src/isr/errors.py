"""The one exception tree of ISR.

    IsrError
     ├── ConfigError(file, section, key)   bad config: `isr` exits with status 2
     ├── LockError                          another recorder owns the output directory
     ├── OutputError                        the output directory cannot be used at start
     ├── QueryError                         a question about the archive that has no answer:
     │    │                                 HTTP 400/404, `isr timeline` exits with status 2
     │    ├── BadTime(QueryError, ValueError)       a time that does not parse, FROM not
     │    │                                         before TO, a span over the limit
     │    ├── UnknownSource(QueryError, LookupError) no recording of that source
     │    ├── NoAudio(QueryError, LookupError)      no audio of the source in the span
     │    │                                         (a clip of nothing: HTTP 404)
     │    ├── FormatChanged(at)                     the codec parameters change inside a
     │    │                                         clip's span: HTTP 409 naming the moment
     │    └── NotClippable                          recordings of a format no cutter knows
     └── SourceError                        one source failed; it retries, others go on
          ├── SourceTimeout(SourceError, TimeoutError)   no byte for timeout_seconds
          ├── HttpError                      a status, header or redirect we cannot use
          ├── DeviceError                    an ALSA device that is missing or busy
          └── UnsupportedFormat              audio ISR recognises but cannot record:
                                             the source fails at once, not retried

Framers never raise on bad bytes (they resynchronise and count), so there is no
framing error here. Exit codes are chosen only in ``cli.py``.
"""

from __future__ import annotations


class IsrError(Exception):
    """Base of every error ISR raises on purpose."""


class ConfigError(IsrError):
    """A config value that cannot be used; names the file, section and key."""

    def __init__(self, message: str, *, file: str = "", section: str = "", key: str = "") -> None:
        self.file = file
        self.section = section
        self.key = key
        self.message = message
        where = ": ".join(p for p in (file, f"[{section}]" if section else "", key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class LockError(IsrError):
    """The output directory is locked by another recorder."""


class OutputError(IsrError):
    """The output directory cannot be created or locked."""


class QueryError(IsrError):
    """A time, span or source asked for that cannot be answered (the asker's mistake)."""


class BadTime(QueryError, ValueError):
    """A time or span that does not parse or makes no sense (FROM after TO, too long)."""


class UnknownSource(QueryError, LookupError):
    """No recording of that source is known."""


class NoAudio(QueryError, LookupError):
    """Nothing of the source was recorded in the span asked for."""


class FormatChanged(QueryError):
    """The codec parameters change at ``at`` (Unix seconds) inside a clip's span: one
    file cannot hold both sides (export each side)."""

    def __init__(self, message: str, at: float) -> None:
        super().__init__(message)
        self.at = at


class NotClippable(QueryError):
    """The recordings in the span are of a format that clips are not cut from yet."""


class SourceError(IsrError):
    """A source cannot go on with its current connection or process."""


class SourceTimeout(SourceError, TimeoutError):
    """No byte arrived for ``timeout_seconds``."""


class HttpError(SourceError):
    """The server answered with something we cannot record."""


class DeviceError(SourceError):
    """A capture device is missing, busy or died."""


class UnsupportedFormat(SourceError):
    """The stream is audio ISR knows it cannot record (ADIF AAC, free-format MP3,
    Ogg Speex, MP4, WMA): retrying would only repeat it, so the source fails."""
