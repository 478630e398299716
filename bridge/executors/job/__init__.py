"""The job executor: each run a Kubernetes Job whose pod runs ``ansible-runner worker``."""
