use serde_json::json;

use super::*;

fn vars(reason: &str, target: &str) -> Vars {
    Vars {
        incident: "inc-1".into(),
        backend: "primary".into(),
        source: "primary".into(),
        target: target.into(),
        reason: reason.into(),
        kind: "failover".into(),
    }
}

const HOSTILE: &str = "it's \"down\"\r\nX-Evil: 1\n{{ target }} }} {\\ \u{0}end";

#[test]
fn plain_values_are_inserted_as_they_are_without_nul() {
    let v = vars(HOSTILE, "secondary");
    assert_eq!(render_str("to {{target}} ({{ incident.id }})", &v).unwrap(), "to secondary (inc-1)");
    assert_eq!(render_str("{{ reason }}", &v).unwrap(), HOSTILE.replace('\0', ""));
    assert!(render_str("{{ target", &v).unwrap_err().to_string().contains("unclosed"));
    assert!(render_str("{{ nope }}", &v).unwrap_err().to_string().contains("unknown template variable"));
    // `}}` outside a template is text: JSON bodies with nested objects need it.
    assert_eq!(render_str("{\"a\": {\"b\": \"{{ target }}\"}}", &v).unwrap(), "{\"a\": {\"b\": \"secondary\"}}");
}

#[test]
fn a_literal_double_brace_is_written_quoted() {
    let v = vars("r", "t");
    assert_eq!(render_str("{{ '{{' }} target {{ \"}}\" }} = {{ target }}", &v).unwrap(), "{{ target }} = t");
    assert_eq!(render_in("{{'{{'}}", &v, Context::Body).unwrap(), "{{");
    assert!(render_str("{{ '{{ }}", &v).is_err());
}

#[test]
fn values_in_a_json_body_are_escaped_and_must_be_inside_strings() {
    let v = vars(HOSTILE, "secondary");
    let out =
        render_in(r#"{"reason": "{{ reason }}", "to": "{{ target }}", "n": {"m": 1}}"#, &v, Context::Body).unwrap();
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed, json!({"reason": HOSTILE.replace('\0', ""), "to": "secondary", "n": {"m": 1}}));
    let e = render_in(r#"{"to": {{ target }}}"#, &v, Context::Body).unwrap_err().to_string();
    assert!(e.contains("must be inside a string"), "{e}");
    // A body that is not JSON takes the value as it is.
    assert_eq!(render_in("[alert] {{ target }}", &v, Context::Body).unwrap(), "[alert] secondary");
}

#[test]
fn values_in_a_url_are_percent_encoded_for_their_position() {
    let v = vars("a b&c=d#e", "../admin/x?y");
    let out =
        render_in("https://h.example/t/{{ target }}/r?reason={{ reason }}#{{ target }}", &v, Context::Url).unwrap();
    assert_eq!(out, "https://h.example/t/..%2Fadmin%2Fx%3Fy/r?reason=a%20b%26c%3Dd%23e#..%2Fadmin%2Fx%3Fy");
    let v = vars("r", "..");
    assert_eq!(render_in("http://h/{{ target }}", &v, Context::Url).unwrap(), "http://h/%2E%2E");
    let v = vars("r", "secondary");
    assert_eq!(
        render_in("https://{{ target }}.svc.local/x", &v, Context::Url).unwrap(),
        "https://secondary.svc.local/x"
    );
    let v = vars("r", "evil.com/x?");
    let e = render_in("https://{{ target }}.svc.local/x", &v, Context::Url).unwrap_err().to_string();
    assert!(e.contains("cannot be put in the host"), "{e}");
}

#[test]
fn header_values_lose_their_line_breaks() {
    let v = vars(HOSTILE, "t");
    let out = render_in("why: {{ reason }}", &v, Context::Header).unwrap();
    assert!(!out.contains(['\r', '\n', '\0']), "{out:?}");
    assert!(http::HeaderValue::from_str(&out).is_ok(), "{out:?}");
}

#[test]
fn render_call_picks_the_context_of_each_parameter() {
    let v = vars("say \"hi\"\r\nX-Evil: 1", "a b");
    let with: Params = serde_json::from_value(json!({
        "url": "http://127.0.0.1:1/x/{{ target }}",
        "headers": {"X-Reason": "{{ reason }}"},
        "body": "{\"reason\": \"{{ reason }}\"}",
    }))
    .unwrap();
    let out = render_call("http", &with, &v).unwrap();
    assert_eq!(out["url"], "http://127.0.0.1:1/x/a%20b");
    assert_eq!(out["headers"]["X-Reason"], "say \"hi\"  X-Evil: 1");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["reason"], "say \"hi\"\r\nX-Evil: 1");
    let with: Params = serde_json::from_value(json!({"args": ["--to", "{{ target }}"]})).unwrap();
    assert_eq!(render_call("command", &with, &v).unwrap()["args"], json!(["--to", "a b"]));
}

proptest::proptest! {
    /// Whatever `{{ reason }}` holds, a JSON body stays valid JSON with the
    /// reason as that string's content, a URL stays one URL with the reason as
    /// one query value, and a header value stays one header value.
    #[test]
    fn no_reason_can_change_the_shape_of_a_request(reason in "\\PC{0,40}|[\"\\\\{}\r\n&?#/%=\u{0}-\u{1f}]{0,20}") {
        let v = vars(&reason, "secondary");
        let clean = reason.replace('\0', "");
        let body = render_in(r#"{"r": "{{ reason }}", "n": {"t": "{{ target }}"}}"#, &v, Context::Body).unwrap();
        let parsed: Value = serde_json::from_str(&body).unwrap();
        proptest::prop_assert_eq!(parsed, json!({"r": clean, "n": {"t": "secondary"}}));
        let url = render_in("http://h.example/p/{{ reason }}?r={{ reason }}&k=v", &v, Context::Url).unwrap();
        let uri: http::Uri = url.parse().unwrap();
        proptest::prop_assert_eq!(uri.host(), Some("h.example"));
        proptest::prop_assert_eq!(uri.path().matches('/').count(), 2);
        proptest::prop_assert!(uri.query().unwrap().ends_with("&k=v"));
        proptest::prop_assert_eq!(uri.query().unwrap().matches('&').count(), 1);
        let header = render_in("x {{ reason }}", &v, Context::Header).unwrap();
        proptest::prop_assert!(http::HeaderValue::from_str(&header).is_ok(), "{:?}", header);
    }
}

#[test]
fn errors_say_what_is_wrong_in_the_same_words_and_keep_their_cause() {
    let v = vars("r", "t");
    let err = |s: &str| render_str(s, &v).unwrap_err().to_string();
    assert_eq!(
        err("{{ target"),
        r#"unclosed template: "{{ target" has {{ without }} (write {{ '{{' }} for a literal {{)"#
    );
    assert_eq!(err("{{ 'x' y"), r#"in "{{ 'x' y": a quoted literal inside {{ }} must be followed by }}"#);
    assert!(
        err("{{ nope }}").starts_with(r#"unknown template variable "nope" (known: incident.id, incident.backend, "#),
        "{}",
        err("{{ nope }}")
    );
    let with: Params = serde_json::from_value(json!({"headers": {"X-Why": "{{ nope }}"}})).unwrap();
    let e = render_call("http", &with, &v).unwrap_err();
    assert!(e.to_string().starts_with(r#"headers.X-Why: unknown template variable "nope""#), "{e}");
    assert_eq!(e.param, "headers.X-Why");
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<TemplateError>());
    assert!(matches!(source, Some(TemplateError::UnknownVariable { name }) if name == "nope"), "{e:?}");
}
