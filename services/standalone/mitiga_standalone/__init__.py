"""Standalone mode: the services composed in one process with the embedded adapters (no Kafka, Redis or cluster).

This package is the composition root, not a service: it is the one place allowed to import several services.
"""
