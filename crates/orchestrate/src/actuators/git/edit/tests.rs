use proptest::prelude::*;
use serde_json::json;

use super::*;

fn tfvars(text: &str, name: &str, value: &str) -> Edit {
    set(Format::Tfvars, Some(text), name, value).unwrap()
}

#[test]
fn json_sets_a_nested_key_creating_objects_and_reports_the_previous_value() {
    let edit = set(Format::Json, Some("{\"b\": 1, \"a\": {\"x\": \"old\"}}"), "a.x", "new").unwrap();
    assert_eq!(edit.previous, json!("old"));
    assert_eq!(edit.text.unwrap(), "{\n  \"a\": {\n    \"x\": \"new\"\n  },\n  \"b\": 1\n}\n");

    let edit = set(Format::Json, None, "s3.active.provider", "standby").unwrap();
    assert_eq!(edit.previous, Value::Null);
    let doc: Value = serde_json::from_str(&edit.text.unwrap()).unwrap();
    assert_eq!(doc, json!({"s3": {"active": {"provider": "standby"}}}));
}

#[test]
fn json_with_the_value_already_is_unchanged() {
    let edit = set(Format::Json, Some("{\"a\":{\"x\":\"v\"}}"), "a.x", "v").unwrap();
    assert_eq!(edit, Edit { previous: json!("v"), text: None });
}

#[test]
fn json_refuses_what_it_cannot_edit() {
    assert!(set(Format::Json, Some("{\"a\": 3}"), "a.x", "v").unwrap_err().to_string().contains("a is not an object"));
    assert!(set(Format::Json, Some("[1]"), "a", "v").unwrap_err().to_string().contains("not a JSON object"));
    assert!(set(Format::Json, Some("{oops"), "a", "v").unwrap_err().to_string().contains("not valid JSON"));
    assert!(Format::Json.check_key("a..b").is_err());
    assert!(Format::Tfvars.check_key("1abc").is_err());
    assert!(Format::Tfvars.check_key("active_provider").is_ok());
    assert_eq!(Format::of("vars.tfvars.json"), Some(Format::Json));
    assert_eq!(Format::of("prod.auto.tfvars"), Some(Format::Tfvars));
    assert_eq!(Format::of("vars.yaml"), None);
}

#[test]
fn tfvars_replaces_the_assignment_and_keeps_everything_else() {
    let text = "# which S3 provider serves the app\nregion   = \"eu-west-1\"\nactive_provider = \"primary\" # set by cutover\n\n// end\n";
    let edit = tfvars(text, "active_provider", "standby");
    assert_eq!(edit.previous, json!("primary"));
    assert_eq!(
        edit.text.unwrap(),
        "# which S3 provider serves the app\nregion   = \"eu-west-1\"\nactive_provider = \"standby\" # set by cutover\n\n// end\n"
    );
    assert_eq!(tfvars(text, "region", "eu-west-1").text, None);
}

#[test]
fn tfvars_ignores_keys_inside_maps_comments_and_heredocs() {
    let text = "tags = {\n  active_provider = \"inner\"\n}\n/* active_provider = \"c\"\n*/\nnote = <<EOT\nactive_provider = \"h\"\nEOT\nactive_provider = \"top\"\n";
    let edit = tfvars(text, "active_provider", "standby");
    assert_eq!(edit.previous, json!("top"));
    let out = edit.text.unwrap();
    assert!(out.contains("  active_provider = \"inner\"\n"));
    assert!(out.contains("/* active_provider = \"c\"\n"));
    assert!(out.contains("\nactive_provider = \"h\"\n"));
    assert!(out.ends_with("\nactive_provider = \"standby\"\n"));
}

#[test]
fn tfvars_appends_an_absent_variable_and_quotes_bare_values() {
    let edit = tfvars("region = \"x\"", "active_provider", "standby");
    assert_eq!(edit.previous, Value::Null);
    assert_eq!(edit.text.unwrap(), "region = \"x\"\nactive_provider = \"standby\"\n");
    let edit = tfvars("count = 3\r\n", "count", "3");
    assert_eq!(edit.previous, json!(3));
    assert_eq!(edit.text.unwrap(), "count = \"3\"\r\n");
    assert_eq!(tfvars("", "a", "b").text.unwrap(), "a = \"b\"\n");
}

#[test]
fn tfvars_refuses_lists_maps_and_expressions() {
    for text in ["zones = [\n\"a\"\n]\n", "zones = {}\n", "zones = \"a\" + \"b\"\n", "zones = \"open\n"] {
        assert!(set(Format::Tfvars, Some(text), "zones", "x").is_err(), "{text:?}");
    }
}

#[test]
fn tfvars_escapes_and_reads_back_special_characters() {
    let value = "a \"quoted\" \\ ${not.interpolated} %{x}\nline";
    let out = tfvars("", "v", value).text.unwrap();
    assert_eq!(out, "v = \"a \\\"quoted\\\" \\\\ $${not.interpolated} %%{x}\\nline\"\n");
    assert_eq!(tfvars(&out, "v", value), Edit { previous: json!(value), text: None });
}

fn other_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z_]{0,6}".prop_map(|n| format!("{n}_x = \"v\"")),
        "[ -~]{0,20}".prop_map(|c| format!("# {c}")),
        Just(String::new()),
        Just("map = {\n  target = \"inner\"\n}".to_string()),
    ]
}

proptest! {
    /// Whatever the other lines, setting `target` twice changes the file
    /// once, reads the value back, and leaves every other line alone.
    #[test]
    fn tfvars_edit_is_idempotent_and_local(
        lines in proptest::collection::vec(other_line(), 0..8),
        at in 0usize..8,
        old in "[ -~]{0,12}",
        new in "[ -~\n\t]{0,12}",
        present in any::<bool>(),
    ) {
        let mut lines = lines;
        if present {
            let i = at.min(lines.len());
            lines.insert(i, format!("target = \"{}\"", hcl_escape(&old)));
        }
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let first = tfvars(&text, "target", &new);
        let expected_previous = if present { json!(old) } else { Value::Null };
        prop_assert_eq!(&first.previous, &expected_previous);
        let after = first.text.clone().unwrap_or(text.clone());
        let second = tfvars(&after, "target", &new);
        prop_assert_eq!(second, Edit { previous: json!(new), text: None });
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("target")).collect();
        let kept_after: Vec<&str> = after.lines().filter(|l| !l.starts_with("target")).collect();
        prop_assert_eq!(kept, kept_after);
    }
}
