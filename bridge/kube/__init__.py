"""What the bridge knows of Kubernetes (not of Ansible): API client, runs' proxy, dependents,
leases."""
