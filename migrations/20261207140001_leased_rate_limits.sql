-- Rate limits by lease. The buckets stay the shared truth, but a function instance no longer
-- writes to them on every request: it takes a lease of several tokens in one statement, spends
-- them in memory, and hands back what it did not spend when it takes its next lease. The lease
-- follows what is left: a tenth of the emptiest bucket's tokens (at most `p_most`), one token
-- near the limit, so the tokens other instances hold, the most a caller can be refused early,
-- stay small where they matter. Who is counted, and against which buckets, is unchanged from
-- `app.take_rate_limit`, which this replaces.

DROP FUNCTION app.take_rate_limit(uuid, uuid, bytea, uuid, boolean);

CREATE FUNCTION app.lease_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean, p_returned integer, p_most integer) RETURNS TABLE(rate_policy text, quota integer, remaining integer, reset_seconds integer, allowed boolean, retry_after integer, granted integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    ws uuid := p_workspace;
    key_limit integer;
    plan_limit integer;
    expensive_limit integer;
    names text[];
    buckets text[];
    limits integer[];
    -- Each bucket's arrival time once the returned tokens are back, no earlier than now.
    starts timestamptz[] := '{}';
    window_length constant interval := interval '60 seconds';
    moment constant timestamptz := pg_catalog.now();
    -- No more than a lease may hold: handing back cannot lift a limit.
    returned constant integer := least(greatest(coalesce(p_returned, 0), 0), greatest(p_most, 1));
    emission interval;
    current_tat timestamptz;
    start timestamptz;
    next_tat timestamptz;
    fewest_left numeric;
    longest_wait interval := interval '0';
    i integer;
BEGIN
    IF p_user IS NULL THEN
        RETURN;
    END IF;
    -- A person who is not a member spends nothing of the team's budget: a client contact counts
    -- against their own (the personal bucket, at the free plan's rate), and only while the
    -- workspace's plan has the portal; a stranger, or a contact refused for the plan, spends
    -- nothing at all.
    IF p_key IS NULL AND ws IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.workspace_members m WHERE m.workspace_id = ws AND m.user_id = p_user) THEN
        IF NOT EXISTS (SELECT 1 FROM public.client_contacts c WHERE c.workspace_id = ws AND c.user_id = p_user)
           OR NOT (SELECT f.enabled FROM app.feature_in_force(ws, 'client_portal') f) THEN
            RETURN;
        END IF;
        ws := NULL;
    END IF;
    -- A key's last_used_at is a logged write, whose commit need not wait for a flush; the bucket
    -- table is unlogged and writes no WAL.
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    IF p_key IS NOT NULL THEN
        -- Only a key that works is counted: one refused (revoked, expired, its creator gone or
        -- demoted, its plan without API access) spends nothing.
        SELECT a.workspace_id, a.requests_per_minute INTO ws, key_limit FROM public.api_keys a
        WHERE a.id = p_key AND a.secret_hash = p_secret_hash AND a.revoked_at IS NULL
          AND (a.expires_at IS NULL OR a.expires_at > moment)
          AND app.key_creator_still_entitled(a.workspace_id, a.created_by, a.role)
          AND (SELECT f.enabled FROM app.feature_in_force(a.workspace_id, 'api_access') f);
        IF NOT FOUND OR (p_workspace IS NOT NULL AND p_workspace <> ws) THEN
            RETURN;
        END IF;
        UPDATE public.api_keys a SET last_used_at = moment
        WHERE a.id = p_key AND (a.last_used_at IS NULL OR a.last_used_at < moment - interval '1 minute');
    END IF;
    SELECT (SELECT l.value FROM app.limit_in_force(ws, 'requests_per_minute', p.requests_per_minute) l),
           (SELECT l.value FROM app.limit_in_force(ws, 'expensive_per_minute', p.expensive_per_minute) l)
    INTO plan_limit, expensive_limit
    FROM public.plans p
    WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(ws) f);
    IF ws IS NULL THEN
        -- A person's own bucket (outside any workspace, or a client contact), at the free
        -- plan's rate.
        names := ARRAY['user'];
        buckets := ARRAY['user:' || p_user];
        limits := ARRAY[plan_limit];
    ELSE
        names := ARRAY['workspace'];
        buckets := ARRAY['workspace:' || ws];
        limits := ARRAY[plan_limit];
        IF p_key IS NOT NULL THEN
            names := names || 'api_key'::text;
            buckets := buckets || ('api_key:' || p_key);
            limits := limits || least(coalesce(key_limit, plan_limit), plan_limit);
        END IF;
        IF p_expensive THEN
            names := names || 'expensive'::text;
            buckets := buckets || ('expensive:' || ws);
            limits := limits || expensive_limit;
        END IF;
    END IF;
    -- Each bucket locked in turn, always in the same order (so two leases never wait on each
    -- other crosswise), to the end of this short transaction. A missing one is created first, so
    -- concurrent first leases queue on its row like the others.
    FOR i IN 1 .. pg_catalog.array_length(buckets, 1) LOOP
        SELECT r.tat INTO current_tat FROM public.rate_limit_buckets r WHERE r.bucket = buckets[i] FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO public.rate_limit_buckets (bucket, tat) VALUES (buckets[i], '-infinity')
            ON CONFLICT (bucket) DO NOTHING;
            SELECT r.tat INTO current_tat FROM public.rate_limit_buckets r WHERE r.bucket = buckets[i] FOR UPDATE;
        END IF;
        -- At least a microsecond (interval precision), whatever the limit.
        emission := greatest(window_length / limits[i], interval '1 microsecond');
        start := greatest(current_tat - returned * emission, moment);
        starts := starts || start;
        fewest_left := least(fewest_left, pg_catalog.floor(extract(epoch FROM moment + window_length - start)
                                                           / extract(epoch FROM emission)));
        longest_wait := greatest(longest_wait, start + emission - moment - window_length);
    END LOOP;
    granted := CASE WHEN fewest_left >= 1 THEN least(greatest(p_most, 1), greatest(1, pg_catalog.floor(fewest_left / 10)))::integer
                    ELSE 0 END;
    allowed := granted > 0;
    -- Refused, nothing is written: tokens handed back would have left at least one.
    retry_after := CASE WHEN allowed THEN 0 ELSE greatest(1, pg_catalog.ceil(extract(epoch FROM longest_wait)))::integer END;
    FOR i IN 1 .. pg_catalog.array_length(buckets, 1) LOOP
        emission := greatest(window_length / limits[i], interval '1 microsecond');
        next_tat := starts[i] + granted * emission;
        IF allowed THEN
            UPDATE public.rate_limit_buckets r SET tat = next_tat WHERE r.bucket = buckets[i];
        END IF;
        rate_policy := names[i];
        quota := limits[i];
        remaining := greatest(0, pg_catalog.floor(extract(epoch FROM window_length - (next_tat - moment))
                                                  / extract(epoch FROM emission)))::integer;
        reset_seconds := pg_catalog.ceil(extract(epoch FROM next_tat - moment))::integer;
        RETURN NEXT;
    END LOOP;
END
$$;
ALTER FUNCTION app.lease_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean, p_returned integer, p_most integer) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.lease_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean, p_returned integer, p_most integer) FROM PUBLIC;
GRANT ALL ON FUNCTION app.lease_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean, p_returned integer, p_most integer) TO app_api;
COMMENT ON FUNCTION app.lease_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean, p_returned integer, p_most integer) IS
    'Hands back p_returned unspent tokens of the caller''s previous lease, then leases up to p_most tokens (a tenth of what the emptiest bucket has left, at least one) from every bucket that applies, or none: granted 0 and allowed false when one is spent.';
