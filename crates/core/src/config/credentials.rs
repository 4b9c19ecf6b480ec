//! The AWS shared-credentials file format (`~/.aws/credentials`).

/// What a shared-credentials file lacks. Never holds a value from the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedCredentialsError {
    /// No `[profile]` (or `[profile NAME]`) section.
    #[error("profile [{profile}] not found")]
    ProfileNotFound { profile: String },
    /// The profile has no (or an empty) `key`.
    #[error("profile [{profile}] has no {key}")]
    MissingKey { profile: String, key: &'static str },
}

/// Access key id, secret access key and optional session token of `profile`
/// in the text of a shared-credentials file. Error messages never contain a
/// value from the file.
pub fn parse_shared_credentials(
    text: &str,
    profile: &str,
) -> Result<(String, String, Option<String>), SharedCredentialsError> {
    let mut in_profile = false;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            let section = section.strip_prefix("profile ").unwrap_or(section).trim();
            in_profile = section == profile;
            found |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    if !found {
        return Err(SharedCredentialsError::ProfileNotFound { profile: profile.to_string() });
    }
    let missing = |key| SharedCredentialsError::MissingKey { profile: profile.to_string(), key };
    let id = id.filter(|s| !s.is_empty()).ok_or_else(|| missing("aws_access_key_id"))?;
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| missing("aws_secret_access_key"))?;
    Ok((id, secret, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "[default]\naws_access_key_id = AKID\naws_secret_access_key = s3cr3t\n\n[profile other]\naws_access_key_id=B\n";

    #[test]
    fn reads_the_named_profile() {
        let (id, secret, token) = parse_shared_credentials(FILE, "default").unwrap();
        assert_eq!((id.as_str(), secret.as_str(), token), ("AKID", "s3cr3t", None));
    }

    #[test]
    fn names_what_is_missing_without_values() {
        let e = parse_shared_credentials(FILE, "other").unwrap_err().to_string();
        assert!(e.contains("no aws_secret_access_key"), "{e}");
        assert_eq!(e, "profile [other] has no aws_secret_access_key");
        assert!(parse_shared_credentials(FILE, "nope").unwrap_err().to_string().contains("not found"));
    }
}
