//! The database's own guarantees: every tenant table has row-level security enabled and forced,
//! the API role cannot get around it, and the policy helpers are safe and cheap.

use integration_tests::{database, owner_pool};

#[tokio::test]
async fn every_table_with_a_workspace_id_has_forced_row_level_security() {
    let pool = owner_pool().await;
    let tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped)
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() >= 7, "expected the tenant tables, found {tables:?}");
    let unprotected: Vec<_> = tables.iter().filter(|(_, enabled, forced)| !(*enabled && *forced)).collect();
    assert!(unprotected.is_empty(), "tables without ENABLE + FORCE ROW LEVEL SECURITY: {unprotected:?}");
}

#[tokio::test]
async fn every_application_table_has_forced_row_level_security() {
    let pool = owner_pool().await;
    let unprotected: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> '_sqlx_migrations'
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unprotected.is_empty(), "{unprotected:?}");
}

#[tokio::test]
async fn the_api_role_cannot_bypass_row_level_security() {
    let pool = owner_pool().await;
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'app_api'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!superuser && !bypass);
    let inherited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_roles r
         WHERE pg_has_role('app_api', r.oid, 'MEMBER') AND (r.rolsuper OR r.rolbypassrls)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(inherited, 0, "app_api is a member of a role that bypasses RLS");
    let owned: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = 'app_api'::regrole)
              + (SELECT count(*) FROM pg_proc WHERE proowner = 'app_api'::regrole)
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = 'app_api'::regrole)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(owned, 0, "table owners skip RLS unless forced; the API role must own nothing");
}

#[tokio::test]
async fn the_api_role_connects_as_itself_in_the_test_setup() {
    let pool = integration_tests::api_pool().await;
    let user: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&pool).await.unwrap();
    assert_eq!(user, "app_api");
    assert!(database().api_url.contains("app_api"));
}

#[tokio::test]
async fn policy_helpers_are_inlinable_and_every_definer_pins_its_search_path() {
    let pool = owner_pool().await;
    let helpers: Vec<(String, String, bool, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT p.proname::text, p.provolatile::text, p.prosecdef, p.proconfig
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'app' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let find = |name: &str| helpers.iter().find(|h| h.0 == name).unwrap_or_else(|| panic!("{name} missing"));
    // What the policies call reads the entered workspace's settings: plain STABLE SQL that
    // PostgreSQL inlines (no SECURITY DEFINER, no SET clause), run once per statement.
    let policy_helpers = [
        "current_user_id",
        "entered_workspace",
        "entered_project",
        "member_workspace_ids",
        "workspaces_with_role",
        "contact_client_ids",
        "contact_workspace_ids",
    ];
    for name in policy_helpers {
        let (_, volatility, definer, config) = find(name);
        assert_eq!(volatility, "s", "{name} must be STABLE so it can run once per query");
        assert!(!definer && config.is_none(), "{name} must be inlinable: no SECURITY DEFINER, no SET");
    }
    // The plan and overrides rules, read inside the opening's and the limiter's SECURITY DEFINER
    // functions: one-row SQL table functions PostgreSQL inlines there (a nested SECURITY DEFINER
    // call is not).
    let nobody = "'00000000-0000-0000-0000-000000000000'::uuid";
    for (name, arguments) in [
        ("plan_in_force", nobody.to_owned()),
        ("overrides_in_force", nobody.to_owned()),
        ("override_in_force", format!("{nobody}, 'requests_per_minute'")),
        ("limit_in_force", format!("{nobody}, 'requests_per_minute', 60")),
    ] {
        let (_, volatility, definer, config) = find(name);
        assert_eq!(volatility, "s", "{name} must be STABLE to be inlined");
        assert!(!definer && config.is_none(), "{name} must be inlinable: no SECURITY DEFINER, no SET");
        let plan: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN SELECT * FROM app.{name}({arguments})")))
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(!plan.iter().any(|line| line.contains("Function Scan")), "{name} was not inlined: {plan:?}");
    }
    // Without an entered workspace they fall back to these, which read membership tables
    // without recursing into their policies.
    for name in ["stored_member_workspace_ids", "stored_workspaces_with_role", "stored_contact_client_ids"] {
        let (_, volatility, definer, _) = find(name);
        assert_eq!(volatility, "s", "{name} must be STABLE");
        assert!(definer, "{name} reads membership tables without recursing into their policies");
    }
    for (name, _, definer, config) in &helpers {
        let pinned = config.as_ref().is_some_and(|c| c.iter().any(|s| s.starts_with("search_path=")));
        assert!(!definer || pinned, "{name} is SECURITY DEFINER and must pin search_path");
    }
    let public_exec: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'app' AND has_function_privilege('public', p.oid, 'EXECUTE')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(public_exec, 0, "app functions are granted to app_api/app_service only");
}

#[tokio::test]
async fn policies_call_helpers_through_a_scalar_subquery() {
    let pool = owner_pool().await;
    let policies: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT tablename::text, policyname::text, qual, with_check FROM pg_policies WHERE schemaname = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(policies.len() > 20);
    for (table, policy, qual, check) in policies {
        for expression in [qual, check].into_iter().flatten() {
            // Every helper call must sit inside "(SELECT app.helper(...))" so it becomes an InitPlan.
            let bare =
                expression.match_indices("app.").filter(|(at, _)| !expression[..*at].ends_with("SELECT ")).count();
            assert_eq!(bare, 0, "{table}.{policy} calls a helper per row: {expression}");
        }
    }
}

#[tokio::test]
async fn every_column_a_policy_filters_on_leads_an_index() {
    let pool = owner_pool().await;
    // From the catalog: every column a policy expression references (pg_depend records them),
    // and every tenant table's workspace id. Booleans and enums are skipped: they only ever
    // narrow rows an indexed column has already found. INSERT policies are skipped too: their
    // check reads the new row and never filters a scan.
    let mut filtered: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT c.relname::text, a.attname::text
         FROM pg_policy p
         JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                         AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
         JOIN pg_class c ON c.oid = d.refobjid
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
         JOIN pg_type t ON t.oid = a.atttypid
         WHERE t.typname <> 'bool' AND t.typtype <> 'e' AND p.polcmd <> 'a'
         UNION
         SELECT c.relname::text, 'workspace_id' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'workspace_id')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // Columns the policy helpers (SECURITY DEFINER functions, invisible to pg_depend) filter on.
    for (table, column) in
        [("workspace_members", "user_id"), ("client_contacts", "user_id"), ("client_contacts", "client_id")]
    {
        filtered.push((table.to_owned(), column.to_owned()));
    }
    assert!(filtered.len() >= 25, "expected the policies' columns, found {filtered:?}");
    for (table, column) in filtered {
        let indexed: bool = sqlx::query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                 WHERE i.indrelid = $1::regclass AND a.attname = $2)",
        )
        .bind(&table)
        .bind(&column)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(indexed, "{table}.{column} is filtered by a policy but leads no index");
    }
}
