"""The run marker: the environment variable that ties every process of a run to the run.

Set in every run's environment (its value is the run id) and inherited by each process the run
starts, so that :mod:`bridge.ansible.proctree` finds them all; a watch's credentials may not set
it. The warm server script repeats the name (it imports nothing of the bridge).
"""

from __future__ import annotations

#: The environment variable set for every run: its value is the run id.
MARKER = "ANSIBLE_BRIDGE_RUN_ID"
