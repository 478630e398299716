"""The ``ansible-bridge`` command line: parsing, the commands, settings assembly, logs, dev."""
