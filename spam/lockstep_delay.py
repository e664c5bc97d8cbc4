"""`python -m spam.lockstep_delay`: lockstep's own detection delay over a cold start, per
rule variant, without the model (how `LockstepParams`' crowd rules were chosen).

Lockstep runs every `step_s` over the hour before (the service's history), from an empty
history, on a simulated run; an event's delay is the first run that flags it, once it
settled (`settle_s` after its arrival), minus its arrival. Lockstep's flags do not depend
on the model, so this is the lockstep part of `make eval-spam`'s replay at a coarser step
(60 s by default, against the service's 10 s) and a fraction of its cost: about 100 s a
variant for a 2 h run on one core, so run it under the machine lock. Reported per variant:
the flags' delay p50/p99 over the whole run, the steady state (arrived after the first
hour) and the farm families (LOCKSTEP, LIKE_FARM), the organic events flagged, per family
the events flagged and those flagged after 5 minutes, and per reach-back bound
(`SpamConfig.lockstep_reach_back_s`: a flag more than that after its event is never made,
the others are the same) the spam flags' delays and the spam flags lost. Variants: pairs
only; address crowds of 6, 8, 10 users counting any shared address; and of 6, 8 users
counting an address only where most of its users in the bucket are in the cell (`_own`,
`ip_crowd_min_address_share` 0.5: the default until the address focus); the defaults
without and with the history's crowds (`address_focus_known`, `_history`); and with
address pools (`address_pools`, the defaults: addresses with 3 users in common, Jaccard
0.5, are one).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from loadtest.spam_traffic import Family, LabelledTraffic, TrafficSpec
from spam.lockstep import LockstepParams, detect_lockstep
from spam.training import TRAINING_FAMILIES, counted_traffic, training_spec

I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NEVER = -1
# The address rules as they were before the known crowds, the address focus, the
# history's crowds (commit 15827dd and earlier) and the address pools.
EARLIER_ADDRESS_RULES: dict[str, object] = {
    "ip_crowd_min_address_focus": 0.0,
    "ip_crowd_history_min_users": 0,
    "ip_crowd_known_addresses": False,
    "ip_pool_min_users": 0,
}
VARIANTS: dict[str, LockstepParams] = {
    "pairs_only": replace(LockstepParams(), ip_crowd_min_users=0),
    **{
        f"address_crowd_{users}": replace(
            LockstepParams(),
            ip_crowd_min_users=users,
            ip_crowd_min_address_share=0.0,
            **EARLIER_ADDRESS_RULES,  # type: ignore[arg-type]
        )
        for users in (6, 8, 10)
    },
    # An address counts only where most of its users active in the bucket are in the cell.
    **{
        f"address_crowd_{users}_own": replace(
            LockstepParams(),
            ip_crowd_min_users=users,
            ip_crowd_min_address_share=0.5,
            **EARLIER_ADDRESS_RULES,  # type: ignore[arg-type]
        )
        for users in (6, 8)
    },
    # An address counts where most of what its users do in the bucket is in shared cells;
    # crowds found are known; the history's crowds of 3 users (the defaults of session 11).
    "address_focus_known": replace(
        LockstepParams(), ip_crowd_history_min_users=0, ip_pool_min_users=0
    ),
    "address_focus_known_history": replace(LockstepParams(), ip_pool_min_users=0),
    # Addresses used by the same accounts (3 in common, Jaccard 0.5) count as one (the
    # default since session 12).
    "address_pools": LockstepParams(),
}
REACH_BACK_S = (300, 450, 600, 900)


def first_flags(
    traffic: LabelledTraffic,
    variants: dict[str, LockstepParams],
    step_s: int = 60,
    history_s: int = 3_600,
    settle_s: int = 30,
) -> dict[str, I64]:
    """Per variant, per event (sorted by time): the time of the first run that flagged it
    after it settled (NEVER: none)."""
    events = traffic.events
    ts = events.ts_ms
    first = {name: np.full(len(ts), NEVER, dtype=np.int64) for name in variants}
    if not len(ts):
        return first
    step_ms, history_ms, settle_ms = step_s * 1000, history_s * 1000, settle_s * 1000
    now = int(ts[0]) + step_ms
    end = int(ts[-1]) + settle_ms + step_ms
    with threadpool_limits(1):
        while now <= end:
            lo = int(np.searchsorted(ts, now - history_ms, side="right"))
            hi = int(np.searchsorted(ts, now, side="left"))
            window = np.arange(lo, hi)
            settled = ts[window] <= now - settle_ms
            for name, params in variants.items():
                result = detect_lockstep(
                    events.user_ids[window],
                    events.reel_ids[window],
                    ts[window],
                    params,
                    events.ip_hashes[window],
                )
                hit = window[result.flagged & settled]
                fresh = hit[first[name][hit] == NEVER]
                first[name][fresh] = now
            now += step_ms
    return first


def _delays(delays_s: npt.NDArray[np.float64]) -> dict[str, Any]:
    if not len(delays_s):
        return {"events": 0, "p50_s": None, "p99_s": None}
    p50, p99 = np.quantile(delays_s, [0.5, 0.99], method="higher")
    return {"events": len(delays_s), "p50_s": round(float(p50), 1), "p99_s": round(float(p99), 1)}


def figures(traffic: LabelledTraffic, flagged_at_ms: I64, history_s: int = 3_600) -> dict[str, Any]:
    """Delays of the flags of one variant: whole run, steady state, farms; organic flagged,
    per family flagged and flagged after 5 minutes."""
    ts = traffic.events.ts_ms
    family = traffic.family
    flagged = flagged_at_ms != NEVER
    delay_s = (flagged_at_ms - ts) / 1000.0
    steady = ts >= int(ts[0]) + history_s * 1000 if len(ts) else flagged
    farms = (family == Family.LOCKSTEP) | (family == Family.LIKE_FARM)
    spam = family != Family.ORGANIC
    return {
        "whole_run": _delays(delay_s[flagged]),
        "steady_state": _delays(delay_s[flagged & steady]),
        "farms_whole_run": _delays(delay_s[flagged & farms]),
        "farms_steady_state": _delays(delay_s[flagged & farms & steady]),
        "organic_flagged": int((flagged & ~spam).sum()),
        # Flags limited to events at most that old (SpamConfig.lockstep_reach_back_s):
        # later flags are never made, the rest are the same.
        "reach_back": {
            f"{bound}_s": {
                **_delays(delay_s[flagged & spam & (delay_s <= bound)]),
                "spam_not_flagged": int((flagged & spam & (delay_s > bound)).sum()),
            }
            for bound in REACH_BACK_S
        },
        "per_family": {
            Family(int(value)).name.lower(): {
                "flagged": int((flagged & (family == value)).sum()),
                "after_300_s": int((flagged & (family == value) & (delay_s > 300.0)).sum()),
            }
            for value in np.unique(family[spam]).tolist()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=13, help="13: the validation period")
    parser.add_argument("--step-s", type=int, default=60)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    spec = (
        training_spec(args.seed, TRAINING_FAMILIES)
        if args.seed == 13
        else TrafficSpec(seed=args.seed)
    )
    traffic = counted_traffic(spec)
    variants = {name: VARIANTS[name] for name in args.variants.split(",")}
    first = first_flags(traffic, variants, args.step_s)
    report = {name: figures(traffic, flags) for name, flags in first.items()}
    print(json.dumps({"seed": args.seed, "step_s": args.step_s, **report}, indent=1))


if __name__ == "__main__":
    main()
