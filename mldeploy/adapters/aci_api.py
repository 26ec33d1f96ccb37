"""Azure Container Instances through the official SDK (azure-mgmt-containerinstance): the only module that
imports it.

Container groups go in and come out as the REST API's JSON (api-version 2023-05-01), so what judges them
(``mldeploy.aci``) stays pure. Errors are decided here, once, through ``ERRORS``: ARM's own error codes first
(``InaccessibleImage``, ``ContainerGroupQuotaReached``, ``ServiceUnavailable``…), then the HTTP status (409 while
another operation runs and 429 wait — at least ``Retry-After`` — and are retried; 5xx are retried; 401/403 are
permanent, never retried). A long-running create or delete is polled with a bounded wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mldeploy import diagnosis
from mldeploy.azure_cloud import Cloud
from mldeploy.errors import MldeployError, PermanentError, TransientError, retry_after_seconds

LRO_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class ErrorRule:
    transient: bool
    kind: str  # which diagnosis: access, quota, capacity, image, invalid, busy, unavailable


# ARM error code → what it means for a deploy (Microsoft's ACI troubleshooting articles and the SDK's codes)
ERRORS: dict[str, ErrorRule] = {
    "AuthorizationFailed": ErrorRule(False, "access"),
    "InvalidAuthenticationToken": ErrorRule(False, "access"),
    "ContainerGroupQuotaReached": ErrorRule(False, "quota"),
    "QuotaExceeded": ErrorRule(False, "quota"),
    "ServiceUnavailable": ErrorRule(False, "capacity"),  # 409: "not available in the location at this moment"
    "ResourceRequestsNotAvailable": ErrorRule(False, "capacity"),
    "InaccessibleImage": ErrorRule(False, "image"),
    "RegistryErrorResponse": ErrorRule(False, "image"),
    "InvalidContainerGroup": ErrorRule(False, "invalid"),
    "InvalidRequestContent": ErrorRule(False, "invalid"),
    "Conflict": ErrorRule(True, "busy"),
    "AnotherOperationInProgress": ErrorRule(True, "busy"),
    "TooManyRequests": ErrorRule(True, "unavailable"),
}


def _decide(status: int, code: str, message: str, what: str, where: str, retry_after: str | None) -> MldeployError:
    detail = f"{what}: HTTP {status} {code}: {message}".strip()
    rule = ERRORS.get(code)
    if rule is None:
        if status in (401, 403):
            rule = ErrorRule(False, "access")
        elif status in (409, 429) or status >= 500 or status == 0:
            rule = ErrorRule(True, "busy" if status == 409 else "unavailable")
        else:
            rule = ErrorRule(False, "invalid")
    found = {
        "access": lambda: diagnosis.azure_access_denied(where, detail),
        "quota": lambda: diagnosis.aci_quota(detail),
        "capacity": lambda: diagnosis.aci_capacity(detail),
        "image": lambda: diagnosis.aci_image_pull_failed("the service's image", message, what),
        "invalid": lambda: diagnosis.aci_invalid(detail),
        "busy": lambda: diagnosis.azure_unavailable(where, detail),
        "unavailable": lambda: diagnosis.azure_unavailable(where, detail),
    }[rule.kind]()
    if rule.transient:
        return TransientError(detail, diagnosis=found, delay=retry_after_seconds(retry_after))
    return PermanentError(detail, diagnosis=found)


class AciApi:
    """One subscription, one credential (a TokenCredential: DefaultAzureCredential in real use, injected in tests)."""

    def __init__(self, credential: Any, subscription_id: str, cloud: Cloud, *, poll_seconds: float = 2.0) -> None:
        from azure.mgmt.containerinstance import ContainerInstanceManagementClient

        self.cloud = cloud
        self.subscription_id = subscription_id
        self.credential = credential
        self.poll_seconds = poll_seconds
        self.client = ContainerInstanceManagementClient(
            credential,
            subscription_id,
            base_url=cloud.arm_endpoint,
            credential_scopes=[cloud.arm_scope],
            retry_total=0,  # retries are the stage's (one policy for every error, Retry-After honoured there)
        )

    @contextlib.contextmanager
    def translated(self, what: str) -> Iterator[None]:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

        try:
            yield
        except ClientAuthenticationError as exc:
            detail = f"{what}: {exc.message}"
            raise PermanentError(
                detail, diagnosis=diagnosis.azure_access_denied(self.cloud.authority_host, detail)
            ) from exc
        except HttpResponseError as exc:
            code = getattr(exc.error, "code", None) or ""
            headers: Any = getattr(exc.response, "headers", None) or {}
            raise _decide(
                exc.status_code or 0,
                code,
                str(getattr(exc.error, "message", None) or exc.message),
                what,
                self.cloud.arm_endpoint,
                headers.get("Retry-After"),
            ) from exc
        except ServiceRequestError as exc:
            detail = f"{what}: {exc}"
            raise TransientError(
                detail, diagnosis=diagnosis.azure_unavailable(self.cloud.arm_endpoint, detail)
            ) from exc

    def _plain(self, group: Any) -> dict[str, Any]:
        return dict(group.serialize(keep_readonly=True))

    def create_or_update(
        self, resource_group: str, name: str, body: dict[str, Any], timeout: float = LRO_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        """PUT the group and poll the operation to its end (a bounded wait); the group as ARM returns it."""
        from azure.mgmt.containerinstance.models import ContainerGroup

        model = ContainerGroup.deserialize(body)
        with self.translated(f"create container group {resource_group}/{name}"):
            poller = self.client.container_groups.begin_create_or_update(
                resource_group, name, model, polling_interval=self.poll_seconds
            )
            group = poller.result(timeout=timeout)
            if not poller.done():
                raise TransientError(
                    f"creating container group {name} did not finish within {timeout:g} s",
                    diagnosis=diagnosis.azure_unavailable(self.cloud.arm_endpoint, "the operation is still running"),
                )
        return self._plain(group)

    def get(self, resource_group: str, name: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self.translated(f"read container group {resource_group}/{name}"):
            try:
                return self._plain(self.client.container_groups.get(resource_group, name))
            except ResourceNotFoundError:
                return None

    def list(self, resource_group: str) -> list[dict[str, Any]]:
        with self.translated(f"list container groups in {resource_group}"):
            return [self._plain(g) for g in self.client.container_groups.list_by_resource_group(resource_group)]

    def delete(self, resource_group: str, name: str, timeout: float = LRO_TIMEOUT_SECONDS) -> bool:
        """True when it existed (and is gone now)."""
        from azure.core.exceptions import ResourceNotFoundError

        with self.translated(f"delete container group {resource_group}/{name}"):
            try:
                poller = self.client.container_groups.begin_delete(
                    resource_group, name, polling_interval=self.poll_seconds
                )
                poller.result(timeout=timeout)
            except ResourceNotFoundError:
                return False
        return True

    def set_tags(self, resource_group: str, name: str, tags: dict[str, str]) -> None:
        """PATCH the group's tags only (a PUT would need the secure values, which ARM never returns)."""
        from azure.mgmt.containerinstance.models import Resource

        with self.translated(f"tag container group {resource_group}/{name}"):
            self.client.container_groups.update(resource_group, name, Resource(tags=tags))

    def logs(self, resource_group: str, name: str, container: str, tail: int = 200) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        with self.translated(f"read the log of {resource_group}/{name}"):
            try:
                found = self.client.containers.list_logs(resource_group, name, container, tail=tail)
            except ResourceNotFoundError:
                return ""
        return str(found.content or "")

    def resource_group_location(self, resource_group: str) -> str:
        """The resource group's region (the default location of its container groups), through the same
        authenticated ARM pipeline as every other call."""
        from azure.core.rest import HttpRequest

        url = f"/subscriptions/{self.subscription_id}/resourcegroups/{resource_group}"
        with self.translated(f"read resource group {resource_group}"):
            response = self.client._send_request(HttpRequest("GET", url, params={"api-version": "2021-04-01"}))
            response.raise_for_status()
        return str(response.json()["location"])
