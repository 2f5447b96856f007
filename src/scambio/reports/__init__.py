"""Reports: figures computed from the ledger that anyone holding an export can recompute.

`coproduction` is the pure definition of the co-production report; `live` computes it from
the database, `offline` from an export; `signing` signs and checks the documents;
`stored` keeps the monthly ones; `pairs` is the projection that keeps it fast.
"""
