"""Sponsorship policies: company grants, matching, staff-time pledges and the community pool.

A policy is a TOML file in the policies directory (`model` parses and validates it); its
kind is a pure function from a context to proposed postings (`kinds`, `builtin`); the
runner (`runner`) builds the context from the database, caps what is proposed to the
sponsor's budget, and issues it through the ledger service, at most once per policy,
period, rule and member. Sponsored credit sits in restricted accounts that exchanges
spend before the member's own hours (`funding`).

This package imports nothing at import time, so that `funding` and `periods` can be used
by the exchange workflow without pulling in the rest.
"""
