"""Loudness over time: RMS per window and the loud sections, for every recorded format.

The maths is pure (:class:`RmsAccumulator`, :func:`loud_sections`) and is fed by a
streaming decoder (:func:`analyse_file`) that holds about a second of decoded audio at a
time, so an hour of stereo audio costs a few megabytes, not the 1.2 GB it would take whole.
PyAV carries FFmpeg's decoders for MP3, AAC, Vorbis, Opus, FLAC and PCM WAV. Samples are
squared in the decoder's own sample format (integers scaled as FFmpeg converts them to
float, so a full-scale square wave has RMS 1), a second at a time: per decoded frame,
Python only keeps a view of its bytes. That keeps the analysis close to the decoder's own
speed (bench/analysis.py, docs/benchmarks.md).

What one file may cost is bounded: a sample rate outside 8 kHz..768 kHz is refused as
not audio (a 1 Hz WAV header once made a 3 MB file yield 3 million windows), and no
file yields more than :data:`MAX_WINDOWS` windows (a longer one gets wider windows, each
the exact RMS of the samples it spans). The result travels and is cached as bytes
(:func:`encode`) whose RMS part is already JSON, so answering a request
(:func:`answer`) is a few joins and one vectorised pass, never a JSON encode of the
whole waveform on the server's event loop.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

WINDOW_MS = 100
MAX_WINDOWS = 100_000
"""Windows one file may yield: 2 h 46 min at 100 ms; a longer file gets 200 ms, 400 ms...
windows. The answer stays under a megabyte."""
MIN_RATE = 8_000
MAX_RATE = 768_000


class AnalysisError(Exception):
    """The file could not be decoded at all."""


class NotAudio(AnalysisError):
    """Decodable, but not audio anyone recorded; the message names no path."""


class RmsAccumulator:
    """Sums of squares per window of ``sample_rate * window_ms / 1000`` frames.

    Blocks of any length may be fed; windows straddling blocks come out the same as if
    the whole signal had been fed at once.
    """

    def __init__(
        self, sample_rate: int, window_ms: int = WINDOW_MS, max_windows: int = MAX_WINDOWS
    ) -> None:
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if max_windows < 2:
            raise ValueError("max_windows must be at least 2")
        self.sample_rate = sample_rate
        self.window_frames = max(1, round(sample_rate * window_ms / 1000))
        self._window_ms = window_ms
        self.max_windows = max_windows
        self.group = 1
        """Windows of ``window_frames`` per window kept: doubles whenever the windows
        kept reach ``max_windows`` (adjacent pairs are summed: exact)."""
        self.frames = 0
        self._sums: list[float] = []
        self._counts: list[int] = []
        self._carry_sum = 0.0  # whole small windows of the kept window being filled
        self._carry_count = 0
        self._carry_n = 0
        self._part_sum = 0.0
        self._part_count = 0
        self._part_frames = 0

    def feed(self, block: npt.NDArray[np.floating[Any]]) -> None:
        """``block`` is (frames, channels) or (frames,) of samples in [-1, 1]."""
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        n = x.shape[0]
        if n == 0:
            return
        sq = np.einsum("ij,ij->i", x, x)  # per-frame sum over channels
        channels = x.shape[1]
        self.frames += n
        pos = 0
        need = self.window_frames - self._part_frames
        if self._part_frames:
            take = min(need, n)
            self._part_sum += float(sq[:take].sum())
            self._part_count += take * channels
            self._part_frames += take
            pos = take
            if self._part_frames == self.window_frames:
                self._close_part()
        whole = (n - pos) // self.window_frames
        if whole:
            end = pos + whole * self.window_frames
            sums = sq[pos:end].reshape(whole, self.window_frames).sum(axis=1)
            self._keep(sums, self.window_frames * channels)
            pos = end
        if pos < n:
            self._part_sum += float(sq[pos:].sum())
            self._part_count += (n - pos) * channels
            self._part_frames += n - pos

    @property
    def pending_frames(self) -> int:
        """Frames of a partial window fed so far (0 when the windows are all whole)."""
        return self._part_frames

    def add_windows(self, sums: npt.NDArray[np.float64], channels: int) -> None:
        """Whole windows at once: ``sums[i]`` is the sum of squares over all ``channels`` of
        window ``i`` (``window_frames`` frames). Only between windows."""
        if self._part_frames:
            raise ValueError("a partial window is pending: feed() it whole first")
        self._keep(np.asarray(sums, dtype=np.float64), self.window_frames * channels)
        self.frames += len(sums) * self.window_frames

    def _close_part(self) -> None:
        self._keep(np.array([self._part_sum]), self._part_count)
        self._part_sum, self._part_count, self._part_frames = 0.0, 0, 0

    def _keep(self, sums: npt.NDArray[np.float64], count: int) -> None:
        """Whole small windows (each of ``count`` samples) into the windows kept."""
        g = self.group
        if g == 1:
            self._sums.extend(sums.tolist())
            self._counts.extend([count] * len(sums))
        else:
            if self._carry_n:
                take = min(g - self._carry_n, len(sums))
                self._carry_sum += float(sums[:take].sum())
                self._carry_count += take * count
                self._carry_n += take
                sums = sums[take:]
                if self._carry_n == g:
                    self._sums.append(self._carry_sum)
                    self._counts.append(self._carry_count)
                    self._carry_sum, self._carry_count, self._carry_n = 0.0, 0, 0
            whole = len(sums) // g
            if whole:
                self._sums.extend(sums[: whole * g].reshape(whole, g).sum(axis=1).tolist())
                self._counts.extend([count * g] * whole)
            rest = sums[whole * g :]
            if len(rest):
                self._carry_sum += float(rest.sum())
                self._carry_count += len(rest) * count
                self._carry_n += len(rest)
        while len(self._sums) >= self.max_windows:
            self._widen()

    def _widen(self) -> None:
        """Sum adjacent pairs of the windows kept; an odd last one joins the carry (it
        and the carry are fewer small windows than the doubled group: still partial)."""
        sums = np.asarray(self._sums)
        counts = np.asarray(self._counts, dtype=np.int64)
        pairs = len(sums) // 2
        if len(sums) % 2:
            self._carry_sum += float(sums[-1])
            self._carry_count += int(counts[-1])
            self._carry_n += self.group
        self._sums = sums[: 2 * pairs].reshape(pairs, 2).sum(axis=1).tolist()
        self._counts = counts[: 2 * pairs].reshape(pairs, 2).sum(axis=1).tolist()
        self.group *= 2

    @property
    def window_ms(self) -> int:
        """Nominal milliseconds per window of :meth:`result` (``group`` small windows)."""
        return self.group * self._window_ms

    def result(self) -> list[float]:
        """RMS of every window; a trailing partial window counts what it holds."""
        sums, counts = list(self._sums), list(self._counts)
        if self._carry_n or self._part_frames:
            sums.append(self._carry_sum + self._part_sum)
            counts.append(self._carry_count + self._part_count)
        return [math.sqrt(s / c) if c else 0.0 for s, c in zip(sums, counts, strict=True)]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def loud_sections(
    rms: list[float] | npt.NDArray[np.float64],
    threshold: float,
    window_s: float,
    duration: float | None = None,
) -> list[list[float]]:
    """Merge consecutive windows with ``rms >= threshold`` into ``[start_s, end_s]``.

    The last window may be short: its section ends at ``duration`` when given.
    Vectorised: a waveform of 100,000 windows costs about a millisecond.
    """
    loud = np.asarray(rms, dtype=np.float64) >= threshold
    if not loud.any():
        return []
    edges = np.diff(np.concatenate(([0], loud.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1) * window_s
    ends = np.flatnonzero(edges == -1) * window_s
    if duration is not None:
        ends = np.minimum(ends, duration)
    return np.stack([starts.round(3), ends.round(3)], axis=1).tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Analysis:
    window_ms: int
    duration_s: float
    rms: list[float]

    def to_json(self, threshold: float) -> dict[str, Any]:
        return {
            "window_ms": self.window_ms,
            "duration_s": round(self.duration_s, 3),
            "threshold": threshold,
            "rms": [round(v, 5) for v in self.rms],
            "loud": loud_sections(self.rms, threshold, self.window_ms / 1000, self.duration_s),
        }


@dataclass(frozen=True)
class _SampleFormat:
    stored: type[np.generic]
    """The numpy type of one sample as the decoder holds it."""
    work: type[np.floating[Any]]
    """The type a window's squares are summed in (windows are then added up in float64)."""
    scale: float
    """Multiplies a sample (less ``offset``) into [-1, 1): full scale is 1."""
    offset: float = 0.0


#: FFmpeg's sample formats by name (planar ones add a ``p``). Integers are scaled as FFmpeg
#: converts them to float (s16 / 32768), so the result is what a resampler to float gives.
#: float32 holds a 24-bit sample exactly (a 32-bit one to 1 part in 10**7); a window's
#: float32 dot product is good to ~1e-6 relative at worst (a constant signal), ~1e-7 usually.
_FORMATS: dict[str, _SampleFormat] = {
    "u8": _SampleFormat(np.uint8, np.float32, 1 / 128, 128.0),
    "s16": _SampleFormat(np.int16, np.float32, 2.0**-15),
    "s32": _SampleFormat(np.int32, np.float32, 2.0**-31),
    "s64": _SampleFormat(np.int64, np.float64, 2.0**-63),
    "flt": _SampleFormat(np.float32, np.float32, 1.0),
    "dbl": _SampleFormat(np.float64, np.float64, 1.0),
}

#: Samples buffered before they are measured: a batch is this many seconds (small enough
#: to stay in the CPU cache: 0.5 and 1 s measured ~10 % faster than 4 s).
BATCH_SECONDS = 1.0

#: FFmpeg's decoder threading ("AUTO" = frame threads where the codec has them: FLAC).
THREAD_TYPE = "AUTO"


class _Squares:
    """Decoded samples of one sample format and channel count, buffered as the decoder's
    own bytes and measured a batch (``batch_frames``) at a time, whole windows in one go.

    Per decoded frame only views of its planes are kept; once per batch they are joined
    and every whole window's sum of squares is one dot product (BLAS, float32 for 16 and 24-bit and
    float samples: ~1e-6 relative, well inside the 5 decimals the API reports). A window
    that a format change or the end of the file cuts goes to :meth:`RmsAccumulator.feed`.
    """

    def __init__(
        self, acc: RmsAccumulator, format_name: str, channels: int, batch_frames: int
    ) -> None:
        planar = format_name.endswith("p")
        fmt = _FORMATS.get(format_name[:-1] if planar else format_name)
        if fmt is None or channels <= 0:
            raise AnalysisError(f"unsupported sample format {format_name} x{channels}")
        self.key = (format_name, channels)
        self.acc = acc
        self.fmt = fmt
        self.channels = channels
        self.per_plane = 1 if planar else channels  # samples per frame in one plane
        self.frame_bytes = np.dtype(fmt.stored).itemsize * self.per_plane
        self.batch_frames = max(batch_frames, acc.window_frames)
        self._chunks: list[list[Any]] = [[] for _ in range(channels if planar else 1)]
        self._frames = 0
        self._work: npt.NDArray[np.floating[Any]] | None = None

    def push_frame(self, frame: Any) -> None:
        """A decoded ``av.AudioFrame`` of this format (planes may be padded: cut to size)."""
        n = frame.samples
        if n > 0:
            nbytes = n * self.frame_bytes
            for chunk, plane in zip(self._chunks, frame.planes, strict=True):
                chunk.append(memoryview(plane)[:nbytes])
            self._frames += n
            if self._frames >= self.batch_frames:
                self.flush()

    def flush(self, final: bool = False) -> None:
        """Measure the whole windows buffered; keep the rest unless ``final``."""
        n = self._frames
        if n == 0:
            return
        joined = [b"".join(chunk) for chunk in self._chunks]
        data = [np.frombuffer(b, dtype=self.fmt.stored) for b in joined]
        acc, wf = self.acc, self.acc.window_frames
        pos = 0
        if acc.pending_frames:  # after a format change: finish the window it cut
            pos = min(wf - acc.pending_frames, n)
            acc.feed(self._floats(data, 0, pos))
        whole = (n - pos) // wf
        if whole:
            end = pos + whole * wf
            acc.add_windows(self._window_sums(data, pos, whole), self.channels)
            pos = end
        if pos < n and final:
            acc.feed(self._floats(data, pos, n))
            pos = n
        rest = pos * self.frame_bytes
        self._chunks = [[memoryview(b)[rest:]] if pos < n else [] for b in joined]
        self._frames = n - pos

    def _window_sums(
        self, data: list[npt.NDArray[Any]], start: int, whole: int
    ) -> npt.NDArray[np.float64]:
        fmt, k, wf = self.fmt, self.per_plane, self.acc.window_frames
        size = whole * wf * k
        sums = np.zeros(whole, dtype=np.float64)
        for plane in data:
            seg = plane[start * k : start * k + size]
            if fmt.offset or seg.dtype != fmt.work:  # integers: to float, in a reused buffer
                if self._work is None or self._work.size < size:
                    self._work = np.empty(size, dtype=fmt.work)
                work = self._work[:size]
                if fmt.offset:  # unsigned: centred on 0
                    np.subtract(seg, fmt.offset, out=work, dtype=fmt.work)
                else:
                    np.copyto(work, seg, casting="unsafe")
                seg = work
            rows = seg.reshape(whole * k, wf)  # rows of one window (and channel, if packed)
            squares = np.vecdot(rows, rows)
            sums += squares.reshape(whole, k).sum(axis=1, dtype=np.float64)
        if fmt.scale != 1.0:
            sums *= fmt.scale * fmt.scale
        return sums

    def _floats(self, data: list[npt.NDArray[Any]], lo: int, hi: int) -> npt.NDArray[np.float64]:
        """Frames ``lo:hi`` as (frames, channels) float64 in [-1, 1)."""
        k = self.per_plane
        if len(data) == 1:
            x = data[0][lo * k : hi * k].reshape(-1, k).astype(np.float64)
        else:
            x = np.stack([plane[lo:hi] for plane in data], axis=1).astype(np.float64)
        if self.fmt.offset:
            x -= self.fmt.offset
        if self.fmt.scale != 1.0:
            x *= self.fmt.scale
        return x


def analyse_file(
    path: Path | str, window_ms: int = WINDOW_MS, max_windows: int = MAX_WINDOWS
) -> Analysis:
    """Decode ``path`` block by block and measure it. Runs in a worker process."""
    import av  # imported here: the web process itself never decodes

    acc: RmsAccumulator | None = None
    squares: _Squares | None = None
    resampler: Any = None
    fmt, channels, rate = "", 0, 0
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise AnalysisError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            stream.codec_context.thread_type = THREAD_TYPE
            for frame in container.decode(stream):
                if (
                    frame.format.name == fmt
                    and frame.layout.nb_channels == channels
                    and frame.sample_rate == rate
                    and squares is not None
                ):
                    squares.push_frame(frame)  # the hot path: all but the first frame
                    continue
                if acc is None:
                    rate = int(frame.sample_rate or stream.rate or 0)
                    if not MIN_RATE <= rate <= MAX_RATE:
                        raise NotAudio(f"a sample rate of {rate} Hz is not audio")
                    acc = RmsAccumulator(rate, window_ms, max_windows)
                frames = [frame]
                if frame.sample_rate != rate:  # a rate change: resampled to the first
                    if resampler is None:
                        resampler = av.AudioResampler(
                            format=frame.format.name, layout=frame.layout.name, rate=rate
                        )
                    frames = resampler.resample(frame)
                for f in frames:
                    key = (f.format.name, f.layout.nb_channels)
                    if squares is None or key != squares.key:
                        if squares is not None:
                            squares.flush(final=True)
                        squares = _Squares(acc, *key, int(BATCH_SECONDS * rate))
                        fmt, channels = key
                    squares.push_frame(f)
    except av.FFmpegError as exc:
        if acc is None:  # a file cut short still yields what decoded
            raise AnalysisError(f"{path}: {exc}") from exc
    if acc is None:
        raise AnalysisError(f"{path}: no audio decoded")
    if squares is not None:
        squares.flush(final=True)
    return Analysis(acc.window_ms, acc.duration, acc.result())


_MAGIC = b"ISR-RMS 1\n"


def encode(a: Analysis) -> bytes:
    """The threshold-free result as bytes: a JSON head line, the RMS values as float64,
    and the same values as the JSON array the API sends (5 decimals)."""
    rms = np.asarray(a.rms, dtype="<f8")
    text = json.dumps([round(v, 5) for v in a.rms], separators=(",", ":")).encode()
    head = {"window_ms": a.window_ms, "duration_s": a.duration_s, "windows": len(rms)}
    return b"".join([_MAGIC, json.dumps(head).encode(), b"\n", rms.tobytes(), text])


def decode(blob: bytes) -> tuple[dict[str, Any], npt.NDArray[np.float64], bytes]:
    """``(head, rms, rms_json)`` of :func:`encode`'s bytes; ValueError if they are not."""
    if not blob.startswith(_MAGIC):
        raise ValueError("not an analysis")
    end = blob.index(b"\n", len(_MAGIC))
    head = json.loads(blob[len(_MAGIC) : end])
    if not isinstance(head, dict) or not isinstance(head.get("windows"), int):
        raise ValueError("bad analysis head")
    start = end + 1
    stop = start + 8 * head["windows"]
    if len(blob) < stop:
        raise ValueError("analysis cut short")
    rms = np.frombuffer(blob, dtype="<f8", count=head["windows"], offset=start)
    return head, rms.astype(np.float64, copy=False), blob[stop:]


def answer(blob: bytes, threshold: float) -> bytes:
    """The API's JSON body for one threshold, built from :func:`encode`'s bytes."""
    head, rms, rms_json = decode(blob)
    window_ms, duration = head["window_ms"], head["duration_s"]
    loud = loud_sections(rms, threshold, window_ms / 1000, duration)
    return b"".join(
        [
            b'{"window_ms":%d,"duration_s":%s,"threshold":%s,"rms":'
            % (window_ms, json.dumps(round(duration, 3)).encode(), json.dumps(threshold).encode()),
            rms_json,
            b',"loud":',
            json.dumps(loud, separators=(",", ":")).encode(),
            b"}",
        ]
    )


def analyse_bytes(path: str, window_ms: int = WINDOW_MS) -> bytes:
    """What the worker process sends back: :func:`encode` of :func:`analyse_file`."""
    return encode(analyse_file(path, window_ms))
