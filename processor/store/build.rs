//! The migrations in `sql/` are embedded by `sqlx::migrate!`; a new or changed file there
//! must rebuild this crate, which Cargo does not know by itself.
fn main() {
    println!("cargo:rerun-if-changed=../../sql");
}
