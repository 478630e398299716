"""Ansible, not Kubernetes: extra vars, job events -> results, redaction, artifacts, processes."""
