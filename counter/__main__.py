"""Entry point: `reelstream-counter` (or `python -m counter`)."""

from __future__ import annotations

from counter.config import load
from counter.service import CounterService
from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, run, serve


def main() -> None:
    config = load()
    configure_logging(f"counter-{config.shard}", config.log_level)
    shell = ShellConfig(
        service_name=f"counter-{config.shard}",
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="counter",
    )

    async def amain() -> None:
        await serve(shell, lambda: CounterService(config))

    run(amain)


if __name__ == "__main__":
    main()
