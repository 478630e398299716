#!/usr/bin/python
"""A module of the playbook's own under the name of a built-in one (ansible.builtin.ping)."""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, ping="shadowed")


if __name__ == "__main__":
    main()
