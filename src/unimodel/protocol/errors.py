"""The error tree. Every failure a client can see is one of these values.

    UnimodelError                     status  code
     ├── InvalidRequest                 400    invalid_request      (malformed body, wrong type, empty messages …)
     │    └── UnsupportedParameter      400    unsupported_parameter (a provider cannot take a parameter)
     ├── AuthenticationError            401    unauthorized / missing_provider_key
     ├── PaymentRequired                402    payment_required      (the provider account is out of credit)
 ├── PermissionDenied               403    permission_denied
     ├── ModelNotFound                  404    model_not_found
     ├── NotFound                       404    not_found
     ├── PayloadTooLarge                413    payload_too_large
     ├── RateLimited                    429    rate_limited          (carries retry_after)
     └── UpstreamError               4xx/5xx  upstream_error       (a provider answered an error; keeps its status)
          ├── UpstreamUnavailable       502/503 upstream_unavailable (refused connection, overloaded)
          ├── UpstreamTimeout           504    upstream_timeout
          └── UpstreamProtocolError     502    upstream_bad_response (an answer we could not read)

Lower-library errors (httpx, pydantic) are converted into these at one boundary each, never further up.
"""

from __future__ import annotations


class UnimodelError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a message a person can act on."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        provider_body: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.param = param
        self.retry_after = retry_after
        self.provider = provider
        self.provider_body = provider_body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class InvalidRequest(UnimodelError):
    status = 400
    code = "invalid_request"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"

    def __init__(self, param: str, provider: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"Parameter '{param}' is not supported by provider '{provider}'{detail}. Remove it or choose another model.",
            param=param,
            provider=provider,
        )


class AuthenticationError(UnimodelError):
    status = 401
    code = "unauthorized"


class PaymentRequired(UnimodelError):
    status = 402
    code = "payment_required"


class PermissionDenied(UnimodelError):
    status = 403
    code = "permission_denied"


class NotFound(UnimodelError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"
    CATALOG_MESSAGE = "Model does not exist or has yet to be added to the catalog."

    def __init__(self, model_id: str) -> None:
        super().__init__(self.CATALOG_MESSAGE, param="model")
        self.model_id = model_id


class PayloadTooLarge(UnimodelError):
    status = 413
    code = "payload_too_large"


class RateLimited(UnimodelError):
    status = 429
    code = "rate_limited"


class UpstreamError(UnimodelError):
    """A provider answered with an error; the status is the provider's own (a 529 becomes 503)."""

    status = 502
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    status = 502
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    status = 502
    code = "upstream_bad_response"
