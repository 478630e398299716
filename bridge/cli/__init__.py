"""The ``ansible-bridge`` command line: ``main`` parses and dispatches, ``dev`` runs a dev set-up."""
