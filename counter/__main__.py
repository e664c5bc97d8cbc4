"""Entry point: `reelstream-counter` (or `python -m counter`)."""

from __future__ import annotations

from counter.config import load
from counter.service import CounterService
from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, run, serve


def main() -> None:
    config = load()
    configure_logging(config.name, config.log_level)
    shell = ShellConfig(
        service_name=config.name,
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="counter",
        # Leaving hands every shard off: commit what waits, final snapshot, release.
        drain_timeout_s=config.handoff_timeout_s + 2,
    )

    async def amain() -> None:
        await serve(shell, lambda: CounterService(config))

    run(amain)


if __name__ == "__main__":
    main()
