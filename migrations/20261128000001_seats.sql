-- Seats: a plan priced per seat, whose Stripe subscription quantity follows the workspace's
-- billable seats (members and pending member invitations).
--
-- The API cannot call Stripe, and must not wait on it, so a change of seats is recorded by a
-- trigger in the changing transaction (no path can skip it) as a new wanted version of the
-- workspace's seat count; the billing reconciliation's frequent pass puts every workspace whose
-- wanted version is ahead of the synced one on the billing queue, and the billing worker sets
-- the quantity in Stripe to the count it reads then, with an idempotency key of that version.
-- However many changes race, the last sync reads the last count, so the quantity converges.

ALTER TABLE plans ADD COLUMN per_seat boolean NOT NULL DEFAULT false;
-- For a per-seat plan, max_members is the most seats it sells.
INSERT INTO plans (id, max_projects, max_members, ai_runs_per_month, requests_per_minute, expensive_per_minute, per_seat)
VALUES ('team', NULL, 200, 2000, 3000, 150, true);

-- The plan item of the subscription and its quantity, as Stripe last said.
ALTER TABLE subscriptions ADD COLUMN stripe_item_id text;
ALTER TABLE subscriptions ADD COLUMN quantity integer;

CREATE TABLE seat_syncs (
    workspace_id    uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    -- Raised by every change of the workspace's billable seats.
    wanted_version  bigint NOT NULL DEFAULT 1,
    -- The wanted version whose count Stripe was last given.
    synced_version  bigint NOT NULL DEFAULT 0,
    -- The quantity last sent to Stripe (its event may still be on the way).
    synced_quantity integer,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    -- When the frequent pass last put it on the queue; it waits a while before doing so again.
    enqueued_at     timestamptz,
    synced_at       timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);
CREATE INDEX seat_syncs_pending_idx ON seat_syncs (requested_at) WHERE wanted_version > synced_version;

ALTER TABLE seat_syncs ENABLE ROW LEVEL SECURITY;
ALTER TABLE seat_syncs FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON seat_syncs TO app_service;
GRANT SELECT, INSERT, UPDATE (wanted_version, synced_version, synced_quantity, requested_at, enqueued_at, synced_at,
                              attempts, last_error) ON seat_syncs TO app_billing;
CREATE POLICY service_all ON seat_syncs TO app_service USING (true) WITH CHECK (true);
CREATE POLICY billing_all ON seat_syncs TO app_billing USING (true) WITH CHECK (true);
-- Operators see a workspace's seat sync on its overview.
GRANT SELECT ON seat_syncs TO app_admin;
CREATE POLICY admin_read ON seat_syncs FOR SELECT TO app_admin USING (true);
-- A workspace's export holds it, as every table with a workspace.
GRANT SELECT ON seat_syncs TO app_exporter;
CREATE POLICY export_read ON seat_syncs FOR SELECT TO app_exporter
    USING (workspace_id = (SELECT app.export_workspace()));

-- A workspace's billable seats: its members and its pending (unexpired) member invitations; at
-- least one, as a subscription's quantity must be. The definer's rights let the billing worker
-- count without reading members or invitations; the API asks through
-- app.workspace_billable_seats, for its caller's own workspaces only.
CREATE FUNCTION app.billable_seats(p_workspace uuid) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT greatest(1, (
        (SELECT count(*) FROM public.workspace_members m WHERE m.workspace_id = p_workspace)
      + (SELECT count(*) FROM public.invitations i
         WHERE i.workspace_id = p_workspace AND i.role IS NOT NULL
           AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > pg_catalog.now())
    )::integer)
$$;
REVOKE EXECUTE ON FUNCTION app.billable_seats(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.billable_seats(uuid) TO app_service, app_billing;
ALTER FUNCTION app.billable_seats(uuid) OWNER TO app_service;

-- The count for the API (checkout, plan changes, the billing summary, where members do not see
-- the invitations themselves): for the caller's own workspaces only, NULL for any other.
CREATE FUNCTION app.workspace_billable_seats(p_workspace uuid) RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member,viewer}')) THEN
        RETURN NULL;
    END IF;
    RETURN app.billable_seats(p_workspace);
END
$$;
REVOKE EXECUTE ON FUNCTION app.workspace_billable_seats(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.workspace_billable_seats(uuid) TO app_api;
ALTER FUNCTION app.workspace_billable_seats(uuid) OWNER TO app_service;

-- Raises the wanted version of a workspace on a per-seat plan (a live subscription of one).
CREATE FUNCTION app.want_seat_sync(p_workspace uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    INSERT INTO public.seat_syncs AS s (workspace_id)
    SELECT sub.workspace_id
    FROM public.subscriptions sub
    JOIN public.plans p ON p.id = sub.plan_id
    -- The workspace itself may be going (a cascade from its deletion): nothing to sync then.
    JOIN public.workspaces w ON w.id = sub.workspace_id
    WHERE sub.workspace_id = p_workspace AND p.per_seat
      AND sub.status NOT IN ('canceled', 'incomplete_expired')
    ON CONFLICT (workspace_id) DO UPDATE
        SET wanted_version = s.wanted_version + 1, requested_at = pg_catalog.now();
END
$$;
REVOKE EXECUTE ON FUNCTION app.want_seat_sync(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.want_seat_sync(uuid) TO app_billing;
ALTER FUNCTION app.want_seat_sync(uuid) OWNER TO app_service;

CREATE FUNCTION app.seats_changed() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A portal invitation takes no seat.
        IF TG_TABLE_NAME = 'invitations' AND OLD.role IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM app.want_seat_sync(OLD.workspace_id);
    ELSE
        IF TG_TABLE_NAME = 'invitations' AND NEW.role IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM app.want_seat_sync(NEW.workspace_id);
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION app.seats_changed() FROM PUBLIC;
ALTER FUNCTION app.seats_changed() OWNER TO app_service;

CREATE TRIGGER workspace_members_seats AFTER INSERT OR DELETE ON workspace_members
    FOR EACH ROW EXECUTE FUNCTION app.seats_changed();
CREATE TRIGGER invitations_seats AFTER INSERT OR DELETE ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.seats_changed();
-- Accepted, revoked, or its expiry moved (a resent invitation comes back to life).
CREATE TRIGGER invitations_seats_update AFTER UPDATE ON invitations
    FOR EACH ROW
    WHEN (OLD.accepted_at IS DISTINCT FROM NEW.accepted_at OR OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION app.seats_changed();
