"""Contracts every implementation inherits: every registered model kind, its symmetry group, every stage."""
