"""A filter next to playbook a/: tag(value) is "A"."""


class FilterModule:
    def filters(self):
        return {"tag": lambda value: "A"}
