//! The shipped JSON Schema must be the one the code derives, so docs never drift.
//! Regenerate with `UPDATE_SCHEMA=1 cargo test --test schema`.

#[test]
fn shipped_schema_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    let derived = serde_json::to_string_pretty(&overlaybench::report::schema::json_schema())
        .expect("schema")
        + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &derived).expect("write schema");
    }
    let shipped = std::fs::read_to_string(&path).expect("docs/report.schema.json exists");
    assert_eq!(
        shipped, derived,
        "docs/report.schema.json is stale: rerun with UPDATE_SCHEMA=1"
    );
}
