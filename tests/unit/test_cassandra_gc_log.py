"""Reading Cassandra's GC pauses from its log, as the soak reports them."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

from loadtest.bench import cassandra_gc

YOUNG = (
    "INFO  [Notification Thread] 2026-11-27 23:09:17,481 GCInspector.java:286 - G1 Young"
    " Generation GC in 215ms.  G1 Eden Space: 98566144 -> 0; G1 Old Gen: 209637376 -> 217501696;"
)
OLD = (
    "WARN  [Notification Thread] 2026-11-27 23:10:02,001 GCInspector.java:292 - G1 Old"
    " Generation GC in 1432ms.  G1 Old Gen: 509637376 -> 217501696;"
)
OTHER = (
    "INFO  [CompactionExecutor:1] 2026-11-27 23:09:30,000 CompactionTask.java:253 - Compacted"
    " 4 sstables in 215ms."
)


def test_pause_lines_are_parsed_and_other_lines_ignored() -> None:
    pauses = list(cassandra_gc.parse_pauses([YOUNG, OTHER, OLD]))
    assert [(p.collector, p.ms) for p in pauses] == [
        ("G1 Young Generation", 215),
        ("G1 Old Generation", 1432),
    ]
    assert pauses[0].at == datetime(2026, 11, 27, 23, 9, 17)


def test_rolled_logs_are_read_oldest_first_and_the_window_is_applied(tmp_path: Path) -> None:
    early = YOUNG.replace("23:09:17", "22:00:00")
    with zipfile.ZipFile(tmp_path / "system.log.1.zip", "w") as archive:
        archive.writestr("system.log.1", early + "\n" + YOUNG + "\n")
    (tmp_path / "system.log").write_text(OTHER + "\n" + OLD + "\n")
    start = datetime(2026, 11, 27, 23, 9, 0, 500_000)
    pauses = cassandra_gc.pauses_between(tmp_path, start, datetime(2026, 11, 27, 23, 30))
    assert [p.ms for p in pauses] == [215, 1432]
    report = cassandra_gc.summary(pauses, start)
    assert report["pauses_logged"] == 2
    assert report["total_ms"] == 1647
    assert report["longest_ms"] == 1432
    assert report["pauses_per_minute"] == {"0": 1, "1": 1}


def test_a_node_without_a_log_reports_no_pauses(tmp_path: Path) -> None:
    report = cassandra_gc.summary(
        cassandra_gc.pauses_between(tmp_path, datetime(2026, 1, 1), datetime(2026, 1, 2)),
        datetime(2026, 1, 1),
    )
    assert report["pauses_logged"] == 0
    assert report["longest_ms"] == 0
