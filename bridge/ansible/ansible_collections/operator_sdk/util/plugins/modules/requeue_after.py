#!/usr/bin/python
"""operator_sdk.util.requeue_after: ask the operator to run the resource again after a while."""

from __future__ import annotations

import re
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: requeue_after
short_description: Ask the operator to reconcile the resource again after a period
version_added: 0.0.1
author: ansible-bridge contributors
description:
  - Changes nothing by itself. It returns the period in its result (C(period)); the operator
    running the playbook reads it from the task's result and runs the resource again once the
    period has passed, instead of after its usual reconcile period.
  - The period is a duration as Go's C(time.ParseDuration) reads it, in hours, minutes,
    seconds and milliseconds, e.g. C(30s), C(5m), C(1h30m), C(24h), C(500ms).
  - When several C(requeue_after) tasks run in one play, the operator decides which one counts
    (the Operator SDK stops reading the run's events at the first one).
options:
  time:
    description:
      - How long to wait before the next run, e.g. C(90s), C(1h30m).
      - A zero period (C(0), C(0s)) asks for no timed re-run after this one, as a zero
        C(RequeueAfter) does in the Operator SDK; changes to the resource still start runs.
    type: str
    required: true
notes:
  - Supports check mode (it has no side effect).
"""

EXAMPLES = r"""
- name: Look again in 30 seconds (the database is still starting)
  operator_sdk.util.requeue_after:
    time: 30s
  when: not db_ready

- name: Once a day
  operator_sdk.util.requeue_after:
    time: 24h
"""

RETURN = r"""
period:
  description: The period given in I(time), as given; the operator reads it.
  returned: success
  type: str
  sample: 1h30m
changed:
  description: Always C(false).
  returned: always
  type: bool
"""

# What the Operator SDK's module accepts ([hms0-9]) that time.ParseDuration also reads: units h,
# m, s and ms in any order and number, or "0" alone.
DURATION = re.compile(r"^(?:0|(?:\d+(?:ms|h|m|s))+)$")


def argument_spec() -> dict[str, Any]:
    return {"time": {"type": "str", "required": True}}


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    period: str = module.params["time"].strip()
    if not DURATION.match(period):
        module.fail_json(
            msg=f"invalid time input {period!r}: expected a duration such as 30s, 5m, 1h30m "
            "or 500ms"
        )
    result: dict[str, Any] = {"changed": False, "period": period}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
