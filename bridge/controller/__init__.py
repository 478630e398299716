"""The controller: what each resource needs (decide), its runs, their outcome and its status."""
