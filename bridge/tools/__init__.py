"""Developer tools the running operator never imports: CRDs, manifests, scaffold, demo, cluster."""
