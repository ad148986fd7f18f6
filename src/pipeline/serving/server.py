"""Run the API with uvicorn: what ``mlpath serve``, ``make serve`` and the container all start."""

from __future__ import annotations

from pipeline.serving.config import ServingConfig


def serve(**overrides) -> int:
    """Serve until interrupted; ``overrides`` (None = not given) beat ``MLPATH_SERVE_*`` variables."""
    import uvicorn

    from pipeline.serving.app import create_app
    from pipeline.settings import configure_environment

    configure_environment()
    config = ServingConfig.from_env(**overrides)
    print(f"mlpath serve: http://{config.host}:{config.port} (model {config.model}, "
          f"{'micro-batching' if config.batching else 'no batching'}{', int8' if config.int8 else ''}); docs at /docs",
          flush=True)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info", access_log=False)
    return 0
