//! The mock API server for the wire tests: scripted expectations, each
//! asserting a request's method, path, query, content type and body.
#![allow(dead_code)]

use std::collections::BTreeMap;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, pair};

pub type MockHandle = Handle<Request<Body>, Response<Body>>;

pub fn mock() -> (Client, MockHandle) {
    let (service, handle) = pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// One expected request and the answer to give.
pub struct Expect {
    method: Method,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    content_type: Option<&'static str>,
    /// The `Accept` header, when the test checks it.
    accept: Option<&'static str>,
    body: Option<Value>,
    /// JSON pointers into the body and the values they must have.
    fields: Vec<(&'static str, Value)>,
    status: u16,
    answer: Value,
    /// A watch answer: these events, one JSON document a line, then the end
    /// of the stream (the server closing the watch).
    events: Option<Vec<Value>>,
}

impl Expect {
    pub fn new(method: Method, path: &'static str) -> Self {
        Self {
            method,
            path,
            query: &[],
            content_type: None,
            accept: None,
            body: None,
            fields: Vec::new(),
            status: 200,
            answer: json!({}),
            events: None,
        }
    }
    /// The body is not compared whole, but these pointers must match.
    pub fn fields(mut self, content_type: &'static str, fields: Vec<(&'static str, Value)>) -> Self {
        self.content_type = Some(content_type);
        self.fields = fields;
        self
    }
    /// The request's content type (kube sets one on metadata-only lists).
    pub fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = Some(content_type);
        self
    }
    /// The request's `Accept` header must be this.
    pub fn accept(mut self, accept: &'static str) -> Self {
        self.accept = Some(accept);
        self
    }
    pub fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Self {
        self.query = q;
        self
    }
    pub fn apply(self, body: Value) -> Self {
        Self { content_type: Some("application/apply-patch+yaml"), body: Some(body), ..self }
    }
    pub fn json(self, body: Value) -> Self {
        Self { content_type: Some("application/json"), body: Some(body), ..self }
    }
    /// Answers a watch with these events, then closes the stream.
    pub fn events(mut self, events: Vec<Value>) -> Self {
        self.status = 200;
        self.events = Some(events);
        self
    }
    pub fn answer(mut self, status: u16, answer: Value) -> Self {
        self.status = status;
        self.answer = answer;
        self
    }
}

pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message })
}

/// Serves the scenario: each request must match the next expectation.
pub fn serve(mut handle: MockHandle, scenario: Vec<Expect>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for (i, e) in scenario.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| panic!("request {i} never came"));
            assert_eq!(request.method(), e.method, "request {i}");
            assert_eq!(request.uri().path(), e.path, "request {i}");
            let query: BTreeMap<String, String> = request
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_string(), percent_decode(v))
                })
                .collect();
            let expected: BTreeMap<String, String> =
                e.query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(query, expected, "request {i} {}: query", e.path);
            let content_type = request.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(content_type.as_deref(), e.content_type, "request {i} {}: content type", e.path);
            if let Some(accept) = e.accept {
                let got = request.headers().get("accept").map(|v| v.to_str().unwrap().to_string());
                assert_eq!(got.as_deref(), Some(accept), "request {i} {}: accept", e.path);
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            if let Some(body) = e.body {
                let got: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(got, body, "request {i} {}: body", e.path);
            }
            if !e.fields.is_empty() {
                let got: Value = serde_json::from_slice(&bytes).unwrap();
                for (pointer, want) in &e.fields {
                    assert_eq!(got.pointer(pointer), Some(want), "request {i} {}: {pointer} in {got}", e.path);
                }
            }
            let body = match &e.events {
                Some(events) => events.iter().map(|v| format!("{v}\n")).collect::<String>().into_bytes(),
                None => serde_json::to_vec(&e.answer).unwrap(),
            };
            let response = Response::builder().status(e.status).body(Body::from(body)).unwrap();
            send.send_response(response);
        }
    })
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
