"""A filter of the collection leak.probe, next to playbook a/."""


class FilterModule:
    def filters(self):
        return {"more": lambda value: f"{value} and more"}
