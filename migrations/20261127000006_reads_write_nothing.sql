-- A request by a known user whose e-mail is unchanged writes nothing: no transaction id, no WAL,
-- no lock on the user's row (so one user's concurrent requests do not queue on it). The user
-- row is written only when it is missing or the token carries a new e-mail.
CREATE OR REPLACE FUNCTION app.ensure_user(p_id uuid, p_issuer text, p_subject text, p_email text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    IF p_id IS DISTINCT FROM app.current_user_id() THEN
        RAISE EXCEPTION 'ensure_user may only create the caller' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM public.users u
               WHERE u.id = p_id AND (p_email IS NULL OR u.email IS NOT DISTINCT FROM p_email)) THEN
        RETURN;
    END IF;
    INSERT INTO public.users AS u (id, issuer, subject, email)
    VALUES (p_id, p_issuer, p_subject, p_email)
    ON CONFLICT (id) DO UPDATE
        SET email = excluded.email, updated_at = now()
        WHERE excluded.email IS NOT NULL AND u.email IS DISTINCT FROM excluded.email;
END
$$;
