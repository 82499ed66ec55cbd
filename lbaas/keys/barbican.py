"""A real Barbican (v1 API) as the key manager, over HTTP.

Contract: requests go only to the configured ``[certificates] barbican_endpoint`` (a
reference contributes its kind and uuid, see ``lbaas.keys.refs``), on behalf of the caller's
project.  Barbican answering 403 (another project's) or 404 (unknown) are one and the same
``InvalidReference``; Barbican unreachable, timing out or failing (5xx) is
``KeyManagerUnavailable``.  No payload is logged.

Identity: ``project_headers`` says who is asking.  Today that is Barbican's unauthenticated
pipeline (``X-Project-Id``, with the member role so that its policy lets a project read its
own secrets); a deployment behind Keystone replaces it with one that sends a service token
and the project, without touching the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import httpx

from lbaas.keys import InvalidReference, KeyManagerUnavailable
from lbaas.keys.refs import CONTAINER, SECRET, SecretStoreKeyManager, not_found

LOG = logging.getLogger(__name__)

ProjectHeaders = Callable[[str], Mapping[str, str]]
# A payload this large is not a certificate; it is not read further.
MAX_PAYLOAD = 1 << 20


def unauthenticated_headers(project_id: str) -> Mapping[str, str]:
    """Barbican's unauthenticated context: the project, and a role its policy accepts."""
    return {"X-Project-Id": project_id, "X-Roles": "member"}


class BarbicanKeyManager(SecretStoreKeyManager):
    """Secrets and containers of a Barbican at ``endpoint`` (its base URL, without /v1)."""

    def __init__(self, endpoint: str, timeout: float = 10.0,
                 project_headers: ProjectHeaders = unauthenticated_headers,
                 client: httpx.Client | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.project_headers = project_headers
        self.client = client or httpx.Client(timeout=timeout, trust_env=False)

    def secret_payload(self, secret_id: str, project_id: str) -> bytes:
        response = self._get(SECRET, f"/v1/secrets/{secret_id}/payload", project_id,
                             {"Accept": "application/octet-stream"})
        if len(response.content) > MAX_PAYLOAD:
            raise InvalidReference(f"The secret is larger than {MAX_PAYLOAD} bytes.")
        return response.content

    def container_parts(self, container_id: str, project_id: str) -> Mapping[str, str]:
        document = self._get(CONTAINER, f"/v1/containers/{container_id}", project_id,
                             {"Accept": "application/json"}).json()
        parts: dict[str, str] = {}
        for entry in document.get("secret_refs") or []:
            name, ref = entry.get("name"), entry.get("secret_ref")
            if isinstance(name, str) and isinstance(ref, str):
                # Barbican wrote these refs: the id is all we take from them.
                parts[name] = ref.rstrip("/").rsplit("/", 1)[-1]
        return parts

    def _get(self, kind: str, path: str, project_id: str, headers: Mapping[str, str]) -> httpx.Response:
        try:
            response = self.client.get(self.endpoint + path, headers={**headers, **self.project_headers(project_id)})
        except httpx.HTTPError as exc:
            LOG.warning("Barbican at %s did not answer: %s", self.endpoint, type(exc).__name__)
            raise KeyManagerUnavailable(f"The key manager (Barbican) did not answer: {type(exc).__name__}.") from None
        if response.status_code in (403, 404):
            raise not_found(kind)
        if response.status_code >= 500 or response.status_code in (401, 429):
            LOG.warning("Barbican at %s answered %s", self.endpoint, response.status_code)
            raise KeyManagerUnavailable(f"The key manager (Barbican) answered {response.status_code}.")
        if response.status_code != 200:
            raise InvalidReference(f"The key manager (Barbican) refused the reference ({response.status_code}).")
        return response

    def close(self) -> None:
        self.client.close()
