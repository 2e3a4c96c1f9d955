"""`[general] shard = i/n`: n recorders (the pods of one StatefulSet) share one config
and each records its share of the sources, every source by exactly one of them."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from isr.cli import main
from isr.config import load, parse_shard, shard_of
from isr.errors import ConfigError
from tests.support.recorder import RecorderProcess, wait_for

PATTERN = "filename_pattern = {source}/%Y%m%d_%H%M%S\n"


def tones(names: list[str]) -> str:
    return "".join(f"[{n}]\ntype = tone\nsample_rate = 8000\nchannels = 1\n" for n in names)


def test_a_sources_shard_is_the_same_on_every_machine_and_version() -> None:
    """Pods on different machines, and a pod upgraded before its neighbour, must
    agree: the shard is a fixed function of the name (SHA-256), pinned here."""
    assert [shard_of(n, 2) for n in ("radio1", "radio2", "studio", "tone")] == [0, 1, 1, 0]
    assert [shard_of(n, 7) for n in ("radio1", "radio2", "studio", "tone", "Ö1")] == [
        5,
        3,
        6,
        6,
        4,
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_n_recorders_with_one_config_record_every_source_once(count: int) -> None:
    names = [f"station{i}" for i in range(40)]
    shares = [
        load(text=f"[general]\nshard = {i}/{count}\n{PATTERN}{tones(names)}") for i in range(count)
    ]
    recorded = [[s.name for s in cfg.sources] for cfg in shares]
    assert sorted(n for share in recorded for n in share) == sorted(names)
    for cfg, share in zip(shares, recorded, strict=True):
        assert sorted([*share, *cfg.other_shards]) == sorted(names)
    if count > 1:
        assert all(0 < len(share) < len(names) for share in recorded), recorded


def test_auto_takes_the_index_from_a_statefulset_pods_host_name() -> None:
    assert (parse_shard("auto/3", host="isr-0").index, parse_shard("0/3").count) == (0, 3)
    shard = parse_shard("auto/3", host="isr-2.isr.radio.svc.cluster.local")
    assert (shard.index, shard.count) == (2, 3)
    assert str(shard) == "2/3 (auto: isr-2.isr.radio.svc.cluster.local)"
    assert parse_shard(" 1 / 4 ").index == 1
    with pytest.raises(ValueError, match="does not end in -<number>"):
        parse_shard("auto/3", host="studio")
    with pytest.raises(ValueError, match="gives shard 3, not below 3"):
        parse_shard("auto/3", host="isr-3")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2/2", "i must be below n"),
        ("one/2", "is not i/n or auto/n"),
        ("0/0", "n must be between 1 and 10000"),
        ("-1/2", "is not i/n or auto/n"),
    ],
)
def test_a_wrong_shard_names_its_section_and_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load("x.ini", text=f"[general]\nshard = {value}\n" + tones(["a"]))
    assert str(caught.value).startswith("x.ini: [general]: shard: ")


def test_a_shard_in_a_source_section_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load("x.ini", text=tones(["a"]) + "shard = 0/2\n")
    assert (
        str(caught.value)
        == "x.ini: [a]: shard: a shard is the whole recorder's: set it in [general]"
    )


def test_an_empty_share_is_a_warning_and_isr_check_says_who_records_what(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["radio1", "radio2", "studio", "tone"]  # shards of 2: 0, 1, 1, 0
    path = tmp_path / "config.ini"
    path.write_text("[general]\nshard = 1/2\n" + PATTERN + tones(names))
    assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shard: 1/2: records 2 of 4 sources; other shards record: radio1, tone" in out
    assert "[radio2] type=tone" in out and "[radio1] type=tone" not in out
    cfg = load(text="[general]\nshard = 5/6\n" + tones(["radio1"]))
    assert cfg.sources == ()
    assert cfg.warnings == (
        "[general] shard = 5/6: shard 5 of 6 holds none of the 1 source(s): nothing is recorded",
    )


def in_host(name: str) -> Callable[[], None]:
    """Run the child in a UTS namespace of its own named ``name``, as a pod is."""

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x04000000) != 0:  # CLONE_NEWUTS
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUTS)")
        raw = name.encode()
        if libc.sethostname(raw, len(raw)) != 0:
            raise OSError(ctypes.get_errno(), "sethostname")

    return enter


def files_at_least(folder: Path, count: int) -> Callable[[], bool]:
    return lambda: len(list(folder.glob("*/*.wav"))) >= count


def test_two_pods_of_one_config_each_record_their_share(tmp_path: Path) -> None:
    """Two real recorders named isr-0 and isr-1, one config with ``shard = auto/2``:
    each records its share, and together every source, each once."""
    if os.geteuid() != 0:
        pytest.fail("a UTS namespace needs root (the suite runs as root; see TESTING.md)")
    names = ["radio1", "radio2", "studio", "tone"]
    text = "[general]\nshard = auto/2\nsplit_minutes = 0.05\n" + PATTERN + tones(names)
    pods: list[RecorderProcess] = []
    try:
        for i in range(2):
            (tmp_path / f"isr-{i}").mkdir()
            pods.append(
                RecorderProcess(tmp_path / f"isr-{i}", text, preexec_fn=in_host(f"isr-{i}"))
            )
        recorded: list[set[str]] = []
        for i, pod in enumerate(pods):
            share = {n for n in names if shard_of(n, 2) == i}
            for name in share:
                pod.wait_recording(name)
            status = pod.status()
            assert status["host"] == f"isr-{i}"
            assert set(status["sources"]) == share, status["sources"]
            folder = tmp_path / f"isr-{i}" / "recordings"
            assert wait_for(files_at_least(folder, 2 * len(share)))
            recorded.append({p.parent.name for p in folder.glob("*/*.wav")})
        for pod in pods:
            assert pod.stop() == 0, pod.output
    finally:
        for pod in pods:
            pod.stop()
    assert recorded[0] | recorded[1] == set(names)
    assert not recorded[0] & recorded[1]
    sidecars = (tmp_path / "isr-1" / "recordings").glob("*/*.wav.json")
    assert {json.loads(p.read_text())["source"] for p in sidecars} == recorded[1]


def test_the_statefulset_in_the_docs_shards_its_config_over_its_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/operations.md's StatefulSet: each pod, named as Kubernetes names it,
    loads the ConfigMap's config and records its share; together, every source once."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    section = text.split("### Several recorders", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    docs = {d["kind"]: d for d in yaml.safe_load_all(block)}
    replicas = docs["StatefulSet"]["spec"]["replicas"]
    config_text = docs["ConfigMap"]["data"]["config.ini"]
    assert f"shard = auto/{replicas}" in config_text
    names = docs["StatefulSet"]["metadata"]["name"]
    shares = []
    for i in range(replicas):
        monkeypatch.setattr("isr.config.socket.gethostname", lambda i=i: f"{names}-{i}")
        cfg = load("config.ini", text=config_text)
        assert cfg.shard is not None and cfg.shard.index == i
        assert cfg.archive is not None and cfg.archive.recorder_id == f"{names}-{i}"
        shares.append({s.name for s in cfg.sources})
    everything = shares[-1] | set(cfg.other_shards)  # as the last pod sees them
    assert sorted(n for share in shares for n in share) == sorted(everything)
    assert len(everything) == 4
