"""The warm executor: runs forked from a server that has already imported Ansible."""
