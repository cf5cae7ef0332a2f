//! Rebuilds when a migration is added or changed: `sqlx::migrate!` reads the
//! migrations folders while compiling, and cargo does not watch a folder for
//! new files unless told (as `sqlx migrate build-script` writes).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
