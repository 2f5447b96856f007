"""Scambio: a timebank and mutual-aid exchange ledger."""

__version__ = "0.1.0"
