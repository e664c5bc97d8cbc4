"""Entry point: `reelstream-origin` (or `python -m origin`)."""

from __future__ import annotations

from origin.config import load
from origin.service import OriginService
from reelstream.logs import configure_logging
from reelstream.service_shell import ShellConfig, run, serve


def main() -> None:
    config = load()
    configure_logging("origin", config.log_level)
    shell = ShellConfig(
        service_name="origin",
        grpc_address=config.grpc_address,
        metrics_port=config.metrics_port,
        identity="origin",
    )

    async def amain() -> None:
        await serve(shell, lambda: OriginService(config))

    run(amain)


if __name__ == "__main__":
    main()
