"""What the bridge knows of Ansible (not of Kubernetes): variables, job events, redaction,
artifacts."""
