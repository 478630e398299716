"""Assembly of a run's inputs (:class:`RunSpec`) from a resource's newest body.

The spec's extra vars and paths come from :func:`bridge.ansible.inputs.run_spec`; here they are
joined by what is read from the cluster at run time (Secret references in the spec, the watch's
``credentials`` and inventory from a Secret or ConfigMap) and by the Operator SDK's per-kind
verbosity and per-resource annotations. A missing input raises a
:class:`~bridge.model.errors.PermanentError` (retried when it is a missing one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bridge.ansible import inputs, secrets
from bridge.config import credentials, sdk
from bridge.config.settings import OperatorSettings
from bridge.controller.outcome import Event
from bridge.controller.ports import StatusWriter
from bridge.controller.registry import Resource
from bridge.controller.writer import Writer
from bridge.model.records import RunSpec, Trigger

logger = logging.getLogger(__name__)


class SpecBuilder:
    """Builds the :class:`RunSpec` of a resource's run, check or finalizer run."""

    def __init__(self, settings: OperatorSettings, kube: StatusWriter, writer: Writer) -> None:
        self._settings = settings
        self._kube = kube
        self._writer = writer

    async def build(
        self, res: Resource, run_id: str, trigger: Trigger, *, finalizing: bool = False
    ) -> RunSpec:
        """The run's inputs from the newest body, with Secret references resolved."""
        raw = res.body.get("spec")
        given: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        resolved, values = await secrets.resolve(given, res.key.namespace, self._kube.secret_data)
        spec = inputs.run_spec(
            res.body,
            res.watch,
            run_id=run_id,
            trigger=trigger,
            artifacts_root=self._settings.runner.artifacts_dir,
            project_dir=self._settings.watches_file.parent,
            finalizing=finalizing,
            # Resolved whenever there were references (an empty value is a value too).
            spec=resolved if secrets.find_refs(given) else None,
            secrets=values,
            envvars=self._settings.runner.env,
        )
        spec = await self._access(res, spec, given)
        return self._sdk_options(res, spec)

    async def _access(self, res: Resource, spec: RunSpec, raw: Mapping[str, Any]) -> RunSpec:
        """The watch's ``credentials`` and non-path ``inventory`` resolved into ``spec`` (every
        credential value joins ``spec.secrets``)."""
        watch, namespace = res.watch, res.key.namespace
        if watch.automation.credentials is None and watch.automation.inventory_source is None:
            return spec
        changes: dict[str, Any] = {}
        if watch.automation.inventory_source is not None:
            changes["inventory_text"] = await credentials.resolve_inventory(
                watch.automation.inventory_source,
                namespace,
                self._kube.secret_data,
                self._kube.config_map_data,
            )
            changes["inventory"] = None
            changes["hosts"] = "all"
        if watch.automation.credentials is not None:
            creds, values = await credentials.resolve_credentials(
                watch.automation.credentials, raw, namespace, self._kube.secret_data
            )
            if creds is not None:
                changes["credentials"] = creds
                changes["secrets"] = tuple(
                    sorted(set(spec.secrets) | set(values), key=len, reverse=True)
                )
        return replace(spec, **changes)

    def _sdk_options(self, res: Resource, spec: RunSpec) -> RunSpec:
        """The Operator SDK's per-kind verbosity and per-resource annotations applied to a run's
        spec; a bad annotation is reported (a Warning Event, once per value) and ignored."""
        metadata = res.body.get("metadata") or {}
        overrides = sdk.run_overrides(metadata.get("annotations"))
        if overrides.problems != res.sdk_problems:
            res.sdk_problems = overrides.problems
            for problem in overrides.problems:
                logger.warning("%s: %s", res.key, problem, extra=res.log())
                self._writer.event(res, Event("Warning", "InvalidAnnotation", problem))
        runner = self._settings.runner
        verbosity = overrides.verbosity
        if verbosity is None:
            verbosity = runner.watch_verbosity.get(res.watch.key, runner.ansible_verbosity)
        if verbosity:
            spec = replace(spec, envvars={**spec.envvars, "ANSIBLE_VERBOSITY": str(verbosity)})
        if overrides.max_artifacts is not None:
            spec = replace(spec, max_artifacts=overrides.max_artifacts)
        return spec
