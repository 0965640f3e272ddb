-- Accord on PostgreSQL: the application's role may read and append the audit trail, never
-- rewrite it.
--
-- Two roles: an owner that creates and migrates the schema (`accord db upgrade` with the
-- owner's ACCORD_DATABASE_URL creates the tables and the audit triggers; the only DDL there
-- is), and the application's role that Accord runs as day to day, which has no DDL rights.
-- Run this file as the owner, once the tables exist (and again after an upgrade that adds a
-- table), naming the application's role:
--
--   psql -v ON_ERROR_STOP=1 -v app_role=accord_app -f deploy/postgresql-grants.sql "$OWNER_URL"
--
-- Then run Accord with the application's role in ACCORD_DATABASE_URL. It can SELECT and
-- INSERT audit rows only: UPDATE, DELETE and TRUNCATE are refused with "permission denied".
-- The triggers below refuse them to the owner too (PostgreSQL 14 or later), so a rewrite needs
-- DDL rights first; `accord audit verify` finds what such a rewrite changed.
-- Running the file again is harmless.

\set ON_ERROR_STOP on
\if :{?app_role}
\else
  \echo 'name the application role: psql -v app_role=ROLE -f deploy/postgresql-grants.sql URL'
  \quit
\endif

BEGIN;

-- The audit table is append-only, for every role (the same as infra/db.py creates).
CREATE OR REPLACE FUNCTION accord_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'audit is append-only: ' || TG_OP || ' refused', ERRCODE = '42501';
END
$$;
CREATE OR REPLACE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION accord_audit_append_only();
CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION accord_audit_append_only();

-- Start from nothing, then grant what Accord uses.
REVOKE ALL ON agencies, officers, submissions, outbox, audit FROM :"app_role";
REVOKE ALL ON portal_links, portal_sessions, link_requests, portal_actions FROM :"app_role";
REVOKE ALL ON uploads, agreements, alembic_version FROM :"app_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"app_role";
GRANT USAGE ON SCHEMA public TO :"app_role";

-- The directory (deploying refreshes it), submissions and the mail outbox: read, add, update.
-- Accord deletes nothing.
GRANT SELECT, INSERT, UPDATE ON agencies, officers, submissions, outbox TO :"app_role";

-- The portal: links and sessions are revoked or ended by an update, never deleted; a form's
-- outcome is written once; the new-link requests counted for the rate limit are the one thing
-- Accord deletes (those older than two hours).
GRANT SELECT, INSERT, UPDATE ON portal_links, portal_sessions TO :"app_role";
GRANT SELECT, INSERT ON portal_actions TO :"app_role";
-- An uploaded attachment's metadata (the file is kept by its digest) is written once.
GRANT SELECT, INSERT ON uploads TO :"app_role";
GRANT SELECT, INSERT, DELETE ON link_requests TO :"app_role";

-- The deployed agreements and their tenant: registered once, never changed.
GRANT SELECT, INSERT ON agreements TO :"app_role";

-- The schema's revision: every service and command checks it before starting.
GRANT SELECT ON alembic_version TO :"app_role";

-- The audit trail: read and append only.
GRANT SELECT, INSERT ON audit TO :"app_role";

-- The ID sequences of the tables above (nextval on insert).
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"app_role";

COMMIT;
