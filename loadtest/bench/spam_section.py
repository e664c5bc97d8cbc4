"""`python -m loadtest.bench.spam_section` (after `make eval-spam` in `make bench`): the
spam filter's evaluation, `results/eval-spam.json`, as the generated `eval-spam` section of
docs/benchmarks.md, beside the other benchmarks (docs/spam.md explains the method)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from loadtest.bench.doc_sections import replace_section
from loadtest.bench.settings import REPO_ROOT

RESULTS_JSON = REPO_ROOT / "results" / "eval-spam.json"
SECTION = "eval-spam"


def markdown(result: Mapping[str, object]) -> str:
    families, seeds = result["per_family"], result["seeds"]
    assert isinstance(families, dict)
    assert isinstance(seeds, list)
    rows = [
        f"| overall (seeds {', '.join(map(str, seeds))};"
        f" FPR on organic {result['false_positive_rate']}) |"
        f" {result['precision']} | {result['recall']} |"
    ]
    for name, figures in families.items():
        held_out = " (held out)" if figures.get("held_out_family") else ""
        rows.append(f"| {name}{held_out} | {figures['precision']:.4f} | {figures['recall']:.4f} |")
    table = "\n".join(rows)
    return f"""## Spam filter (`make eval-spam`)

Model {result["model_version"]}, evaluated on held-out seeds and one run per attacker
family (method and targets: [spam.md](spam.md)).

| traffic | precision | recall |
|---|---|---|
{table}

Throughput on one core: scoring {result["scoring_events_per_s"]:,} events/s, feature
extraction {result["feature_extraction_events_per_s"]:,} events/s, lockstep detection
{result["lockstep_events_per_s"]:,} events/s.
{_delay(result.get("detection_delay"))}"""


def _delay(delay: object) -> str:
    """The detection-delay replay's figures (absent from results before it existed)."""
    if not isinstance(delay, dict) or not delay:
        return ""

    def line(name: str) -> str:
        figures = delay[name]
        if not figures["events"]:
            return f"{name}: none"
        return (
            f"{name} ({figures['events']:,} events): p50 {figures['p50_s']} s,"
            f" p99 {figures['p99_s']} s, max {figures['max_s']} s"
        )

    cost = delay["judge_round_wall_s"]
    live = (
        f"removed {delay['removed']:,} of {delay['spam_events']:,} spam events (recall"
        f" {delay['recall']}) and {delay['organic_removed']:,} of"
        f" {delay['organic_events']:,} organic ones (FPR {delay['false_positive_rate']}),"
        f" precision {delay['precision']}"
        if "precision" in delay
        else f"removed {delay['organic_removed']:,} organic events"
    )
    lockstep_every = (
        f", lockstep every {delay['lockstep_interval_s']} s"
        if "lockstep_interval_s" in delay
        else ""
    )
    return f"""
Detection delay (seed {delay["seed"]} replayed through the judge's rounds in simulated time,
judge every {delay["judge_interval_s"]} s, settle {delay["settle_s"]} s{lockstep_every}):
{line("model")}; {line("lockstep")}. The rounds {live}. Plus a judge round's own wall time
(one core): p50 {cost.get("p50_s")} s, max {cost.get("max_s")} s.
"""


def main(path: Path = RESULTS_JSON) -> int:
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        print(f"{path.name} is missing: run `make eval-spam`", file=sys.stderr)
        return 1
    replace_section(SECTION, markdown(result))
    print(f"wrote the {SECTION} section of docs/benchmarks.md from {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
