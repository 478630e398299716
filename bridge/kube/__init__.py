"""What the bridge knows of Kubernetes (not of Ansible): client, API paths, proxy, dependents,
leases."""
