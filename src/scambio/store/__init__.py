"""Storage: SQLAlchemy tables, engines, migrations, the append path and read queries."""
