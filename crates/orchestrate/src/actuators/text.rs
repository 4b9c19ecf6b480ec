//! Text for step results and error messages: bounded in size, and without
//! the credentials that URLs can carry.

/// At most `max` bytes of `bytes` as UTF-8 (invalid sequences replaced), cut
/// at a character boundary.
pub fn truncate_lossy(bytes: &[u8], max: usize) -> String {
    let head = &bytes[..bytes.len().min(max)];
    let mut text = String::from_utf8_lossy(head).into_owned();
    if text.len() > max {
        // Replacement characters are longer than the bytes they replace.
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// `text` with the user information of every URL in it removed (one
/// implementation with the runbook redactor's, which finds the URLs).
pub use crate::runbook::redact::redact_url_credentials;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_a_character_boundary() {
        assert_eq!(truncate_lossy(b"hello", 3), "hel");
        assert_eq!(truncate_lossy("héllo".as_bytes(), 2), "h");
        assert_eq!(truncate_lossy(b"ok", 512), "ok");
        assert!(truncate_lossy(&[0xff; 10], 4).len() <= 4);
    }

    #[test]
    fn strips_user_information_from_urls() {
        assert_eq!(redact_url_credentials("https://u:p@example.com/r.git"), "https://example.com/r.git");
        assert_eq!(
            redact_url_credentials("fatal: unable to access 'https://tok@git.example/x/': 403\nhttp://a@b ok"),
            "fatal: unable to access 'https://git.example/x/': 403\nhttp://b ok"
        );
        assert_eq!(redact_url_credentials("git@github.com:org/repo.git"), "git@github.com:org/repo.git");
        assert_eq!(redact_url_credentials("/srv/infra"), "/srv/infra");
        assert_eq!(redact_url_credentials("https://host/a@b"), "https://host/a@b");
    }
}
