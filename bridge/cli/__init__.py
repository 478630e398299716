"""The ``ansible-bridge`` command line: ``main`` parses, dispatches; ``dev`` runs a dev set-up."""
