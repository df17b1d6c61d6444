//! Exports at scale: on the benchmark database (`saas_bench`, seeded by bench/bench-rls.sh),
//! exports the largest tenant (20,000 projects, 100,000 deliverables, 200,000 comments) and a
//! typical one (40 projects) to moto's S3 with the real export worker, and prints rows, archive
//! size, time, rows per second and the process's peak resident memory after each, so that what
//! an export holds in memory can be compared with what it writes. Not part of the test suite:
//!
//!   bench/bench-export.sh

use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

/// The process's peak resident set so far (Linux), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn bench_uuid(kind: u32, n: u32) -> Uuid {
    format!("{kind:08x}-0000-4000-8000-{n:012x}").parse().expect("a bench id")
}

async fn export(owner: &PgPool, exporter: &export_worker::Exporter, label: &str, workspace: Uuid) {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO workspace_exports (id, workspace_id) VALUES ($1, $2)")
        .bind(id)
        .bind(workspace)
        .execute(owner)
        .await
        .expect("an export request");
    let started = Instant::now();
    let outcome = exporter.export(&id.to_string()).await.expect("the export");
    let elapsed = started.elapsed();
    let export_worker::Outcome::Exported { rows, bytes } = outcome else { panic!("{outcome:?}") };
    println!(
        "{label:<28} {rows:>9} rows {:>8.1} MiB {:>7.2} s {:>9.0} rows/s   peak RSS {:>6.1} MiB",
        bytes as f64 / 1_048_576.0,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64().max(1e-9),
        peak_rss_mib()
    );
}

#[tokio::main]
async fn main() {
    let owner_url = std::env::var("BENCH_OWNER_URL").expect("BENCH_OWNER_URL (bench/bench-export.sh sets it)");
    let exporter_url = std::env::var("BENCH_EXPORTER_URL").expect("BENCH_EXPORTER_URL");
    let owner = PgPool::connect(&owner_url).await.expect("connect as the owner");
    let config = shared::config::DatabaseConfig {
        url: exporter_url.into(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(30),
        host_override: None,
    };
    integration_tests::local_aws().await;
    let bucket = integration_tests::create_bucket("bench-exports").await;
    let exporter = export_worker::Exporter {
        pool: shared::db::connect_as(&config, "bench-export").await.expect("connect as app_exporter"),
        s3: shared::exports::client().await,
        bucket,
        queue: None,
        part_bytes: 8 * 1024 * 1024,
        files_bucket: None,
    };
    println!("peak RSS before any export: {:.1} MiB", peak_rss_mib());
    export(&owner, &exporter, "typical tenant (40 projects)", bench_uuid(2, 2)).await;
    export(&owner, &exporter, "another typical tenant", bench_uuid(2, 3)).await;
    export(&owner, &exporter, "largest tenant (20,000)", bench_uuid(2, 1)).await;
}
