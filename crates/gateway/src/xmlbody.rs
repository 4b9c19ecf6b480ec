//! The XML documents the gateway must read exactly as a backend reads them:
//! DeleteObjects request bodies (every key is journaled, and the body the
//! backend gets is the gateway's own rendering of what it parsed, so the two
//! cannot disagree about a key), and listing answers (entries under the
//! probe prefix are dropped). Parsed with quick-xml: character references
//! (`&#47;`), the five predefined entities, CDATA sections, whitespace kept
//! inside values; a DOCTYPE (and so any custom entity) is refused.

use std::borrow::Cow;

use bytes::Bytes;
use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};

use crate::s3xml::escape;

/// One `<Object>` of a DeleteObjects request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteEntry {
    pub key: String,
    /// The other children (`VersionId`, `ETag`, ...), in order, decoded.
    pub fields: Vec<(String, String)>,
}

type Fields = Vec<(String, String)>;

/// A DeleteObjects request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteRequest {
    pub quiet: bool,
    pub objects: Vec<DeleteEntry>,
}

/// Why a body is not a document the gateway accepts (the message for a 400
/// `MalformedXML`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(m: impl Into<String>) -> Malformed {
    Malformed(m.into())
}

/// Resolves `&name;` or `&#n;` into `out`.
fn push_ref(out: &mut String, r: &BytesRef<'_>) -> Result<(), Malformed> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| malformed(format!("bad character reference: {e}")))? {
        out.push(c);
        return Ok(());
    }
    let name = r.decode().map_err(|e| malformed(e.to_string()))?;
    out.push(match &*name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "apos" => '\'',
        "quot" => '"',
        other => return Err(malformed(format!("unknown entity &{other};"))),
    });
    Ok(())
}

/// Reads a document as a tree of (path of local names, text) leaves: calls
/// `leaf(path, text)` for each element that holds text (or nothing), and
/// `open(path, start_offset)` / `close(path, end_offset)` around every element.
struct Walk<'a> {
    reader: Reader<&'a [u8]>,
}

enum Step {
    Open { name: String, at: usize },
    Close { at: usize },
    Text(String),
    End,
}

impl<'a> Walk<'a> {
    fn new(body: &'a [u8]) -> Self {
        let mut reader = Reader::from_reader(body);
        let c = reader.config_mut();
        c.trim_text(false);
        c.check_end_names = true;
        c.expand_empty_elements = true;
        Self { reader }
    }

    fn next(&mut self) -> Result<Step, Malformed> {
        loop {
            let at = self.reader.buffer_position() as usize;
            let ev = self.reader.read_event().map_err(|e| malformed(format!("not well-formed XML: {e}")))?;
            return Ok(match ev {
                Event::Start(s) => {
                    let name = std::str::from_utf8(s.local_name().into_inner())
                        .map_err(|_| malformed("an element name is not UTF-8"))?
                        .to_string();
                    Step::Open { name, at }
                }
                Event::End(_) => Step::Close { at: self.reader.buffer_position() as usize },
                Event::Text(t) => Step::Text(t.xml10_content().map_err(|e| malformed(e.to_string()))?.into_owned()),
                Event::CData(t) => Step::Text(t.xml10_content().map_err(|e| malformed(e.to_string()))?.into_owned()),
                Event::GeneralRef(r) => {
                    let mut s = String::new();
                    push_ref(&mut s, &r)?;
                    Step::Text(s)
                }
                Event::DocType(_) => return Err(malformed("a DOCTYPE is not allowed")),
                Event::Eof => Step::End,
                Event::Empty(_) => unreachable!("expand_empty_elements"),
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
            });
        }
    }
}

/// Parses a DeleteObjects body (`<Delete><Quiet>..</Quiet><Object><Key>..`).
pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, Malformed> {
    let mut w = Walk::new(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut req = DeleteRequest::default();
    // The <Object> being read: its key and other fields.
    let mut obj: Option<(Option<String>, Fields)> = None;
    let mut root_seen = false;
    loop {
        match w.next()? {
            Step::Open { name, .. } => {
                match (path.len(), name.as_str()) {
                    (0, "Delete") if !root_seen => root_seen = true,
                    (0, other) => return Err(malformed(format!("unexpected root element <{other}>"))),
                    (1, "Object") => obj = Some((None, Vec::new())),
                    (3.., _) => return Err(malformed(format!("unexpected element <{name}> inside an <Object> field"))),
                    _ => {}
                }
                path.push(name);
                text.clear();
            }
            Step::Text(t) => text.push_str(&t),
            Step::Close { .. } => {
                let name = path.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                match (path.len(), name.as_str()) {
                    (1, "Quiet") => req.quiet = text.trim().eq_ignore_ascii_case("true"),
                    (1, "Object") => {
                        let (key, fields) = obj.take().expect("opened");
                        let key = key.ok_or_else(|| malformed("an <Object> without <Key>"))?;
                        req.objects.push(DeleteEntry { key, fields });
                    }
                    (2, "Key") => {
                        let o = obj.as_mut().expect("inside an Object");
                        if o.0.replace(std::mem::take(&mut text)).is_some() {
                            return Err(malformed("an <Object> with two <Key> elements"));
                        }
                    }
                    (2, field) if path[1] == "Object" => {
                        obj.as_mut().expect("inside an Object").1.push((field.to_string(), std::mem::take(&mut text)));
                    }
                    _ => {}
                }
                text.clear();
            }
            Step::End if path.is_empty() && root_seen => return Ok(req),
            Step::End => return Err(malformed("the document ends early")),
        }
    }
}

/// The (key, value) pairs of a GetObjectTagging answer
/// (`<Tagging><TagSet><Tag><Key>..</Key><Value>..</Value></Tag>..`).
pub fn parse_tagging(body: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    let mut w = Walk::new(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut tags = Vec::new();
    let (mut k, mut v) = (None, None);
    loop {
        match w.next()? {
            Step::Open { name, .. } => {
                path.push(name);
                text.clear();
            }
            Step::Text(t) => text.push_str(&t),
            Step::Close { .. } => {
                let name = path.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                match name.as_str() {
                    "Key" if path.last().is_some_and(|p| p == "Tag") => k = Some(std::mem::take(&mut text)),
                    "Value" if path.last().is_some_and(|p| p == "Tag") => v = Some(std::mem::take(&mut text)),
                    "Tag" => tags.push((
                        k.take().ok_or_else(|| malformed("a <Tag> without <Key>"))?,
                        v.take().unwrap_or_default(),
                    )),
                    _ => {}
                }
                text.clear();
            }
            Step::End => return Ok(tags),
        }
    }
}

/// Escapes text for an element, with the characters an XML parser would
/// normalise (`\r`, `\t`, `\n`) as character references.
fn escape_exact(s: &str) -> String {
    escape(s).replace('\r', "&#13;").replace('\n', "&#10;").replace('\t', "&#9;")
}

/// The body the backend gets: the parsed entries, rendered by the gateway.
pub fn render_delete(quiet: bool, objects: &[&DeleteEntry]) -> Bytes {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    if quiet {
        out.push_str("<Quiet>true</Quiet>");
    }
    for o in objects {
        out.push_str("<Object><Key>");
        out.push_str(&escape_exact(&o.key));
        out.push_str("</Key>");
        for (k, v) in &o.fields {
            out.push_str(&format!("<{k}>{}</{k}>", escape_exact(v)));
        }
        out.push_str("</Object>");
    }
    out.push_str("</Delete>");
    Bytes::from(out)
}

/// `<Error>` entries of a DeleteResult, one per refused key.
pub fn delete_errors(refused: &[(String, &'static str, String)]) -> String {
    refused
        .iter()
        .map(|(k, code, msg)| {
            format!(
                "<Error><Key>{}</Key><Code>{code}</Code><Message>{}</Message></Error>",
                escape_exact(k),
                escape(msg)
            )
        })
        .collect()
}

/// Adds `errors` to a backend's DeleteResult (or makes one, when `body` is `None`).
pub fn with_delete_errors(body: Option<&[u8]>, errors: &str) -> Option<Bytes> {
    let Some(body) = body else {
        return Some(Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{errors}</DeleteResult>"
        )));
    };
    let text = std::str::from_utf8(body).ok()?;
    if let Some(i) = text.rfind("</DeleteResult>") {
        return Some(Bytes::from(format!("{}{errors}{}", &text[..i], &text[i..])));
    }
    // `<DeleteResult/>`: nothing was reported.
    let i = text.rfind("<DeleteResult")?;
    let j = text[i..].find("/>")? + i;
    Some(Bytes::from(format!("{}>{errors}</DeleteResult>{}", &text[..j], &text[j + 2..])))
}

/// Entries of listing answers that name a key or prefix.
const ENTRIES: [&str; 5] = ["Contents", "Version", "DeleteMarker", "Upload", "CommonPrefixes"];

/// Drops from a listing answer (ListObjects, ListObjectsV2,
/// ListObjectVersions, ListMultipartUploads) every entry whose key, or
/// common prefix, `hide` says to hide, and lowers `<KeyCount>` to match.
/// `url_encoded`: the answer's keys are percent-encoded (`encoding-type=url`).
/// `None`: the answer is not a document this function can read (the caller
/// fails closed).
pub fn filter_listing(body: &[u8], url_encoded: bool, hide: impl Fn(&str) -> bool) -> Option<Bytes> {
    let mut w = Walk::new(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut drop: Vec<(usize, usize)> = Vec::new();
    let mut entry: Option<(usize, bool)> = None;
    loop {
        match w.next().ok()? {
            Step::Open { name, at } => {
                if path.len() == 1 && ENTRIES.contains(&name.as_str()) {
                    entry = Some((at, false));
                }
                path.push(name);
                text.clear();
            }
            Step::Text(t) => text.push_str(&t),
            Step::Close { at } => {
                let name = path.pop()?;
                if path.len() == 2 && matches!(name.as_str(), "Key" | "Prefix") && ENTRIES.contains(&path[1].as_str()) {
                    let value: Cow<'_, str> =
                        if url_encoded { Cow::Owned(crate::auth::percent_decode(&text)) } else { Cow::Borrowed(&text) };
                    if hide(&value)
                        && let Some(e) = &mut entry
                    {
                        e.1 = true;
                    }
                }
                if path.len() == 1
                    && let Some((start, hidden)) = entry.take()
                    && hidden
                {
                    drop.push((start, at));
                }
                text.clear();
            }
            Step::End => break,
        }
    }
    if drop.is_empty() {
        return Some(Bytes::copy_from_slice(body));
    }
    let mut out = Vec::with_capacity(body.len());
    let mut from = 0;
    for (s, e) in &drop {
        out.extend_from_slice(&body[from..*s]);
        from = *e;
    }
    out.extend_from_slice(&body[from..]);
    let mut text = String::from_utf8(out).ok()?;
    if let Some(i) = text.find("<KeyCount>") {
        let j = text[i..].find("</KeyCount>")? + i;
        if let Ok(n) = text[i + 10..j].trim().parse::<usize>() {
            text.replace_range(i + 10..j, &n.saturating_sub(drop.len()).to_string());
        }
    }
    Some(Bytes::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_as_an_xml_parser_does() {
        let body = b"<?xml version=\"1.0\"?>\n<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n  <Quiet>true</Quiet>\n  \
            <Object>\n    <Key>a&#47;b</Key>\n    <VersionId>v1</VersionId>\n  </Object>\n  \
            <Object><Key><![CDATA[c<d>&e]]></Key></Object>\n  <Object><Key> sp &amp; &#x41; </Key></Object>\n\
            <Object><Key>x<!-- c -->y</Key></Object></Delete>";
        let r = parse_delete(body).unwrap();
        assert!(r.quiet);
        let keys: Vec<&str> = r.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a/b", "c<d>&e", " sp & A ", "xy"]);
        assert_eq!(r.objects[0].fields, [("VersionId".to_string(), "v1".to_string())]);
        // What the gateway renders reads back the same.
        let all: Vec<&DeleteEntry> = r.objects.iter().collect();
        assert_eq!(parse_delete(&render_delete(true, &all)).unwrap(), r);
        let cr = parse_delete(b"<Delete><Object><Key>a&#13;&#10;b\tc</Key></Object></Delete>").unwrap();
        assert_eq!(cr.objects[0].key, "a\r\nb\tc");
        assert_eq!(parse_delete(&render_delete(false, &[&cr.objects[0]])).unwrap(), cr);
    }

    #[test]
    fn refuses_what_it_cannot_read_exactly() {
        for bad in [
            &b"<Delete><Object><Key>a</Key></Object>"[..],
            b"<Delete><Object><Key>&foo;</Key></Object></Delete>",
            b"<!DOCTYPE d [<!ENTITY foo \"x\">]><Delete><Object><Key>&foo;</Key></Object></Delete>",
            b"<Delete><Object><VersionId>v</VersionId></Object></Delete>",
            b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
            b"<Other/>",
            b"<Delete><Object><Key>a</Obj></Key></Delete>",
        ] {
            assert!(parse_delete(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn drops_listing_entries_and_prefixes_under_the_probe_prefix() {
        let body = "<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>4</KeyCount>\
            <Contents><Key>.cutover-probe/p1</Key><Size>1</Size></Contents>\
            <Contents><Key>a</Key><Size>1</Size></Contents>\
            <Contents><Key>.cutover&#45;probe/p2</Key></Contents>\
            <CommonPrefixes><Prefix>.cutover-probe/</Prefix></CommonPrefixes></ListBucketResult>";
        let hide = |k: &str| k.starts_with(".cutover-probe/");
        let out = filter_listing(body.as_bytes(), false, hide).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount>\
             <Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>"
        );
        let encoded = "<ListVersionsResult><Version><Key>%2Ecutover-probe%2Fp</Key></Version>\
            <DeleteMarker><Key>.cutover-probe/q</Key></DeleteMarker><Version><Key>b</Key></Version></ListVersionsResult>";
        let out = filter_listing(encoded.as_bytes(), true, hide).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "<ListVersionsResult><Version><Key>b</Key></Version></ListVersionsResult>"
        );
        assert!(filter_listing(b"<A><Contents><Key>x</Key></A>", false, hide).is_none());
    }

    #[test]
    fn reads_a_tag_set() {
        let t = parse_tagging(b"<Tagging xmlns=\"x\"><TagSet><Tag><Key>a b</Key><Value>&#38;</Value></Tag><Tag><Key>c</Key><Value/></Tag></TagSet></Tagging>").unwrap();
        assert_eq!(t, [("a b".to_string(), "&".to_string()), ("c".to_string(), String::new())]);
    }

    #[test]
    fn adds_refused_keys_to_a_delete_result() {
        let e = delete_errors(&[("k<".into(), "AccessDenied", "no".into())]);
        let r = with_delete_errors(Some(b"<DeleteResult><Deleted><Key>a</Key></Deleted></DeleteResult>"), &e).unwrap();
        assert_eq!(
            &r[..],
            b"<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>k&lt;</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>"
        );
        let r = with_delete_errors(Some(b"<?xml version=\"1.0\"?><DeleteResult xmlns=\"x\"/>"), &e).unwrap();
        assert!(std::str::from_utf8(&r).unwrap().ends_with("<DeleteResult xmlns=\"x\"><Error><Key>k&lt;</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>"));
    }
}
