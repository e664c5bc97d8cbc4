"""The operator's view of the local stack (`make status`): services and their health, the
autoscaler's row, which counter process serves each logical shard, the registry, Cassandra
and Redis. Reads only; `reelstream/stack.py` starts and stops things."""

from __future__ import annotations

from reelstream.autoscaler import last_decisions
from reelstream.cassandra_client import CassandraConfigFields
from reelstream.infra import cassandra_node, local_process, redis_server
from reelstream.registry_status import registry_lines
from reelstream.scaling_bounds import read_bounds
from reelstream.stack import autoscaler_spec, health, running_specs, shard_map_lines


def status_lines() -> list[str]:
    lines = [f"{'service':<12}{'address':<18}{'pid':<9}health"]
    for spec in running_specs():
        pid = local_process.read_live_pid(spec.pid_file, spec.marker)
        state = health(spec.address) if pid else "NOT RUNNING"
        lines.append(f"{spec.name:<12}{spec.address:<18}{pid or '-'!s:<9}{state}")
    lines.extend(autoscaler_lines())
    lines.extend(shard_map_lines())
    lines.extend(registry_lines(CassandraConfigFields(), health))
    lines.extend(cassandra_node.status())
    lines.extend(redis_server.status_all())
    return lines


def autoscaler_lines() -> list[str]:
    """The autoscaler's row of the status table, its bounds and its last decision per tier."""
    spec = autoscaler_spec()
    pid = local_process.read_live_pid(spec.pid_file, spec.marker)
    bounds = read_bounds()
    if pid is None and bounds is None:
        return [f"{'autoscaler':<12}{'-':<18}{'-':<9}off (`make up` without AUTOSCALE=0 runs it)"]
    state = "RUNNING" if pid else "EXITED (make logs SERVICE=autoscaler)"
    lines = [f"{'autoscaler':<12}{'-':<18}{pid or '-'!s:<9}{state}"]
    if bounds is not None:
        lines.append(f"  bounds: {bounds.describe()}")
    for tier, fields in last_decisions(spec.log_file).items():
        lines.append(
            f"  last {tier} decision {fields.get('ts', '')}: {fields.get('action')} "
            f"{fields.get('current')} -> {fields.get('desired')} ({fields.get('reason', '')})"
        )
    return lines
