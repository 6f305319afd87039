"""Invertible transforms with log-determinants, usable as posterior refinements."""
