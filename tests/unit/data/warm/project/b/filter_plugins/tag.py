"""A filter next to playbook b/: tag(value) is "B"."""


class FilterModule:
    def filters(self):
        return {"tag": lambda value: "B"}
