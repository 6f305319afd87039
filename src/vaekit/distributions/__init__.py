"""Distributions torch lacks (sphere families, reparameterised mixtures); KLs registered on import."""
