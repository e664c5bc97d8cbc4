"""Entry point: `reelstream-moderation` (or `python -m moderation`)."""

from __future__ import annotations

from moderation.config import load
from moderation.service import ModerationService
from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, membership_of, run, serve


def main() -> None:
    config = load()
    configure_logging("moderation", config.log_level)
    membership = membership_of(
        "moderation",
        f"moderation@{config.advertise_grpc_address or config.grpc_address}",
        config,
        config.grpc_address,
        config.metrics_port,
    )
    shell = ShellConfig(
        service_name="moderation",
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="moderation",
        membership=membership,
    )

    async def amain() -> None:
        await serve(shell, lambda: ModerationService(config))

    run(amain)


if __name__ == "__main__":
    main()
