"""The benchmark glue: generated sections of docs/benchmarks.md and the issue-4 summary
gathered from the two video benchmarks' results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadtest.bench.doc_sections import replace_section
from loadtest.bench.soak import Sample
from loadtest.bench.video_summary import PARTS, MissingResults, gather

ISSUE_4_KEYS = {
    "edge_rps_200k", "nginx_rps_200k", "edge_rps_1m", "nginx_rps_1m", "hit_ratio",
    "hit_ratio_lru", "hit_ratio_belady", "ladder_single_process_s", "ladder_per_rung_s",
    "ladder_bare_ffmpeg_s", "first_rung_s", "coalescing_origin_fetches",
}  # fmt: skip


def test_a_section_is_replaced_between_its_markers_and_the_rest_is_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n")
    replace_section("a", "## A\nfirst", doc)
    replace_section("b", "## B\nsecond", doc)
    replace_section("a", "## A\nagain", doc)
    text = doc.read_text()
    assert text.count("## A") == 1
    assert "again" in text
    assert "first" not in text
    assert text.index("intro") < text.index("## A") < text.index("## B")


def test_the_summary_has_every_figure_issue_4_asks_for(tmp_path: Path) -> None:
    assert {key for keys in PARTS.values() for key in keys} == ISSUE_4_KEYS
    for part, keys in PARTS.items():
        figures = {key: 1.5 for key in keys}
        (tmp_path / f"{part}.json").write_text(json.dumps({**figures, "other": 0}))
    summary = gather(tmp_path)
    assert summary.keys() >= ISSUE_4_KEYS
    assert "other" not in summary


def test_a_missing_part_names_the_target_to_run(tmp_path: Path) -> None:
    (tmp_path / "bench-video-edge.json").write_text(
        json.dumps({key: 1 for key in PARTS["bench-video-edge"]})
    )
    with pytest.raises(MissingResults, match="make bench-video-transcode"):
        gather(tmp_path)


def test_soak_cpu_is_per_process_cores_over_the_window_and_skips_processes_seen_once() -> None:
    from loadtest.bench.soak import cores_used

    before = {"counter-0": 10.0, "edge-0": 4.0}
    after = {"counter-0": 25.0, "edge-0": 7.0, "edge-1": 3.0}
    assert cores_used(before, after, 30.0) == {"counter-0": 0.5, "edge-0": 0.1}


def _soak_samples(rss_at: dict[float, float], depth: int = 0) -> list[Sample]:

    return [
        Sample(at, {"counter-0": rss}, {"counter-0": 25}, depth, 1000.0, 1000.0, {})
        for at, rss in rss_at.items()
    ]


def test_soak_rss_is_judged_after_the_warm_up_and_growth_is_reported_per_hour() -> None:
    from loadtest.bench.soak import verdict

    # Fills from 300 to 700 MiB over the first 900 s, then flat: flat once the warm-up is
    # left out, not flat when it is judged.
    rss = {float(t): min(700.0, 300.0 + 400.0 * t / 900) for t in range(30, 3601, 30)}
    judged = verdict(_soak_samples(rss), 1000.0, warmup_s=900.0)
    assert judged["flat"]
    assert judged["rss_warmup_s"] == 900.0
    assert judged["processes"]["counter-0"]["rss_growth_mib_per_h"] == 0.0
    assert not verdict(_soak_samples(rss), 1000.0, warmup_s=0.0)["flat"]


def test_soak_rss_growing_after_the_warm_up_is_not_flat() -> None:
    from loadtest.bench.soak import verdict

    rss = {float(t): 500.0 + 0.1 * t for t in range(30, 3601, 30)}  # 360 MiB an hour
    judged = verdict(_soak_samples(rss), 1000.0, warmup_s=900.0)
    assert not judged["flat"]
    assert judged["processes"]["counter-0"]["rss_growth_mib_per_h"] == 360.0


def test_soak_short_runs_judge_every_sample_and_a_full_journal_is_never_flat() -> None:
    from loadtest.bench.soak import verdict

    short = verdict(_soak_samples({30.0: 300.0, 60.0: 310.0, 90.0: 305.0}), 1000.0, 900.0)
    assert short["rss_warmup_s"] == 0.0
    assert short["rss_samples_judged"] == 3
    # A journal that fills during the warm-up and stays full: judged on the whole run.
    filling = _soak_samples({float(t): 300.0 for t in range(30, 3601, 30)})
    for sample in filling:
        sample.journal_depth = min(10_000_000, int(sample.at_s * 20_000))
    assert not verdict(filling, 1000.0, 900.0)["journal"]["flat"]


def test_soak_counts_live_sstables_by_their_data_files(tmp_path: Path) -> None:
    from loadtest.bench.soak import sstable_count

    table = tmp_path / "data" / "ks" / "reel_state-1a2b"
    table.mkdir(parents=True)
    for generation in (1, 2, 3):
        (table / f"da-{generation}-bti-Data.db").write_bytes(b"")
        (table / f"da-{generation}-bti-Partitions.db").write_bytes(b"")
    assert sstable_count(tmp_path / "data") == 3
    assert sstable_count(tmp_path / "missing") == 0


def test_soak_a_process_seen_only_during_the_warm_up_is_judged_on_what_was_seen() -> None:
    from loadtest.bench.soak import verdict

    samples = _soak_samples({float(t): 300.0 for t in range(30, 3601, 30)})
    for sample in samples[10:]:
        del sample.rss_mib["counter-0"]
    judged = verdict(samples, 1000.0, 900.0)
    assert judged["processes"]["counter-0"]["rss_last_quarter_mib"] == 300.0


def test_soak_counts_a_process_descriptors_into_a_folder_apart(tmp_path: Path) -> None:
    from loadtest.bench.soak import CASSANDRA_DATA_FILES, descriptors_under, sample_processes

    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "elsewhere").write_bytes(b"")
    before = descriptors_under(os.getpid(), data)
    with (
        (data / "a-Data.db").open("wb"),
        (data / "b-Data.db").open("wb"),
        (tmp_path / "elsewhere").open("rb"),
    ):
        assert descriptors_under(os.getpid(), data) == before + 2
        _, fds, _ = sample_processes({"cassandra": os.getpid()}, data)
        _, plain, _ = sample_processes({"cassandra": os.getpid()})
    assert fds[CASSANDRA_DATA_FILES] == before + 2
    # The rest stays under the process's own name; without a folder nothing is split.
    assert fds["cassandra"] + fds[CASSANDRA_DATA_FILES] == plain["cassandra"]
    assert CASSANDRA_DATA_FILES not in plain


def test_soak_data_file_descriptors_are_reported_not_judged() -> None:
    from loadtest.bench.soak import CASSANDRA_DATA_FILES, verdict

    samples = _soak_samples({float(t): 300.0 for t in range(30, 3601, 30)})
    for index, sample in enumerate(samples):
        sample.open_fds[CASSANDRA_DATA_FILES] = 50 + index
        sample.cassandra_sstables = 20 + index // 2
    judged = verdict(samples, 1000.0, 900.0)
    assert judged["flat"]
    assert judged["cassandra_data"]["descriptors"] == {
        "first_quarter_max": 79,
        "last_quarter_max": 169,
    }
    assert judged["cassandra_data"]["sstables"]["last_quarter_max"] == 79


def _cassandra_samples(pool_at: dict[float, float], leak_mib_per_s: float) -> list[Sample]:
    """Cassandra at 1,300 MiB plus its memtable pool's peak so far plus a leak; the pool
    fills, flushes at 2,800 s (live drops, the allocator keeps the peak) and refills."""
    samples, peak = [], 0.0
    for at, live in pool_at.items():
        peak = max(peak, live)
        samples.append(
            Sample(
                at,
                {"cassandra": 1300.0 + peak + leak_mib_per_s * at},
                {"cassandra": 150},
                0,
                1000.0,
                1000.0,
                {},
                cassandra_memtables_mib={"live": live, "peak": peak},
            )
        )
    return samples


_POOL = {float(t): (0.26 * t if t < 2800 else 0.26 * (t - 2800)) for t in range(30, 3601, 30)}


def test_soak_judges_cassandra_without_its_memtable_pool_peak() -> None:
    from loadtest.bench.soak import verdict

    judged = verdict(_cassandra_samples(_POOL, 0.0), 1000.0, 900.0)
    cassandra = judged["processes"]["cassandra"]
    assert judged["flat"]
    assert cassandra["rss_flat"]
    assert cassandra["rss_raw_last_quarter_mib"] - cassandra["rss_raw_first_quarter_mib"] > 400
    assert cassandra["memtable_peak_max_mib"] == max(_POOL.values())


def test_soak_a_cassandra_leak_beside_its_memtable_pool_is_not_flat() -> None:
    from loadtest.bench.soak import verdict

    assert not verdict(_cassandra_samples(_POOL, 0.1), 1000.0, 900.0)["flat"]  # 360 MiB/h


def test_soak_cassandra_without_pool_readings_is_judged_on_its_raw_rss() -> None:
    from loadtest.bench.soak import verdict

    samples = _cassandra_samples(_POOL, 0.0)
    samples[-1].cassandra_memtables_mib = {}  # the probe died before the last sample
    judged = verdict(samples, 1000.0, 900.0)
    assert not judged["processes"]["cassandra"]["rss_flat"]
    assert "rss_judged" not in judged["processes"]["cassandra"]


def test_memtable_probe_reads_only_its_own_lines() -> None:
    from loadtest.bench.memtable_probe import parse_line

    assert parse_line("1795782271328 300537392\n") == 300537392
    assert parse_line("WARNING: A terminally deprecated method was called\n") is None
    assert parse_line("1795782271328 -1\n") is None
