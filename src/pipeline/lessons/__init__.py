"""Each unit's own steps (what it trains, what it shows), as plain functions the flows call.

The shared stages — ingest, validate, evaluate, audit, register — live elsewhere; a lesson module
holds only what is particular to its unit.
"""
