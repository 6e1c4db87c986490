"""Errors raised by mitiga, each carrying the HTTP status a transport should answer with.

The hierarchy, drawn once::

    MitigaError (500)
     ├── InvalidInput (400)        a request tensor or field is wrong: shape, datatype, count, NaN/inf
     ├── Unauthorized (401)        an admin call without a bearer token
     ├── Forbidden (403)           an admin call with a wrong token, or admin calls disabled
     ├── ModelNotFound (404)       no such model or version
 ├── Conflict (409)            a request id already used for this model
     ├── PayloadTooLarge (413)     the body is over the configured limit
     ├── BundleError (422)         a model file or bundle cannot be loaded or is inconsistent
     ├── EventDecodeError (422)    a bus message cannot be decoded (it goes to the dead-letter topic)
 ├── Overloaded (429)          the model's queue is full: retry after ``retry_after_s``
     ├── ModelNotReady (503)       the model exists but is not loaded yet
     └── Unavailable (503)         a dependency (Redis, Kafka) is unreachable after retries; try again

Transports map ``status_code`` to their own status and put ``str(error)`` in the body.
"""

from __future__ import annotations


class MitigaError(Exception):
    """Base of all mitiga errors."""

    status_code: int = 500


class InvalidInput(MitigaError):
    status_code = 400


class Unauthorized(MitigaError):
    status_code = 401


class Forbidden(MitigaError):
    status_code = 403


class ModelNotFound(MitigaError):
    status_code = 404


class Conflict(MitigaError):
    status_code = 409


class PayloadTooLarge(MitigaError):
    status_code = 413


class BundleError(MitigaError):
    status_code = 422


class EventDecodeError(MitigaError):
    status_code = 422


class Overloaded(MitigaError):
    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelNotReady(MitigaError):
    status_code = 503


class Unavailable(MitigaError):
    status_code = 503
