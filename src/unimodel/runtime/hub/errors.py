"""What can go wrong getting a model from the Hub, as values of the error tree (protocol/errors.py).

    status  code                  when
     400    invalid_model_id      not a Hub repo id (`org/name` or `name`)
     400    invalid_revision      not a branch, tag or commit name
     400    unsupported_model     a library, task or weight format no engine runs, or remote code needed
     403    model_not_allowed     the id matches no pattern of `[hub] allow`
     403    model_too_large       the files chosen are larger than `[hub] max_download_gb`
     403    gated_model           a gated repo, and no token (or one not granted access)
     404    model_not_found       no such repo on the Hub (or a private one the token cannot read)
     404    revision_not_found    no such branch, tag or commit
     404    file_not_found        `file` names no file of the repo
     409    pull_in_progress      removing a model that is being pulled
     429    rate_limited          the Hub rate-limits this server
     502    hub_token_invalid     the Hub refused the configured token
     502    upstream_unavailable  the Hub cannot be reached, or answered 5xx (503 when it said 503)
     503    hub_offline           offline (`[hub] offline`, HF_HUB_OFFLINE) and the model is not local
     503    hub_client_missing    huggingface_hub is not installed
     504    upstream_timeout      the Hub did not answer in time
     507    insufficient_storage  not enough free disk for the files
     500    pull_failed           the cache folder could not be written

`hub_error` converts huggingface_hub's and httpx's exceptions into these, at one boundary; messages never hold
the token (`scrub` removes it from any text taken from elsewhere).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ...protocol.errors import (
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    UnimodelError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

if TYPE_CHECKING:
    from .settings import HubSettings


class InsufficientStorage(UnimodelError):
    status = 507
    code = "insufficient_storage"


def unsupported_model(repo_id: str, why: str, supported: str) -> InvalidRequest:
    return InvalidRequest(f"'{repo_id}' cannot run here: {why}. {supported}", code="unsupported_model", param="model")


def not_found(repo_id: str, settings: HubSettings) -> NotFound:
    hint = (
        f" If it is private, the token from {settings.token_source} cannot read it."
        if settings.has_token
        else " If it is private, set [hub] token (or HF_TOKEN) to a token that can read it."
    )
    return NotFound(
        f"Model '{repo_id}' was not found on the Hub at {settings.endpoint}.{hint}",
        code="model_not_found",
        param="model",
    )


def gated(repo_id: str, settings: HubSettings) -> PermissionDenied:
    page = f"{settings.endpoint}/{repo_id}"
    if settings.has_token:
        message = (
            f"'{repo_id}' is gated and the token from {settings.token_source} has not been granted access: "
            f"accept its conditions at {page} with that token's account, then retry."
        )
    else:
        message = (
            f"'{repo_id}' is gated: accept its conditions at {page}, then set [hub] token (or HF_TOKEN) to a token "
            "of that account."
        )
    return PermissionDenied(message, code="gated_model", param="model")


def offline(repo_id: str, settings: HubSettings) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"'{repo_id}' is not on this machine and the Hub is off ({settings.offline_source}); pull it while online "
        "(`unimodel pull`), or turn that setting off.",
        status=503,
        code="hub_offline",
    )


def client_missing() -> UpstreamUnavailable:
    return UpstreamUnavailable(
        "Pulling models from the Hub needs huggingface_hub, which is not installed: pip install 'unimodel[open]'.",
        status=503,
        code="hub_client_missing",
    )


def scrub(text: str, settings: HubSettings) -> str:
    """`text` without the token in it (for text that came from elsewhere: a library's message, a server's)."""
    secret = settings.token_value()
    return text.replace(secret, "***") if secret else text


def hub_error(
    exc: BaseException,
    repo_id: str,
    settings: HubSettings,
    *,
    file: str | None = None,
    revision: str | None = None,
) -> UnimodelError:
    """The error a client sees for an exception raised while asking the Hub about `repo_id` (at `revision`) or
    downloading it. The revision is named: it may come from the server's config, which the caller never sees."""
    if isinstance(exc, UnimodelError):
        return exc
    from huggingface_hub import errors as hf

    where = settings.endpoint
    if isinstance(exc, hf.RevisionNotFoundError):
        which = f"no revision '{revision}'" if revision else "no revision by that name"
        return NotFound(
            f"'{repo_id}' has {which} on the Hub at {where}: name a branch, tag or commit it has.",
            code="revision_not_found",
            param="revision",
        )
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return NotFound(
            f"'{repo_id}' has no file '{file}' at the commit being pulled.", code="file_not_found", param="file"
        )
    if isinstance(exc, hf.GatedRepoError):
        return gated(repo_id, settings)
    if isinstance(exc, hf.RepositoryNotFoundError):
        return not_found(repo_id, settings)
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return UpstreamUnavailable(
            "huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when this process started); unset it and "
            "restart to pull models.",
            status=503,
            code="hub_offline",
        )
    if isinstance(exc, hf.HfHubHTTPError) and exc.response is not None:
        return _http_status_error(exc.response.status_code, exc.response.headers, exc.server_message, settings)
    if isinstance(exc, hf.FileMetadataError):
        return UpstreamProtocolError(f"The server at {where} does not answer as the Hugging Face Hub does: {exc}")
    kinds = {cls.__name__ for cls in type(exc).__mro__}  # httpx2's, httpx's or requests' transport errors
    if kinds & {"TimeoutException", "Timeout"}:
        return UpstreamTimeout(f"The Hub at {where} did not answer in time ({type(exc).__name__}); try again later.")
    if file is not None and kinds & {"ProtocolError", "ReadError", "ChunkedEncodingError"}:
        return UpstreamUnavailable(
            f"The connection to the Hub at {where} kept breaking while downloading '{file}' of '{repo_id}' "
            f"({scrub(str(exc), settings)}); pull again to fetch the rest (finished files are kept)."
        )
    if kinds & {"TransportError", "ConnectionError"} and not isinstance(exc, hf.OfflineModeIsEnabled):
        return UpstreamUnavailable(
            f"Cannot reach the Hub at {where} ({scrub(str(exc), settings) or type(exc).__name__}). Check the network, "
            "or [hub] endpoint / HF_ENDPOINT."
        )
    if isinstance(exc, hf.LocalEntryNotFoundError):
        # hf_hub_download's "cannot locate the file": the Hub was unreachable; the cause says how
        cause = exc.__cause__
        if cause is not None and cause is not exc:
            return hub_error(cause, repo_id, settings, file=file, revision=revision)
        return UpstreamUnavailable(f"Cannot reach the Hub at {where} to download '{repo_id}'; try again later.")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return InsufficientStorage(
            f"The disk holding {settings.cache_dir} filled up while pulling '{repo_id}'; free some space or set "
            "[hub] cache_dir (HF_HUB_CACHE) to a larger disk."
        )
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return UpstreamProtocolError(
            f"The Hub sent '{file}' of '{repo_id}' with another size than it announced; try again."
        )
    if isinstance(exc, OSError):
        return UnimodelError(
            f"Could not write '{repo_id}' to the cache folder {settings.cache_dir}: {scrub(str(exc), settings)}",
            code="pull_failed",
        )
    return UpstreamError(
        f"Pulling '{repo_id}' from the Hub at {where} failed: {type(exc).__name__}: {scrub(str(exc), settings)}"
    )


def _http_status_error(
    status: int, headers: object, server_message: str | None, settings: HubSettings
) -> UnimodelError:
    where = settings.endpoint
    detail = f": {scrub(server_message, settings)}" if server_message else ""
    if status == 401:
        return UpstreamError(
            f"The Hub at {where} refused the token from {settings.token_source or 'this server'}{detail}. Fix or "
            "remove it ([hub] token, HF_TOKEN).",
            code="hub_token_invalid",
        )
    if status == 429:
        retry_after = None
        value = getattr(headers, "get", lambda _: None)("retry-after")
        if isinstance(value, str) and value.isdigit():
            retry_after = float(value)
        return RateLimited(
            f"The Hub at {where} is rate-limiting this server{detail}; retry later.", retry_after=retry_after
        )
    if status >= 500:
        return UpstreamUnavailable(
            f"The Hub at {where} answered {status}{detail}; try again later.", status=503 if status == 503 else 502
        )
    if status == 403:
        return PermissionDenied(f"The Hub at {where} refused access{detail}.", code="hub_forbidden")
    return UpstreamError(f"The Hub at {where} answered {status}{detail}.")
