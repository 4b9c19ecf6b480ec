use super::*;

#[test]
fn a_client_gets_what_it_missed_or_a_reset() {
    let c = Changes::default();
    let start = c.head().unwrap();
    assert_eq!(c.since(start), Some(vec![]), "nothing happened yet");
    assert_eq!(c.since(start - 5), None, "an id from before this process");
    c.push("health", None, "a@local: healthy → suspect".into());
    c.push("incident", Some("inc-1".into()), "incident inc-1 opened (open)".into());
    let all = c.since(start).unwrap();
    assert_eq!(all.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![start + 1, start + 2]);
    assert_eq!(c.since(start + 1).unwrap()[0].kind, "incident");
    assert_eq!(c.since(start + 3), None, "an id from the future");
    for i in 0..KEPT {
        c.push("step", None, format!("{i}"));
    }
    assert_eq!(c.since(start), None, "the first changes are no longer kept");
    assert_eq!(c.since(c.head().unwrap()).unwrap().len(), 0);
}

#[test]
fn an_event_is_one_sse_message_with_its_id() {
    let change = Change {
        seq: 7,
        at: SystemTime::UNIX_EPOCH,
        kind: "step",
        incident: Some("inc-1".into()),
        text: "line one\nline two".into(),
    };
    let text = event_text(&change);
    assert!(text.starts_with("id: 7\nevent: change\ndata: {"), "{text}");
    assert!(text.ends_with("}\n\n"));
    assert_eq!(text.matches('\n').count(), 4, "a newline in the text stays inside the JSON: {text}");
}

#[test]
fn after_stop_nothing_is_logged_and_streams_see_the_end() {
    let c = Changes::default();
    c.stop();
    c.push("health", None, "x".into());
    assert_eq!(c.head(), None);
    assert_eq!(c.since(0), None);
}
