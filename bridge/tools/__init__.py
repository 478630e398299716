"""Developer tools, never imported by the running operator: CRDs, manifests, scaffold, demo,
control plane."""
