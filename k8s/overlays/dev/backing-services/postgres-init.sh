# DEV ONLY. Run once by the postgres image's entrypoint, on the first start
# with an empty data directory (sourced from /docker-entrypoint-initdb.d, after
# it created the superuser POSTGRES_USER and the database POSTGRES_DB).
#
# Creates the dashboard's role, dmp_dashboard, which may read every table the
# dataflow's role creates in the public schema and do nothing else: the same
# split a production database should have (README-ops.md), so a dashboard
# that tried to write would fail here first. In: POSTGRES_USER, POSTGRES_DB,
# DASHBOARD_PASSWORD.
docker_process_sql --set owner="$POSTGRES_USER" --set db="$POSTGRES_DB" \
    --set dashboard_password="$DASHBOARD_PASSWORD" <<'EOSQL'
CREATE ROLE dmp_dashboard LOGIN PASSWORD :'dashboard_password';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO dmp_dashboard;
GRANT USAGE ON SCHEMA public TO dmp_dashboard;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO dmp_dashboard;
EOSQL
