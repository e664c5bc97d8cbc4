"""Entry point: `reelstream-origin` (or `python -m origin`)."""

from __future__ import annotations

from origin.config import load
from origin.service import OriginService
from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, membership_of, run, serve


def main() -> None:
    config = load()
    configure_logging("origin", config.log_level)
    membership = membership_of(
        "origin",
        f"origin@{config.advertise_grpc_address or config.grpc_address}",
        config,
        config.grpc_address,
        config.metrics_port,
    )
    shell = ShellConfig(
        service_name="origin",
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="origin",
        membership=membership,
    )

    async def amain() -> None:
        await serve(shell, lambda: OriginService(config))

    run(amain)


if __name__ == "__main__":
    main()
