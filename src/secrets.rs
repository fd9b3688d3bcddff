//! Secrets in configuration files: which values are secrets, how they are shown,
//! and how a file names one without holding it.
//!
//! A value under a key named like a secret (`secret`, `password`, `token`,
//! `api_key`, `private_key`, … anywhere in the key), and the password inside a
//! URL, is never shown: summaries, hazards, events, webhook payloads, the diff
//! view and the file history show [`REDACTED`] instead, for every role. The hash
//! of the file still changes, so the change itself stays visible.
//!
//! A file should name a secret instead of holding it: `${env:NAME}` (an
//! environment variable of the server) or `${file:/run/secrets/name}` (a file's
//! contents, trimmed). The files, the history, the diffs and the events only
//! ever hold the reference; the engine resolves it when the config applies. A
//! secret written into the file itself is graded WARNING (`secret_in_file`).

use serde_json::Value as Json;

/// What is shown in place of a secret.
pub const REDACTED: &str = "•••••";

/// Parts of a key name that mark its value as a secret.
const SECRET_WORDS: [&str; 9] =
    ["secret", "password", "passwd", "token", "api_key", "apikey", "private_key", "credential", "auth_key"];

/// Whether a mapping key names a secret (`secret`, `db_password`, `apiKey` …).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// Whether any segment of a dotted key path (`webhooks.0.secret`) names a secret.
pub fn is_secret_path(path: &str) -> bool {
    path.split('.').any(is_secret_key)
}

/// A reference to a secret kept outside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `${env:NAME}`
    Env(String),
    /// `${file:/path}`
    File(String),
}

impl SecretRef {
    /// The reference `value` is, if it is one (the whole value, nothing around it).
    pub fn parse(value: &str) -> Option<SecretRef> {
        let inner = value.trim().strip_prefix("${")?.strip_suffix('}')?;
        let (kind, name) = inner.split_once(':')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        match kind.trim() {
            "env" if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Some(SecretRef::Env(name.into())),
            "file" if name.starts_with('/') => Some(SecretRef::File(name.into())),
            _ => None,
        }
    }
}

/// `scheme://user:password@host…` with the password replaced; other text as is.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else { return text.to_string() };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else { return text.to_string() };
    let Some(colon) = authority[..at].find(':') else { return text.to_string() };
    let start = scheme_end + 3 + colon + 1;
    let end = scheme_end + 3 + at;
    format!("{}{REDACTED}{}", &text[..start], &text[end..])
}

/// `value` with every secret in it shown as [`REDACTED`]: values under secret
/// keys (references stay, they hold nothing), and passwords inside URLs.
pub fn redact_json(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = match v {
                        Json::String(s) if is_secret_key(k) && SecretRef::parse(s).is_none() => {
                            Json::String(REDACTED.into())
                        }
                        Json::Number(_) | Json::Bool(_) if is_secret_key(k) => Json::String(REDACTED.into()),
                        other => redact_json(other),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(redact_json).collect()),
        Json::String(s) => Json::String(redact_url(s)),
        other => other.clone(),
    }
}

/// How a value at `path` is shown: the whole value is a secret when the path
/// names one, otherwise the secrets inside it are.
pub fn shown_value(path: &str, value: &Json) -> String {
    match value {
        Json::String(s) if SecretRef::parse(s).is_some() => value.to_string(),
        _ if is_secret_path(path) => REDACTED.to_string(),
        _ => redact_json(value).to_string(),
    }
}

/// A configuration file's text with the secrets in it shown as [`REDACTED`],
/// line by line (`key: value` under a secret key, passwords in URLs), for the
/// diff view and the file history. References are kept.
pub fn redact_yaml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        out.push_str(&redact_yaml_line(body));
        out.push_str(end);
    }
    out
}

fn redact_yaml_line(line: &str) -> String {
    let line = redact_url(line);
    let trimmed = line.trim_start();
    let key_start = line.len() - trimmed.len() + if trimmed.starts_with("- ") { 2 } else { 0 };
    let Some(colon) = line[key_start..].find(':').map(|c| key_start + c) else { return line };
    let key = line[key_start..colon].trim().trim_matches(|c| c == '"' || c == '\'');
    let value = line[colon + 1..].trim();
    let is_comment = value.starts_with('#');
    if !is_secret_key(key)
        || value.is_empty()
        || is_comment
        || SecretRef::parse(value.trim_matches(['"', '\''])).is_some()
    {
        return line;
    }
    format!("{}: {REDACTED}", &line[..colon])
}

/// Every literal secret in `value` (not a reference, not empty), as key paths
/// under `prefix`: what `secret_in_file` reports.
pub fn literal_secrets(prefix: &str, value: &Json) -> Vec<String> {
    let mut out = Vec::new();
    collect_literals(prefix, value, &mut out);
    out
}

fn collect_literals(path: &str, value: &Json, out: &mut Vec<String>) {
    let child = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                match v {
                    Json::String(s) if is_secret_key(k) && !s.is_empty() && SecretRef::parse(s).is_none() => {
                        out.push(child(k))
                    }
                    Json::Number(_) if is_secret_key(k) => out.push(child(k)),
                    other => collect_literals(&child(k), other, out),
                }
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_literals(&child(&i.to_string()), item, out);
            }
        }
        Json::String(s) if redact_url(s) != *s => out.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_and_paths() {
        for key in ["secret", "db_password", "apiKey", "API-KEY", "private_key", "refresh_token", "credentials"] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["url", "name", "requests_per_minute", "tokenizer_model_is_fine"] {
            let expected = key.contains("token");
            assert_eq!(is_secret_key(key), expected, "{key}");
        }
        assert!(is_secret_path("webhooks.0.secret"));
        assert!(!is_secret_path("webhooks.0.url"));
    }

    #[test]
    fn references() {
        assert_eq!(SecretRef::parse("${env:MARAIN_HOOK}"), Some(SecretRef::Env("MARAIN_HOOK".into())));
        assert_eq!(SecretRef::parse("${file:/run/secrets/x}"), Some(SecretRef::File("/run/secrets/x".into())));
        for not in ["${env:}", "${env:a b}", "${file:relative}", "x${env:A}", "${vault:a}", "plain"] {
            assert_eq!(SecretRef::parse(not), None, "{not}");
        }
    }

    #[test]
    fn values_are_redacted_deeply_and_urls_lose_their_password() {
        let hooks = json!([{"url": "https://a.example/h", "secret": "s3cret"}, {"url": "https://u:pw@b.example/"}]);
        let shown = redact_json(&hooks).to_string();
        assert!(!shown.contains("s3cret") && !shown.contains(":pw@"), "{shown}");
        assert!(shown.contains("https://u:•••••@b.example/"), "{shown}");
        assert_eq!(shown_value("webhooks.0.secret", &json!("s3cret")), REDACTED);
        assert_eq!(shown_value("webhooks.0.secret", &json!("${env:X}")), "\"${env:X}\"");
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/x"), "postgres://app:•••••@db:5432/x");
        assert_eq!(redact_url("https://example.org/a@b"), "https://example.org/a@b");
    }

    #[test]
    fn yaml_text_is_redacted_line_by_line() {
        let text = "id: hot_reload\nvalues:\n  webhooks:\n    - url: https://x\n      secret: s3cret\n    - secret: ${env:HOOK}\n      url: https://u:pw@y/\n  password: # none\n";
        let shown = redact_yaml_text(text);
        assert!(!shown.contains("s3cret") && !shown.contains(":pw@"), "{shown}");
        assert!(shown.contains("      secret: •••••\n"), "{shown}");
        assert!(shown.contains("    - secret: ${env:HOOK}\n"), "{shown}");
        assert!(shown.contains("  password: # none\n"), "{shown}");
        assert_eq!(shown.lines().count(), text.lines().count());
    }

    #[test]
    fn literal_secrets_are_found_and_references_are_not() {
        let values = json!({"webhooks": [{"url": "https://x", "secret": "s3cret"}, {"secret": "${env:A}"}], "db": "postgres://a:b@h/d"});
        assert_eq!(literal_secrets("", &values), ["db", "webhooks.0.secret"]);
    }
}
