"""Every annotation and label name the bridge reads or writes, ours and the Operator SDK's.

Ours use the prefix ``ansible-bridge.io/``; the SDK's are read so that its projects run unchanged.
"""

from __future__ import annotations

PREFIX = "ansible-bridge.io/"

# --- on a watched resource --------------------------------------------------------------------
#: Any new value asks for one more run (e.g. a timestamp).
RUN_REQUESTED = PREFIX + "run-requested"
#: ``"true"`` suspends runs of the resource.
SUSPEND = PREFIX + "suspend"
#: Per-resource reconcile period: ours, then the Operator SDK's.
RECONCILE_PERIOD = PREFIX + "reconcile-period"
SDK_RECONCILE_PERIOD = "ansible.sdk.operatorframework.io/reconcile-period"
PERIOD_ANNOTATIONS = (RECONCILE_PERIOD, SDK_RECONCILE_PERIOD)
#: The Operator SDK's per-resource verbosity and artifacts count.
SDK_VERBOSITY = "ansible.sdk.operatorframework.io/verbosity"
SDK_MAX_RUNNER_ARTIFACTS = "ansible.sdk.operatorframework.io/max-runner-artifacts"
#: Never counts as a change of annotations (kubectl's copy of the applied manifest).
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# --- on what runs create ------------------------------------------------------------------------
#: The Operator SDK's owner annotations on cluster-scoped (or cross-namespace) dependents.
SDK_PRIMARY_RESOURCE = "operator-sdk/primary-resource"
SDK_PRIMARY_RESOURCE_TYPE = "operator-sdk/primary-resource-type"

# --- on the Jobs of ``executor: job`` ---------------------------------------------------------
LABEL_RESOURCE_UID = PREFIX + "resource-uid"
LABEL_GENERATION = PREFIX + "generation"
LABEL_RUN_ID = PREFIX + "run-id"
JOB_WATCH = PREFIX + "watch"
JOB_RESOURCE = PREFIX + "resource"
JOB_TRIGGER = PREFIX + "trigger"
