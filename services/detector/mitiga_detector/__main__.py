"""Entrypoint: ``python -m mitiga_detector``."""

from __future__ import annotations


def main() -> None:
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    from pathlib import Path

    import uvicorn

    from mitiga_core.adapters import build_bus, build_model_store, build_state
    from mitiga_core.jobs import JobLauncher, LocalSubprocessLauncher
    from mitiga_core.logging import configure_logging
    from mitiga_detector.app import create_app
    from mitiga_detector.settings import DetectorSettings

    settings = DetectorSettings()
    configure_logging(settings.service_name, settings.log_level)
    state = build_state(settings)
    launcher: JobLauncher | None = None
    if settings.launcher == "local":
        launcher = LocalSubprocessLauncher()
    elif settings.launcher == "kubernetes":
        from mitiga_core.jobs.kubernetes import KubernetesJobLauncher

        launcher = KubernetesJobLauncher(Path(settings.job_template), settings.job_namespace)
    app = create_app(settings, bus=build_bus(settings), store=build_model_store(settings, state), state=state,
                     launcher=launcher, own_process=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
