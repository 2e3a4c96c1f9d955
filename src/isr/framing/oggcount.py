"""An Ogg audio page's sample count from its packets, and what a count carries on.

A page's count needs the start of the packet it continues (``head``) and, for
Vorbis, the blocksize of the audio packet before it (``prev``): ``page_samples``
returns both for the next page with the count. The count is needed only where no
granule delta stands for it (a file's first page, a page after a connect or a
loss, a link's last page, a granule that is no page's plausible length), about one
page in a few hundred; every other page only hands ``head`` and ``prev`` on, which
``carry`` reads from the end of the segment table, at a quarter of a count's
cost (8,100 instructions against 32,000 on a live Vorbis page).
"""

from __future__ import annotations

from operator import eq, itemgetter

from isr.framing.oggcodecs import Codec
from isr.framing.oggpage import HEADER_SIZE, packet_layout, page_packets

__all__ = ["HEAD", "Carried", "Count", "carry", "page_samples"]

HEAD = 64
"""Bytes kept of a packet's start: enough for any sample count computation."""

Count = tuple[int, int, int, bytes | None]
"""(samples, samples from a decoder starting at the page, blocksize carried on,
head of the packet left open)."""

_SEGMENTS_AT = HEADER_SIZE - 1


def page_samples(codec: Codec, page: bytes, head: bytes | None, prev: int) -> Count:
    """The count of an audio page of ``codec``; ``head``: the start of the packet it
    continues, ``prev``: the blocksize before it."""
    if codec.name == "vorbis":
        return _count_vorbis(codec, page, head, prev)
    return _count_packets(codec, page, head, prev)


Carried = tuple[int, bytes | None]
"""(blocksize carried on, head of the packet left open): a count's last two."""


def carry(codec: Codec, page: bytes, head: bytes | None, prev: int) -> Carried | None:
    """(blocksize carried on, head of the packet left open) after the page, as
    ``page_samples`` gives them, without counting. ``page`` is one whole page: the
    open packet's segments are its last, all of 255 bytes, and the last whole
    packet's are the values before them, down to the one under 255 before those,
    so no running sum over the segment table is needed. None where only a count
    can tell (FLAC; a Vorbis page whose last whole packet is empty or no audio):
    the caller counts."""
    if codec.name == "flac":
        return None
    nseg = page[_SEGMENTS_AT]
    closed = page[HEADER_SIZE : HEADER_SIZE + nseg].rstrip(b"\xff")
    k = len(closed)  # segments up to the end of the last whole packet
    end = len(page) - 255 * (nseg - k)  # where it ends, and the open packet starts
    left = page[end : end + HEAD] if k < nseg else None
    if not k:  # no packet ends here: the head grows, if there is one
        if left is not None and head is not None:
            left = (head + left)[:HEAD]
        return prev, left
    if codec.name != "vorbis":  # Opus: no blocksize carries on (``packet_samples``)
        return 0, left
    j = len(closed[:-1].rstrip(b"\xff"))  # the last whole packet's segments: closed[j:]
    if j == 0 and head:  # it began on an earlier page
        lead = head[0]
    elif j == k - 1 and not closed[j]:
        return None  # an empty packet
    else:
        lead = page[end - sum(closed[j:])]
    size = codec.vorbis_sizes()[lead]
    return (size, left) if size else None


def _count_packets(codec: Codec, page: bytes, head: bytes | None, prev: int) -> Count:
    """Packet by packet, each counted by ``Codec.packet_samples``."""
    computed = fresh = 0
    first = True
    for start, end, complete in page_packets(page):
        if head is not None:
            data = (head + page[start : start + HEAD])[:HEAD]
            head = None
        else:
            data = page[start : min(end, start + HEAD)]
        if not complete:
            return computed, fresh, prev, data
        n, prev = codec.packet_samples(data, prev)
        computed += n
        fresh += codec.packet_samples(data, 0)[0] if first else n
        first = False
    return computed, fresh, prev, None


def _count_vorbis(codec: Codec, page: bytes, head: bytes | None, prev: int) -> Count:
    """``_count_packets`` for Vorbis, whose packets are counted from their first
    byte alone (tested to agree). A live page holds a few dozen packets, so no
    Python loop runs over them: the packets' starts come from the lacing values
    (``packet_layout``), their first bytes are classed short, long or not audio
    by ``bytes.translate`` and counted by class, and the sum of ``(previous + own)
    / 4`` over a run of blocksizes is ``(2 * sum - last + (prev or -first)) / 4``
    (each is a multiple of 4, so nothing is rounded)."""
    starts, ends, open_, zero = packet_layout(page)
    if not ends:  # no packet ends here: one piece, open, or none at all
        if not open_:
            return 0, 0, prev, None
        base = starts[0]
        if head is not None:
            return 0, 0, prev, (head + page[base : base + HEAD])[:HEAD]
        return 0, 0, prev, page[base : base + HEAD]
    bs0, bs1 = codec.blocksizes
    if (bs0 | bs1 | prev) & 3 or (zero and any(map(eq, starts, ends))):  # an empty packet
        return _count_vorbis_each(codec, page, head, prev)
    n = len(ends)
    leads = bytes(itemgetter(*starts[:n])(page) if n > 1 else (page[starts[0]],))
    if head:
        leads = head[:1] + leads[1:]
    kinds = leads.translate(codec.vorbis_kinds())
    audio = kinds.replace(b"\0", b"")
    computed = fresh = 0
    if audio:
        longs = audio.count(2)
        size = (0, bs0, bs1)
        last = size[audio[-1]]
        total = 2 * ((len(audio) - longs) * bs0 + longs * bs1) - last
        computed = (total + (prev or -size[audio[0]])) >> 2
        lead = size[kinds[0]]
        fresh = computed - ((prev + lead) >> 2 if lead and prev else 0)
        prev = last
    if open_:  # the last packet goes on in the next page
        return computed, fresh, prev, page[ends[-1] : ends[-1] + HEAD]
    return computed, fresh, prev, None


def _count_vorbis_each(codec: Codec, page: bytes, head: bytes | None, prev: int) -> Count:
    """``_count_vorbis`` packet by packet: for a page with an empty packet (a
    lacing value 0 that is no 255's end), or blocksizes that are no multiple of 4
    (a broken setup header)."""
    sizes = codec.vorbis_sizes()
    computed = fresh = 0
    first = True
    for start, end, complete in page_packets(page):
        if not complete:
            if head is not None:
                return computed, fresh, prev, (head + page[start : start + HEAD])[:HEAD]
            return computed, fresh, prev, page[start : min(end, start + HEAD)]
        lead = head[0] if head else page[start] if start < end else -1
        size = sizes[lead] if lead >= 0 else 0
        head = None
        if size:
            n = (prev + size) >> 2 if prev else 0
            computed += n
            if not first:
                fresh += n
            prev = size
        first = False
    return computed, fresh, prev, None
