"""Entry point: `reelstream-edge` (or `python -m edge`)."""

from __future__ import annotations

from edge.config import load
from edge.service import EdgeService
from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, run, serve


def main() -> None:
    config = load()
    configure_logging(config.name, config.log_level)
    shell = ShellConfig(
        service_name=config.name,
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="edge",
    )

    async def amain() -> None:
        await serve(shell, lambda: EdgeService(config))

    run(amain)


if __name__ == "__main__":
    main()
