// `sqlx::migrate!` embeds the migrations at compile time; a new or edited migration must
// rebuild the crate that embeds them.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
