"""Documentation of the arguments naming one Kubernetes object."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_version:
    description:
      - API version of the object, C(<group>/<version>) (C(v1) for the core group).
    type: str
    default: v1
    aliases: [api, version]
  kind:
    description:
      - Kind of the object; its plural, singular or a short name are accepted too.
    type: str
    required: true
  name:
    description:
      - Name of the object.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the object; omit it for cluster-scoped kinds.
    type: str
"""
