-- Roles, the identity helpers every policy reads, and the users table.
--
-- Three roles take part:
--   * the migration owner: whoever runs these migrations; owns every table and function.
--   * app_api: used by the HTTP functions. Owns nothing, has no BYPASSRLS, and sees only what the
--     policies grant to the caller identified by `app.user_id` (set per transaction).
--   * app_service: used by the worker functions; its own policies let it see every tenant.
-- Roles are cluster-wide, so they are created only when missing (and a concurrent creation by a
-- parallel migration of another database is not an error). Deployments grant these NOLOGIN roles
-- to their login users (`GRANT app_api TO api_user`), which keeps passwords out of migrations.
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_api NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE app_service NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;

CREATE SCHEMA app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO app_api, app_service;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO app_api, app_service;

-- The caller's user id, set by the API with set_config('app.user_id', ..., true) at the start of
-- every transaction. NULL when unset, which no policy matches.
CREATE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = ''
AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE TABLE users (
    id           uuid PRIMARY KEY,
    issuer       text NOT NULL,
    subject      text NOT NULL,
    email        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_issuer_subject_key UNIQUE (issuer, subject)
);
CREATE INDEX users_email_idx ON users (lower(email));

CREATE TYPE member_role AS ENUM ('owner', 'admin', 'member', 'viewer');
