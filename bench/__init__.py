"""``make bench``: latency, throughput and scale of the bridge, side by side with bare
``ansible-playbook`` and the Operator SDK's Ansible operator (``python -m bench``)."""
