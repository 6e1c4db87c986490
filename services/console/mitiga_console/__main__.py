"""Entrypoint: ``python -m mitiga_console``."""

from __future__ import annotations


def main() -> None:
    import uvicorn

    from mitiga_console.app import create_app
    from mitiga_console.settings import ConsoleSettings
    from mitiga_core.adapters import build_model_store
    from mitiga_core.logging import configure_logging

    settings = ConsoleSettings()
    configure_logging(settings.service_name, settings.log_level)
    app = create_app(settings, store=build_model_store(settings))
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
