"""The multi-scale study: ISM against DSM at every level of a noise schedule (make multiscale)."""
