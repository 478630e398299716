# The ansible-bridge operator image.
#
#   docker build -t ansible-bridge:latest .                                  # the samples
#   docker build -t my-operator --build-arg ANSIBLE_DIR=path/to/ansible .   # your automation
#
# Your playbooks, roles and watches file go to /opt/ansible, as in the Operator SDK's Ansible
# image: /opt/ansible/watches.yaml, roles in /opt/ansible/roles, collections from
# /opt/ansible/requirements.yml (when present) installed into /opt/ansible/collections. Or
# derive an image: `FROM ansible-bridge:latest` + `COPY --chown=root:root . /opt/ansible/`.
#
# It runs as uid 1001 and works with a read-only root filesystem: everything it writes goes
# below /tmp (HOME, Ansible's temporary files) and the artifacts folder, which the Deployment
# (deploy/deployment.yaml) mounts as emptyDirs.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the locked dependencies and the bridge, into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Exactly the versions and hashes the tests ran with (setuptools and wheel too: the bridge is
# built without fetching anything unlocked).
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY bridge/ ./bridge/
RUN pip install --no-deps --no-build-isolation . \
    && ansible-bridge --version

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# The folder of the watches file and the automation it names, in the build context.
ARG ANSIBLE_DIR=playbooks

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    ANSIBLE_HOME=/tmp/.ansible \
    ANSIBLE_LOCAL_TEMP=/tmp/.ansible/tmp \
    ANSIBLE_REMOTE_TEMP=/tmp/.ansible/remote-tmp \
    ANSIBLE_ROLES_PATH=/opt/ansible/roles \
    ANSIBLE_COLLECTIONS_PATH=/opt/ansible/collections:/usr/share/ansible/collections

# ssh: for a watch's `inventory` of remote hosts (the default inventory is localhost). Not
# pinned: Debian's archive drops superseded versions, the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 1001 ansible-bridge \
    && useradd --uid 1001 --gid 1001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin ansible-bridge \
    && mkdir -p /var/lib/ansible-bridge/artifacts /opt/ansible/collections \
    && chown 1001:1001 /var/lib/ansible-bridge/artifacts \
    && chmod 0700 /var/lib/ansible-bridge/artifacts

COPY --from=build /opt/venv /opt/venv

# The automation is read-only to the operator (owned by root); runs work in their own folders.
COPY --chown=root:root ${ANSIBLE_DIR}/ /opt/ansible/
RUN if [ -f /opt/ansible/requirements.yml ]; then \
        ansible-galaxy collection install -r /opt/ansible/requirements.yml \
            -p /opt/ansible/collections; \
    fi \
    && test -f /opt/ansible/watches.yaml \
    && chmod -R a+rX /opt/ansible \
    && rm -rf /tmp/.ansible

USER 1001:1001
WORKDIR /opt/ansible
EXPOSE 8080
ENTRYPOINT ["ansible-bridge", "run", "--watches", "/opt/ansible/watches.yaml"]
