"""Entry point: `reelstream-edge` (or `python -m edge`)."""

from __future__ import annotations

from edge.config import load
from edge.service import EdgeService
from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, membership_of, run, serve


def main() -> None:
    config = load()
    configure_logging(config.name, config.log_level)
    membership = membership_of(
        "edge",
        config.name,
        config,
        config.grpc_address,
        config.metrics_port,
        http_address=config.http_address,
    )
    shell = ShellConfig(
        service_name=config.name,
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="edge",
        membership=membership,
    )

    async def amain() -> None:
        await serve(
            shell,
            lambda: EdgeService(config, membership.registry if membership else None),
        )

    run(amain)


if __name__ == "__main__":
    main()
