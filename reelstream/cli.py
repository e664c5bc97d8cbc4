"""`reelstream`: the operator CLI behind the Makefile targets.

reelstream up [--edges N] [--shards M]   start the local stack, wait for SERVING, then start
                                         its autoscaler (--no-autoscale: a fixed-size stack)
reelstream down                          stop everything `up` started, the autoscaler first
reelstream scale --edges N --shards M    resize the running stack (shards handed off); the
                                         sizes become the autoscaler's floors
reelstream drain NODE                    drain one node (edge-1, counter-2) and stop it
reelstream status                        services, autoscaler, health, shard owners, Cassandra
reelstream logs [-n LINES] [NAME]        tail the services' logs (NAME=autoscaler too)
reelstream autoscale [--dry-run] [...]   run an autoscaler by hand (autoscale --help)
reelstream token --user ID [...]         mint a signed user token (token --help)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reelstream import stack, stack_status
from reelstream.scaling_bounds import EDGE_CPU_TARGET, read_bounds


def _up(args: argparse.Namespace) -> int:
    autoscaler = (
        None
        if args.no_autoscale
        else stack.AutoscalerSettings(
            max_edges=args.max_edges,
            max_counters=args.max_counters,
            interval_s=args.autoscale_interval,
            scale_down_window_s=args.scale_down_window,
            edge_cpu_target=args.autoscale_edge_cpu,
        )
    )
    specs = stack.up(
        edges=args.edges,
        shards=args.shards,
        timeout_s=args.timeout,
        autoscaler=autoscaler,
        shared_cassandra=args.shared_cassandra,
    )
    print("\nReelstream is up:")
    for spec in specs:
        print(
            f"  {spec.name:<10} grpc {spec.address:<18} metrics http://127.0.0.1:"
            f"{spec.metrics_port}/metrics"
        )
    print("  cassandra  cql 127.0.0.1:9042")
    bounds = read_bounds()
    if autoscaler is None or bounds is None:
        print("  autoscaler off (fixed size)")
    else:
        print(
            f"  autoscaler {bounds.describe()}, a round every {autoscaler.interval_s:g} s "
            f"(log: {stack.autoscaler_spec().log_file})"
        )
    return 0


def _down(args: argparse.Namespace) -> int:
    stack.down(grace_s=args.grace, shared_cassandra=args.shared_cassandra)
    return 0


def _scale(args: argparse.Namespace) -> int:
    stack.scale(
        edges=args.edges,
        shards=args.shards,
        timeout_s=args.timeout,
        max_edges=args.max_edges,
        max_counters=args.max_counters,
    )
    print("\n".join(stack.shard_map_lines()))
    return 0


def _drain(args: argparse.Namespace) -> int:
    stack.drain(args.node)
    return 0


def _status(args: argparse.Namespace) -> int:
    print("\n".join(stack_status.status_lines()))
    return 0


def _logs(args: argparse.Namespace) -> int:
    for path in stack.log_files():
        if args.name and args.name not in path.stem:
            continue
        print(f"==> {path} <==")
        from reelstream.infra.local_process import tail

        print("\n".join(tail(path, args.lines)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["autoscale"]:
        # The autoscaler owns its options (reelstream/autoscaler.py); it is imported lazily.
        from reelstream import autoscaler

        return autoscaler.main(arguments[1:])
    if arguments[:1] == ["token"]:
        from reelstream import token_cli

        return token_cli.main(arguments[1:])
    parser = argparse.ArgumentParser(
        prog="reelstream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local stack")
    up.add_argument("--edges", type=int, default=2)
    up.add_argument("--shards", type=int, default=2)
    up.add_argument("--timeout", type=float, default=300.0)
    up.add_argument(
        "--no-autoscale",
        action="store_true",
        help="a fixed-size stack: start no autoscaler (and stop one a previous `up` started)",
    )
    up.add_argument(
        "--max-edges", type=int, help="the autoscaler's most edges (default: 2x --edges, <= 10)"
    )
    up.add_argument(
        "--max-counters",
        type=int,
        help="let the autoscaler resize counter processes up to N (default: pinned at --shards)",
    )
    up.add_argument("--autoscale-interval", type=float, default=15.0, help="seconds per round")
    up.add_argument(
        "--autoscale-edge-cpu",
        type=float,
        default=EDGE_CPU_TARGET,
        help="CPU cores per edge the autoscaler sizes on (lower where edges share few cores)",
    )
    up.add_argument(
        "--shared-cassandra",
        action="store_true",
        help="use the Cassandra already answering on 127.0.0.1:9042 (the test suite's), start none",
    )
    up.add_argument(
        "--scale-down-window", type=float, default=300.0, help="scale-down stabilisation (s)"
    )
    up.set_defaults(handler=_up)
    down = commands.add_parser("down", help="stop the local stack")
    down.add_argument("--grace", type=float, default=15.0)
    down.add_argument(
        "--shared-cassandra",
        action="store_true",
        help="leave the Cassandra node running (one `up --shared-cassandra` did not start)",
    )
    down.set_defaults(handler=_down)
    scale = commands.add_parser("scale", help="resize the running stack")
    scale.add_argument("--edges", type=int, required=True)
    scale.add_argument("--shards", type=int, required=True)
    scale.add_argument("--timeout", type=float, default=120.0)
    scale.add_argument("--max-edges", type=int, help="new ceiling for the autoscaler's edges")
    scale.add_argument(
        "--max-counters", type=int, help="new ceiling for the autoscaler's counter processes"
    )
    scale.set_defaults(handler=_scale)
    drain = commands.add_parser("drain", help="drain one node and stop it")
    drain.add_argument("node")
    drain.set_defaults(handler=_drain)
    commands.add_parser("status", help="show services and health").set_defaults(handler=_status)
    logs = commands.add_parser("logs", help="tail service logs")
    logs.add_argument("-n", "--lines", type=int, default=30)
    logs.add_argument("name", nargs="?", default="")
    logs.set_defaults(handler=_logs)
    commands.add_parser("autoscale", help="run the autoscaler (reelstream autoscale --help)")
    commands.add_parser("token", help="mint a signed user token (reelstream token --help)")
    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args))
    except RuntimeError as exc:
        print(f"reelstream: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
