//! The baseline schema (migrations/, 2026-12-07) replaced every migration before it; those were
//! applied to development databases only. Such a database is told plainly to be recreated
//! instead of failing on sqlx's "migration was previously applied but is missing".

use integration_tests::owner_pool;
use shared::db::migrate::{MigrationError, run};

#[tokio::test]
async fn a_database_migrated_before_the_baseline_is_told_to_be_recreated() {
    let pool = owner_pool().await;
    run(&pool).await.expect("a database on the baseline migrates again as a no-op");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (20261122000001, 'roles and identity', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let refused = run(&pool).await.expect_err("a pre-baseline migration is not carried across");
    assert!(matches!(refused, MigrationError::BeforeBaseline(20261122000001)), "{refused:?}");
    assert!(refused.to_string().contains("scripts/dev.sh --reset"), "{refused}");
}
