"""The results database: every output stream as a table, in SQLite or PostgreSQL.

``DMP_SINK`` containing ``db`` writes each stream to a table of the same
name at ``DMP_DB_URL`` (:mod:`flows.engine.sinks.db`); the dashboard and
``python -m flows.tools.query`` read them. The modules, one job each:

- :mod:`~flows.engine.db.url`: ``DMP_DB_URL`` parsed, the password masked everywhere;
- :mod:`~flows.engine.db.dialect`: what a dialect says (types, encodings,
  upserts, introspection); :mod:`~flows.engine.db.sqlite` and
  :mod:`~flows.engine.db.postgres` say it;
- :mod:`~flows.engine.db.schema`: tables, indexes, views and ``dmp_schema``
  derived from the stream declarations, and the check of existing tables;
- :mod:`~flows.engine.db.database`: a connection that writes batches with
  retries, creates the schema and reads tables back as typed frames;
- :mod:`~flows.engine.db.queries`: the named queries analysts run;
- :mod:`~flows.engine.db.errors`: its exceptions, under :class:`~flows.engine.db.errors.DbError`.

Nothing here imports psycopg until a PostgreSQL URL is used.
"""
