-- The platform operators' role (the admin function): reads every tenant's data by its own
-- policies, never writes it, never sees a secret. Not BYPASSRLS, not the service role.
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_admin NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA public, app TO app_admin;

-- Every table, read-only; the columns that hold secrets or tokens are left out.
DO $$
DECLARE
    t record;
    hidden text[];
    visible text;
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE '\_sqlx%'
    LOOP
        hidden := CASE t.relname
            WHEN 'api_keys' THEN ARRAY['secret_hash']
            WHEN 'invitations' THEN ARRAY['token_hash']
            WHEN 'emails' THEN ARRAY['params']
            WHEN 'webhook_endpoints' THEN ARRAY['secret', 'previous_secret']
            ELSE ARRAY[]::text[]
        END;
        IF cardinality(hidden) = 0 THEN
            EXECUTE format('GRANT SELECT ON public.%I TO app_admin', t.relname);
        ELSE
            SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO visible
            FROM pg_attribute a
            WHERE a.attrelid = format('public.%I', t.relname)::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attname <> ALL (hidden);
            EXECUTE format('GRANT SELECT (%s) ON public.%I TO app_admin', visible, t.relname);
        END IF;
        EXECUTE format('CREATE POLICY admin_read ON public.%I FOR SELECT TO app_admin USING (true)', t.relname);
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION app.effective_plan(uuid) TO app_admin;
