"""Kubernetes, not Ansible: the API client, API paths, the runs' proxy, dependents, leases."""
