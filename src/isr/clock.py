"""Clock maths: split boundaries on the local wall clock, and a stream's media clock.

Pure functions over Unix timestamps (float seconds) and a ``tzinfo``, so tests can
drive them across DST changes with any zone and any fake time.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY = 86400.0
_AT = 1e-6
"""An instant this close before a boundary counts as on it (float residue of
``origin + n / rate``); far below one sample at any rate."""
_DST_MARGIN = 3 * 3600.0
"""Widest local-time shift handled around a transition (real ones are at most 2 h)."""


def local_zone() -> tzinfo:
    """The system's local zone as a real ``tzinfo`` with its DST rules.

    ``TZ`` wins over ``/etc/localtime``, as for the C library.
    """
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC


def _wall(t: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(t, tz).replace(tzinfo=None)


def _instants(wall: datetime, tz: tzinfo) -> list[float]:
    """The instants at which the local clock shows ``wall``: none in a gap, two in a fold."""
    out = []
    for fold in (0, 1):
        inst = wall.replace(tzinfo=tz, fold=fold).timestamp()
        if _wall(inst, tz) == wall and inst not in out:
            out.append(inst)
    return out


def _offset(t: float, tz: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(t, tz).utcoffset()


def _midnight(t: float, tz: tzinfo) -> tuple[int, float]:
    """When the local clock, at ``t``'s UTC offset, showed the midnight before ``t``
    (an exact whole-second instant), and the wall seconds from it to ``t``.

    Worked from whole seconds, so that a boundary ``midnight + k x split`` is the
    exact instant whatever ``t`` was: a boundary carrying ``t``'s float residue
    would make a sample-exact cut land one frame either side from file to file.
    Only used for instants at ``t``'s own offset (no transition between).
    """
    whole = math.floor(t)
    wall = _wall(whole, tz)
    since = wall.hour * 3600 + wall.minute * 60 + wall.second
    return whole - since, since + (t - whole)


def next_boundary(t: float, split_seconds: float, tz: tzinfo) -> float:
    """The first instant after ``t`` at which the local clock shows a multiple of
    ``split_seconds`` counted from local midnight.

    A split that does not divide a day gives a short last slot before midnight.
    Wall times skipped by a DST gap are no boundary; times repeated by a fold are
    boundaries twice (the file name then takes a ``_1`` suffix).
    """
    if split_seconds <= 0:
        raise ValueError("split_seconds must be positive")
    start_off = _offset(t, tz)
    if start_off == _offset(t + split_seconds + _DST_MARGIN, tz):
        # No transition ahead: local time runs with the instant.
        midnight, into = _midnight(t, tz)
        k = math.floor((into + _AT) / split_seconds) + 1
        cand = midnight + min(k * split_seconds, DAY)
        # Float residue can put cand a hair before the true multiple; never return <= t.
        return cand if cand > t else t + split_seconds
    return _next_boundary_slow(t, split_seconds, tz)


def _next_boundary_slow(t: float, split_seconds: float, tz: tzinfo) -> float:
    """Brute force near a DST transition: try every wall multiple in a wide window."""
    wall = _wall(t, tz)
    best = math.inf
    lo = wall - timedelta(seconds=_DST_MARGIN)
    hi = wall + timedelta(seconds=split_seconds + _DST_MARGIN)
    day = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= hi:
        first = max(0, math.ceil((lo - day).total_seconds() / split_seconds - 1e-9))
        k = first
        while True:
            offset = k * split_seconds
            if offset >= DAY:
                break
            cand_wall = day + timedelta(seconds=offset)
            if cand_wall > hi:
                break
            for inst in _instants(cand_wall, tz):
                if t < inst < best:
                    best = inst
            k += 1
        day += timedelta(days=1)
        # A day's last slot ends at the next midnight, which is the next day's k = 0.
    if math.isinf(best):  # cannot happen with a sane zone; stay safe
        return t + split_seconds
    return best


def current_boundary(t: float, split_seconds: float, tz: tzinfo) -> float:
    """The latest boundary at or before ``t``."""
    if _offset(t - split_seconds - _DST_MARGIN, tz) == _offset(t, tz):
        # No transition behind: local time ran with the instant.
        midnight, into = _midnight(t, tz)
        return midnight + math.floor((into + _AT) / split_seconds) * split_seconds
    # Near a transition: the latest candidate instant at or before t, found once.
    best = -math.inf
    wall = _wall(t, tz)
    lo = wall - timedelta(seconds=split_seconds + _DST_MARGIN)
    day = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= wall:
        k = max(0, math.ceil((lo - day).total_seconds() / split_seconds - 1e-9))
        while k * split_seconds < DAY:
            cand_wall = day + timedelta(seconds=k * split_seconds)
            if cand_wall > wall + timedelta(seconds=_DST_MARGIN):
                break
            for inst in _instants(cand_wall, tz):
                if best < inst <= t:
                    best = inst
            k += 1
        day += timedelta(days=1)
    return best if best > -math.inf else t


class MediaClock:
    """Tells when a stream's audio was aired, from the samples counted so far.

    A live stream arrives at real-time pace except for bursts: on connect Icecast
    replays seconds of older audio, and after a stall it may catch up. The moment
    each sample was aired is ``anchor + media_seconds``; the anchor is the earliest
    ``arrival - media_seconds`` seen, because audio cannot arrive before it was aired.
    When the sender's clock runs slow (or audio was really lost upstream) arrivals
    stay late; after ``settle`` seconds more than ``drift_limit`` late, we re-anchor,
    by the least lateness seen in those seconds: audio that came less late proves the
    clock was no later than that (jitter and congestion only ever add lateness).
    """

    def __init__(self, drift_limit: float = 1.0, settle: float = 5.0) -> None:
        self.drift_limit = drift_limit
        self.settle = settle
        self.anchor: float | None = None
        self.reanchors = 0
        self._late_since: float | None = None
        self._least_late = math.inf

    def observe(self, media_seconds: float, now: float) -> float | None:
        """Note that audio up to ``media_seconds`` has arrived by ``now``.

        Returns the size of a re-anchoring jump (seconds) when one happened.
        """
        cand = now - media_seconds
        if self.anchor is None or cand < self.anchor:
            self.anchor = cand
            self._late_since = None
            self._least_late = math.inf
            return None
        if cand - self.anchor <= self.drift_limit:
            self._late_since = None
            self._least_late = math.inf
            return None
        self._least_late = min(self._least_late, cand - self.anchor)
        if self._late_since is None:
            self._late_since = now
            return None
        if now - self._late_since < self.settle:
            return None
        jump = self._least_late
        self.anchor += jump
        self._late_since = None
        self._least_late = math.inf
        self.reanchors += 1
        return jump

    def aired(self, media_seconds: float) -> float:
        if self.anchor is None:
            raise RuntimeError("MediaClock.aired() before any observe()")
        return self.anchor + media_seconds
