-- The PostgreSQL role the application runs as: it may log in and use the
-- app's tables, but is neither a superuser nor the owner of any table, so it
-- cannot TRUNCATE the audit, DISABLE its append-only trigger or ALTER it.
--
-- Run by the owner of the database (the role `manage.py migrate` runs as):
--   * docker compose: mounted into /docker-entrypoint-initdb.d, so the
--     postgres image runs it once, when it creates the database volume;
--   * an existing PostgreSQL (README, Production):
--       POSTGRES_APP_PASSWORD=... psql "postgres://OWNER@HOST/DB" -f deploy/postgres/app-role.sql
-- Then, after every `manage.py migrate`, still as the owner:
--       python manage.py grant_app_role proctor_app
-- grants the tables that exist by then (only INSERT and SELECT on the audit).
--
-- POSTGRES_APP_PASSWORD (required) is its password; POSTGRES_APP_USER its
-- name (default proctor_app). Running it again only resets the password.
-- Needs psql 15 or later (\getenv).

\set ON_ERROR_STOP on
\getenv app_role POSTGRES_APP_USER
\if :{?app_role}
\else
\set app_role proctor_app
\endif
\getenv app_password POSTGRES_APP_PASSWORD
\if :{?app_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'POSTGRES_APP_PASSWORD is not set: the application role needs a password'; END $$;
\endif

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', :'app_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec

-- An existing role of that name must not be a superuser or able to make roles.
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %L',
              :'app_role', :'app_password') \gexec

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'app_role') \gexec
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), :'app_role') \gexec
