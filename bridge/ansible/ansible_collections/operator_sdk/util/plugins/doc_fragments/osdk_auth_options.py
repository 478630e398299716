"""Documentation of the connection arguments shared by the collection's Kubernetes modules."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file (several, separated by C(:), are merged as kubectl does).
      - Without it, C(K8S_AUTH_KUBECONFIG), then C(KUBECONFIG), then the in-cluster service
        account, then C(~/.kube/config) are used, in that order.
    type: path
  context:
    description:
      - The kubeconfig context to use; the current context when omitted.
      - Falls back to C(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the API server; overrides the kubeconfig's. Falls back to C(K8S_AUTH_HOST).
      - With I(api_key), or with I(username) and I(password), no kubeconfig is read.
    type: str
  api_key:
    description:
      - A bearer token for the API server. Falls back to C(K8S_AUTH_API_KEY).
    type: str
  username:
    description:
      - User name for basic authentication. Falls back to C(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password for basic authentication. Falls back to C(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's certificate.
      - Falls back to C(K8S_AUTH_VERIFY_SSL) (or C(K8S_AUTH_VALIDATE_CERTS)).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA bundle for the API server's certificate.
      - Falls back to C(K8S_AUTH_SSL_CA_CERT) (or C(K8S_AUTH_CA_CERT)).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate. Falls back to C(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the client certificate's key. Falls back to C(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through. Falls back to C(K8S_AUTH_PROXY).
    type: str
  persist_config:
    description:
      - Whether refreshed credentials (an expired token renewed by an auth provider) are written
        back to the kubeconfig file. Falls back to C(K8S_AUTH_PERSIST_CONFIG).
    type: bool
    default: false
requirements:
  - kubernetes (the Python client) >= 25.3.0
"""
