"""Entry point: `reelstream-spam` (or `python -m spam`)."""

from __future__ import annotations

from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, membership_of, run, serve
from spam.config import load
from spam.service import SpamService


def main() -> None:
    config = load()
    configure_logging("spam", config.log_level)
    membership = membership_of(
        "spam",
        f"spam@{config.advertise_grpc_address or config.grpc_address}",
        config,
        config.grpc_address,
        config.metrics_port,
    )
    shell = ShellConfig(
        service_name="spam",
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="spam",
        membership=membership,
    )

    async def amain() -> None:
        await serve(shell, lambda: SpamService(config))

    run(amain)


if __name__ == "__main__":
    main()
