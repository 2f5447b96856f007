"""The page handlers, one module per part of the app."""
