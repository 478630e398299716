"""Developer tools, never imported by the running operator: CRDs, manifests, scaffold, demo,
control plane, and the operator started as a process (tests, demo, bench)."""
