"""The PostgreSQL warehouse: the embedded server, migrations and set-based loads."""
