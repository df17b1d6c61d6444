//! What refusing a stranger's webhook request costs, against a real delivery, in CPU time.
//!
//! The attack: a current timestamp, 900 `v1` values and a 500 KiB body. Also an attack within
//! every bound (the most signatures considered, all wrong, over the largest body the function
//! reads) and a genuine 4 KiB delivery. Each case runs many times on this one thread; the CPU
//! time is the process's own (user + system, from /proc/self/stat) divided by the runs.
//! Not part of the test suite:
//!
//!   cargo run --release -p bench --bin bench-signature [RUNS]      (default 2000)

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use stripe_webhook::signature::MAX_SIGNATURES;
use stripe_webhook::{SignatureError, Verifier};

/// The process's CPU time so far in seconds (utime + stime, in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// A signature as Stripe makes it: HMAC-SHA256 of `"<t>.<body>"`, in hex.
fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// The verifier this one replaced, for the side-by-side figure: one HMAC over the whole body
/// for every signature and every secret, however many signatures the header carries.
fn previous_verifier(secrets: &[&str], payload: &[u8], header: &str) -> Result<(), SignatureError> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut parts = header.split(',');
    let timestamp = parts.next().and_then(|t| t.strip_prefix("t=")).ok_or(SignatureError::Malformed)?;
    let signatures: Vec<Vec<u8>> =
        parts.filter_map(|p| p.strip_prefix("v1=")).filter_map(|v| hex::decode(v).ok()).collect();
    for secret in secrets {
        for signature in &signatures {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
            mac.update(format!("{timestamp}.").as_bytes());
            mac.update(payload);
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

fn measure(
    name: &str,
    runs: u32,
    expected: Result<(), SignatureError>,
    mut verify: impl FnMut() -> Result<(), SignatureError>,
) {
    assert_eq!(verify(), expected, "{name}");
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for _ in 0..runs {
        std::hint::black_box(verify()).ok();
    }
    let cpu_us = (cpu_seconds() - cpu) * 1e6 / f64::from(runs);
    let wall_us = wall.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
    println!("| {name} | {expected:?} | {cpu_us:.1} µs | {wall_us:.1} µs |");
}

fn main() {
    let runs: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    // Two secrets, as while one is rolled: the most HMACs a request can cost.
    let secrets = ["whsec_current_0123456789abcdef", "whsec_previous_0123456789abcdef"];
    let verifier = Verifier::new(secrets.iter().map(|s| SecretString::from(s.to_string())).collect(), 300);
    let big_body = vec![b'x'; 500 * 1024];
    let garbage = |n: usize| (0..n).map(|i| format!(",v1={i:064x}")).collect::<String>();

    println!("| request | answer | CPU per request | wall per request |\n|---|---|---|---|");
    let attack = format!("t={now}{}", garbage(900));
    measure("900 v1 values, 500 KiB body", runs, Err(SignatureError::Malformed), || {
        verifier.verify(&big_body, Some(&attack), now)
    });
    measure("the same, previous verifier (one HMAC per value and secret)", 3, Err(SignatureError::Mismatch), || {
        previous_verifier(&secrets, &big_body, &attack)
    });
    let bounded = format!("t={now}{}", garbage(MAX_SIGNATURES));
    measure(&format!("{MAX_SIGNATURES} wrong v1 values, 500 KiB body"), runs, Err(SignatureError::Mismatch), || {
        verifier.verify(&big_body, Some(&bounded), now)
    });
    let overflow = format!("t=-9223372036854775808{}", garbage(1));
    measure("t = i64::MIN", runs, Err(SignatureError::OutsideTolerance), || {
        verifier.verify(&big_body, Some(&overflow), now)
    });
    let event = format!(r#"{{"id":"evt_bench","type":"invoice.paid","data":"{}"}}"#, "y".repeat(4000));
    let genuine = format!("t={now},v1={}", sign(secrets[1], now, event.as_bytes()));
    measure("genuine 4 KiB delivery (previous secret)", runs, Ok(()), || {
        verifier.verify(event.as_bytes(), Some(&genuine), now)
    });
}
