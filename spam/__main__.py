"""Entry point: `reelstream-spam` (or `python -m spam`)."""

from __future__ import annotations

from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, run, serve
from spam.config import load
from spam.service import SpamService


def main() -> None:
    config = load()
    configure_logging("spam", config.log_level)
    shell = ShellConfig(
        service_name="spam",
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="spam",
    )

    async def amain() -> None:
        await serve(shell, lambda: SpamService(config))

    run(amain)


if __name__ == "__main__":
    main()
