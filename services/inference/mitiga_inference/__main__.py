"""Entrypoint: ``python -m mitiga_inference`` (or ``mitiga-inference``)."""

from __future__ import annotations


def main() -> None:
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    import uvicorn

    from mitiga_core.adapters import build_bus, build_model_store, build_state
    from mitiga_core.logging import configure_logging
    from mitiga_inference.app import create_app
    from mitiga_inference.settings import InferenceSettings

    settings = InferenceSettings()
    configure_logging(settings.service_name, settings.log_level)
    state = build_state(settings)
    app = create_app(settings, bus=build_bus(settings), store=build_model_store(settings, state), state=state)
    # uvicorn stops accepting on SIGTERM, lets in-flight requests finish, then runs the lifespan shutdown
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=settings.access_log,
                timeout_graceful_shutdown=int(settings.shutdown_grace_s),
                limit_concurrency=settings.max_concurrent_requests)


if __name__ == "__main__":
    main()
