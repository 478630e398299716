"""ansible-bridge: drive existing Ansible playbooks and roles from Kubernetes custom resources."""

__version__ = "0.1.0"
