"""Variable names a resource may not set: Ansible's own, which a top-level extra var would replace.

Extra vars have the highest precedence in Ansible, so a spec key that becomes a top-level
variable named ``omit``, ``groups`` or ``inventory_hostname`` replaces what Ansible itself gives
every play: ``omit`` set from a resource breaks every ``default(omit)``, ``lookup`` every lookup.
The lists are frozen here (the operator never imports Ansible) from ansible-core 2.19 and the
"Special Variables" page of Ansible's documentation; a unit test checks that they still cover
``ansible.vars.reserved.get_reserved_names()`` and ``ansible.constants.INTERNAL_STATIC_VARS`` of
the installed ansible-core, so a name a new release adds has to be sorted in here.

Three kinds of names:

* :data:`MAGIC_VARIABLES`: the variables Ansible sets itself (hosts, groups, roles, the play,
  facts, loop state); refused.
* :data:`TEMPLATE_GLOBALS`: the globals of Ansible's templates (``omit``, ``lookup``, ``range``,
  ``namespace``...); a variable of the same name hides them in every template; refused.
* ``ansible_*``: Ansible reads them as its own settings (``ansible_connection``,
  ``ansible_become*``, ``ansible_ssh_*``, ``ansible_python_interpreter``...). A resource is data,
  so they are refused too, unless the watch trusts the resource as the Operator SDK does
  (``markUnsafe: false``), in which case only the magic ``ansible_*`` variables are.

:data:`KEYWORDS` (play, block, role and task keywords: ``name``, ``port``, ``timeout``,
``tags``...), the rest of ``get_reserved_names()``, are *not* refused: a variable of such a name
changes nothing (Ansible prints ``Found variable using reserved name``), and Operator SDK
resources commonly have them.

The CRD generator refuses the same names at generation time through :func:`refusal`.
"""

from __future__ import annotations

#: The prefix of the variables Ansible reads as its own settings (names are case-sensitive).
SETTINGS_PREFIX = "ansible_"

#: Variables Ansible sets itself: the "Magic variables" and "Facts" of Ansible's documentation of
#: special variables, ansible-core's ``INTERNAL_STATIC_VARS`` and the other names its variable
#: manager, task executor and inventory set (loop state, delegation, the failed task).
MAGIC_VARIABLES: frozenset[str] = frozenset(
    {
        "ansible_async_path",
        "ansible_check_mode",
        "ansible_collection_name",
        "ansible_config_file",
        "ansible_delegated_vars",
        "ansible_dependent_role_names",
        "ansible_diff_mode",
        "ansible_facts",
        "ansible_failed_result",
        "ansible_failed_task",
        "ansible_forks",
        "ansible_index_var",
        "ansible_inventory_sources",
        "ansible_limit",
        "ansible_local",
        "ansible_loop",
        "ansible_loop_var",
        "ansible_parent_role_names",
        "ansible_parent_role_paths",
        "ansible_play_batch",
        "ansible_play_hosts",
        "ansible_play_hosts_all",
        "ansible_play_name",
        "ansible_play_role_names",
        "ansible_playbook_python",
        "ansible_role_name",
        "ansible_role_names",
        "ansible_run_tags",
        "ansible_search_path",
        "ansible_skip_tags",
        "ansible_verbosity",
        "ansible_version",
        "group_names",
        "groups",
        "hostvars",
        "inventory_dir",
        "inventory_file",
        "inventory_hostname",
        "inventory_hostname_short",
        "omit",
        "play_hosts",
        "playbook_dir",
        "role_name",
        "role_names",
        "role_path",
        "role_uuid",
    }
)

#: The globals of Ansible's templates (``TemplateEngine().environment.globals``).
TEMPLATE_GLOBALS: frozenset[str] = frozenset(
    {
        "cycler",
        "dict",
        "joiner",
        "lipsum",
        "lookup",
        "namespace",
        "now",
        "omit",
        "q",
        "query",
        "range",
        "undef",
    }
)

#: Play, block, role and task keywords: the rest of ``get_reserved_names()``. Allowed (see the
#: module docstring); listed so that the unit test can tell a new reserved name from a known one.
KEYWORDS: frozenset[str] = frozenset(
    {
        "action",
        "always",
        "any_errors_fatal",
        "args",
        "async",
        "async_val",
        "become",
        "become_exe",
        "become_flags",
        "become_method",
        "become_user",
        "block",
        "changed_when",
        "check_mode",
        "collections",
        "connection",
        "debugger",
        "delay",
        "delegate_facts",
        "delegate_to",
        "diff",
        "environment",
        "fact_path",
        "failed_when",
        "force_handlers",
        "gather_facts",
        "gather_timeout",
        "handlers",
        "hosts",
        "ignore_errors",
        "ignore_unreachable",
        "local_action",
        "loop",
        "loop_control",
        "loop_with",
        "max_fail_percentage",
        "module_defaults",
        "name",
        "no_log",
        "notify",
        "order",
        "poll",
        "port",
        "post_tasks",
        "pre_tasks",
        "register",
        "remote_user",
        "rescue",
        "retries",
        "roles",
        "run_once",
        "serial",
        "strategy",
        "tags",
        "tasks",
        "throttle",
        "timeout",
        "until",
        "vars",
        "vars_files",
        "vars_prompt",
        "when",
        "with_",
    }
)


def refusal(name: str, *, trusted: bool = False) -> str | None:
    """Why a resource may not set the top-level variable ``name``: what Ansible uses it for, as a
    phrase to put before the name; None when it may. ``trusted``: the watch trusts the resource's
    content as the Operator SDK does (``markUnsafe: false``), so Ansible's settings
    (``ansible_*``) are allowed.

    >>> refusal("omit"), refusal("lookup"), refusal("ansible_connection"), refusal("port")
    ("Ansible's magic variable", "Ansible's template global", "Ansible's setting", None)
    """
    if name in MAGIC_VARIABLES:
        return "Ansible's magic variable"
    if name in TEMPLATE_GLOBALS:
        return "Ansible's template global"
    if not trusted and name.startswith(SETTINGS_PREFIX):
        return "Ansible's setting"
    return None
