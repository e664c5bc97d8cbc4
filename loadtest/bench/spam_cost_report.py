"""What `make bench-spam-cost` (spam_cost.py) measured, summed up: per configuration the
phases' rates, CPU per process and tier, the services' counters; the on/off comparison
against issue 5's target; the console table and the generated docs section."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TARGET_ADDED_COST_PCT = 20.0
CONFIGS = ("off", "on")
TIER_COLUMNS = ("edges", "counters", "spam", "redis", "cassandra", "bench-client", "machine",
                "foreign")  # fmt: skip
# Prometheus counters read before and after each measured window (summed over labels and
# processes; the workload has no invalid event, so every rejection is the screen's).
METRICS = (
    "edge_events_accepted_total",
    "edge_events_rejected_total",
    "edge_spam_events_forwarded_total",
    "edge_spam_events_shed_total",
    "counter_batches_applied_total",
    "spam_events_received_total",
    "spam_events_shed_total",
    "spam_events_judged_total",
    "spam_events_removed_total",
    "spam_judgement_seconds_count",
    "spam_judgement_seconds_sum",
)


@dataclass
class Phase:
    """One measured phase of one configuration."""

    config: str
    round: int
    events_per_s: float
    acked_events_per_s: float
    backlog_change: int
    ack_p99_ms: float
    drain_s: float
    cpu_cores: dict[str, float]
    metrics: dict[str, float]
    """Deltas of METRICS over the measured window."""
    exactness: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


def rate_summary(rates: Sequence[float]) -> dict[str, float]:
    """Median, min and max of one configuration's phase rates."""
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "phases": len(rates),
    }


def added_cost(off: Sequence[float], on: Sequence[float]) -> dict[str, Any]:
    """on/off of the medians, the added cost in % (the rate lost), and per round on/off."""
    ratio = statistics.median(on) / statistics.median(off)
    cost = (1.0 - ratio) * 100.0
    return {
        "ratio_on_off": ratio,
        "added_cost_pct": cost,
        "per_round_ratio": [b / a for a, b in zip(off, on, strict=True)],
        "target_pct": TARGET_ADDED_COST_PCT,
        "meets_target": cost <= TARGET_ADDED_COST_PCT,
    }


def mean_by_key(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the mean over the rows that have it."""
    keys = sorted({key for row in rows for key in row})
    return {key: statistics.fmean(row[key] for row in rows if key in row) for key in keys}


def tier_cores(cpu: Mapping[str, float]) -> dict[str, float]:
    """Per-process CPU (cores) grouped by tier: edges, counters, spam, redis, ..."""
    tiers: dict[str, float] = {}
    for name, cores in cpu.items():
        tier = name.split("-")[0] if name.startswith(("edge-", "counter-", "redis-")) else name
        tier = {"edge": "edges", "counter": "counters"}.get(tier, tier)
        tiers[tier] = tiers.get(tier, 0.0) + cores
    return tiers


def unexplained(mismatches: Sequence[Sequence[int]], removed: Mapping[int, int]) -> int:
    """How many (reel, low, high, got) count mismatches the spam filter's removals of that
    reel do not explain (got + removed outside [low, high])."""
    return sum(
        1 for reel, low, high, got in mismatches if not low <= got + removed.get(reel, 0) <= high
    )


def summarize(phases: Sequence[Phase]) -> dict[str, Any]:
    """Per configuration: rates, mean CPU per process and tier, CPU per event, the
    metrics' sums; and the comparison."""
    configs: dict[str, Any] = {}
    by_round = sorted(phases, key=lambda p: p.round)
    for config in CONFIGS:
        mine = [p for p in by_round if p.config == config]
        cpu = mean_by_key([p.cpu_cores for p in mine])
        tiers = tier_cores(cpu)
        acked = statistics.median(p.acked_events_per_s for p in mine)
        configs[config] = {
            "events_per_s": rate_summary([p.events_per_s for p in mine]),
            "acked_events_per_s": rate_summary([p.acked_events_per_s for p in mine]),
            "backlog_change": rate_summary([p.backlog_change for p in mine]),
            "cpu_cores": cpu,
            "tier_cores": tiers,
            "edge_cpu_us_per_acked_event": tiers.get("edges", 0.0) / acked * 1e6 if acked else 0,
            "spam_share_of_machine_cpu": tiers.get("spam", 0.0) / tiers["machine"]
            if tiers.get("machine")
            else 0.0,
            "metrics": {m: sum(p.metrics.get(m, 0.0) for p in mine) for m in METRICS},
            "all_exact": all(p.exactness.get("exact_after_spam_removals") for p in mine),
        }
    off, on = ([p.events_per_s for p in by_round if p.config == c] for c in CONFIGS)
    return {"configs": configs, "comparison": added_cost(off, on)}


def console_table(summary: Mapping[str, Any]) -> str:
    rows = [f"{'config':<6} {'median ev/s':>12} {'min-max':>19} {'acked':>9}  cores by tier"]
    for config, figures in summary["configs"].items():
        rate = figures["events_per_s"]
        tiers = " ".join(f"{k} {v:.2f}" for k, v in figures["tier_cores"].items())
        rows.append(
            f"{config:<6} {rate['median']:>12,.0f} {rate['min']:>9,.0f}-{rate['max']:<9,.0f}"
            f" {figures['acked_events_per_s']['median']:>9,.0f}  {tiers}"
        )
    cmp = summary["comparison"]
    rows.append(
        f"on/off {cmp['ratio_on_off']:.3f}: added cost {cmp['added_cost_pct']:.1f} %"
        f" (target <= {cmp['target_pct']:.0f} %: {'PASS' if cmp['meets_target'] else 'MISS'})"
    )
    return "\n".join(rows)


def markdown(result: Mapping[str, Any]) -> str:
    """The spam-cost section of docs/benchmarks.md."""
    summary, settings = result["summary"], result["settings"]
    configs, cmp = summary["configs"], summary["comparison"]
    machine = result["machine"]
    lines = [
        "## Spam filtering's cost on counting (`make bench-spam-cost`)",
        "",
        "Generated by the command below; rerun it rather than editing this section.",
        "",
        f"```bash\n{result['command']}\n```",
        "",
        f"Run {result['started_at']}, {result['total_run_s'] / 60:.1f} min;"
        f" {settings['rounds']} round(s) x 2 configurations x {settings['seconds']:.0f} s"
        f" closed loop, each phase a fresh stack. Machine: {machine['nproc']} cores"
        f" ({machine['cpu_model']}), commit {machine['git_commit']} (uncommitted changes:"
        f" {machine['git_dirty']}), load average at start {machine['load_average_at_start']}.",
        "off: no screen, no spam address. on: the edges' inline screen (default limits) and"
        " forwarding of accepted events to a spam service process judging them (shipped"
        " model, default settings). Events/s are end to end (acknowledged minus the growth"
        " of the journals' backlog); counts were checked after every phase.",
        "",
        "| config | median events/s | min - max | per phase (run order) | acknowledged"
        " events/s (median) | journals' growth per phase (median) | edge CPU us per"
        " acknowledged event |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for config, figures in configs.items():
        rate = figures["events_per_s"]
        per_phase = ", ".join(
            f"{p['events_per_s']:,.0f}" for p in result["phases"] if p["config"] == config
        )
        lines.append(
            f"| {config} | **{rate['median']:,.0f}** | {rate['min']:,.0f} - {rate['max']:,.0f}"
            f" | {per_phase} | {figures['acked_events_per_s']['median']:,.0f}"
            f" | {figures['backlog_change']['median']:+,.0f} events"
            f" | {figures['edge_cpu_us_per_acked_event']:.1f} |"
        )
    verdict = "PASS" if cmp["meets_target"] else "**MISS**"
    ratios = ", ".join(f"{r:.3f}" for r in cmp["per_round_ratio"])
    lines += [
        "",
        f"on/off = **{cmp['ratio_on_off']:.3f}**: added cost **{cmp['added_cost_pct']:.1f} %**"
        f" of the end-to-end rate (target <= {cmp['target_pct']:.0f} %: {verdict});"
        f" per round on/off: {ratios}. Journals that grow mean the edges acknowledged faster"
        " than the shards applied: the shards set that configuration's rate; the less they"
        " grow, the more the edges set it.",
        "",
        "Mean CPU (cores) over the measured windows; every tier shares the same"
        f" {machine['nproc']} cores here, the spam service included, which in production"
        " runs at the origin tier on other machines (in the on phases it used"
        f" {configs['on']['spam_share_of_machine_cpu']:.0%} of the machine's busy CPU):",
        "",
        "| config | " + " | ".join(TIER_COLUMNS) + " |",
        "|---|" + "---:|" * len(TIER_COLUMNS),
    ]
    for config, figures in configs.items():
        tiers = figures["tier_cores"]
        lines.append(
            f"| {config} | " + " | ".join(f"{tiers.get(t, 0.0):.2f}" for t in TIER_COLUMNS) + " |"
        )
    on = configs["on"]["metrics"]
    judged = on["spam_judgement_seconds_count"]
    lines += [
        "",
        "Inside the on phases (edges' and spam service's Prometheus counters, summed over the"
        " measured windows): "
        f"{on['edge_events_accepted_total']:,.0f} events accepted by the screen,"
        f" {on['edge_events_rejected_total']:,.0f} rejected;"
        f" {on['edge_spam_events_forwarded_total']:,.0f} forwarded,"
        f" {on['edge_spam_events_shed_total']:,.0f} shed by the edges;"
        f" the spam service received {on['spam_events_received_total']:,.0f}, shed"
        f" {on['spam_events_shed_total']:,.0f}, judged {on['spam_events_judged_total']:,.0f}"
        f" for the first time, removed {on['spam_events_removed_total']:,.0f}, and completed"
        f" {judged:.0f} judgements of its history"
        + (
            f" ({on['spam_judgement_seconds_sum'] / judged:.1f} s each on average)"
            if judged
            else ""
        )
        + ".",
        "",
        f"Workload: workload.py's generator with {settings['users']:,} users (one view every"
        f" ~{result['pacing']['mean_user_seconds_between_events']:.0f} s each at the highest"
        f" acknowledged rate), {settings['users_per_ip']} users per IP hash; the busiest user sent"
        f" {result['pacing']['busiest_user_events_in_phase']:.0f} events in a phase where"
        f" its bucket allows {result['pacing']['bucket_allows_in_phase']:.0f}"
        " (spam_cost.py says why).",
    ]
    return "\n".join(lines)
