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

/// Secret values shorter than this are not looked for in messages: replacing
/// every `1` or `ok` would garble them, and such a value hides nothing.
pub const QUOTED_SECRET_MIN_CHARS: usize = 4;

mod text;

/// Parts of a key name that mark its value as a secret.
const SECRET_WORDS: [&str; 9] =
    ["secret", "password", "passwd", "token", "api_key", "apikey", "private_key", "credential", "auth_key"];

/// Which keys hold secrets: the built-in words (`secret`, `password`, `token`
/// … anywhere in a key) and the exact key names a site adds in
/// `system.redact_keys` (compared without case). Every function that shows a
/// value takes one, so a site's own secret keys are hidden everywhere the
/// built-in ones are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction {
    /// Extra key names, lower-case, `-` as `_`.
    keys: std::collections::BTreeSet<String>,
}

fn normal_key(key: &str) -> String {
    key.to_ascii_lowercase().replace('-', "_")
}

impl Redaction {
    /// Only the built-in words.
    pub const BUILT_IN: Redaction = Redaction { keys: std::collections::BTreeSet::new() };

    /// The built-in words plus the key names `keys` (`system.redact_keys`).
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        Redaction { keys: keys.into_iter().map(|k| normal_key(k.as_ref().trim())).filter(|k| !k.is_empty()).collect() }
    }

    /// What both `self` and `other` hide: used while a batch changes the list.
    pub fn union(&self, other: &Redaction) -> Redaction {
        Redaction { keys: self.keys.union(&other.keys).cloned().collect() }
    }

    /// Whether a mapping key names a secret (`secret`, `db_password`, `apiKey`,
    /// or a key of `system.redact_keys`).
    pub fn is_secret_key(&self, key: &str) -> bool {
        let key = normal_key(key);
        SECRET_WORDS.iter().any(|w| key.contains(w)) || self.keys.contains(&key)
    }

    /// Whether any segment of a dotted key path (`webhooks.0.secret`) names a secret.
    pub fn is_secret_path(&self, path: &str) -> bool {
        path.split('.').any(|k| self.is_secret_key(k))
    }

    /// `value` with every secret in it shown as [`REDACTED`]: values under secret
    /// keys (references stay, they hold nothing), and passwords inside URLs.
    pub fn redact_json(&self, value: &Json) -> Json {
        match value {
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| {
                        let shown = match v {
                            Json::String(s) if self.is_secret_key(k) && SecretRef::parse(s).is_none() => {
                                Json::String(REDACTED.into())
                            }
                            Json::Number(_) | Json::Bool(_) if self.is_secret_key(k) => Json::String(REDACTED.into()),
                            Json::Array(_) | Json::Object(_) if self.is_secret_key(k) => Json::String(REDACTED.into()),
                            other => self.redact_json(other),
                        };
                        (k.clone(), shown)
                    })
                    .collect(),
            ),
            Json::Array(items) => Json::Array(items.iter().map(|i| self.redact_json(i)).collect()),
            Json::String(s) => Json::String(redact_url(s)),
            other => other.clone(),
        }
    }

    /// How a value at `path` is shown: the whole value is a secret when the path
    /// names one, otherwise the secrets inside it are.
    pub fn shown_value(&self, path: &str, value: &Json) -> String {
        match value {
            Json::String(s) if SecretRef::parse(s).is_some() => value.to_string(),
            _ if self.is_secret_path(path) => REDACTED.to_string(),
            _ => self.redact_json(value).to_string(),
        }
    }

    /// A configuration file's text with the secrets in it shown as
    /// [`REDACTED`], found by the file's structure (`secrets/text.rs`): every
    /// value under a secret key in any form YAML gives it, the anchors such a
    /// key aliases, comments that could hold a secret, and passwords in URLs.
    /// References are kept; the lines stay where they were.
    pub fn redact_yaml_text(&self, text: &str) -> String {
        self.shown_by_structure(text)
    }

    /// `message`, built from the file `text` (an error, a rejection), with
    /// every secret value of the file that it quotes, and every word of one
    /// (of at least [`QUOTED_SECRET_MIN_CHARS`] characters), and every
    /// password of a URL in it hidden.
    pub fn redact_message(&self, text: &str, message: &str) -> String {
        self.quoted_secrets(text).hide(message)
    }

    /// What [`Redaction::redact_message`] hides in messages built from
    /// `text`, found once for any number of them.
    pub fn quoted_secrets(&self, text: &str) -> QuotedSecrets {
        // Whole values, and each word of one: a message may quote a
        // multi-line value escaped (`first\nsecond`), or a part of it.
        let whole = self.secrets_of(text).texts;
        let words = whole.iter().flat_map(|v| v.split_whitespace().map(str::to_string)).collect::<Vec<_>>();
        let mut values: Vec<String> = whole.into_iter().chain(words).collect();
        values.retain(|v| v.chars().count() >= QUOTED_SECRET_MIN_CHARS);
        // The longest first: a secret holding another is hidden whole.
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        QuotedSecrets { values }
    }

    /// Every literal secret in `value` (not a reference, not empty), as key paths
    /// under `prefix`: what `secret_in_file` reports.
    pub fn literal_secrets(&self, prefix: &str, value: &Json) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_literals(prefix, value, &mut out);
        out
    }

    fn collect_literals(&self, path: &str, value: &Json, out: &mut Vec<String>) {
        let child = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
        match value {
            Json::Object(map) => {
                for (k, v) in map {
                    match v {
                        Json::String(s) if self.is_secret_key(k) && !s.is_empty() && SecretRef::parse(s).is_none() => {
                            out.push(child(k))
                        }
                        Json::Number(_) if self.is_secret_key(k) => out.push(child(k)),
                        other => self.collect_literals(&child(k), other, out),
                    }
                }
            }
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.collect_literals(&child(&i.to_string()), item, out);
                }
            }
            Json::String(s) if redact_url(s) != *s => out.push(path.to_string()),
            _ => {}
        }
    }
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

/// A line inside a secret block: its key (or list dash) kept, its value hidden.
fn redact_block_line(line: &str, indent: usize) -> String {
    let rest = &line[indent..];
    let (dash, rest) = match rest.strip_prefix("- ") {
        Some(r) => ("- ", r),
        None if rest == "-" => return line.to_string(),
        None => ("", rest),
    };
    let lead = &line[..indent];
    match rest.find(':').filter(|c| rest[c + 1..].is_empty() || rest[c + 1..].starts_with(' ')) {
        Some(c) if rest[c + 1..].trim().is_empty() => line.to_string(),
        Some(c) => format!("{lead}{dash}{}: {REDACTED}", &rest[..c]),
        None => format!("{lead}{dash}{REDACTED}"),
    }
}

/// The secret values of one file, to hide from messages built from it.
#[derive(Debug, Clone, Default)]
pub struct QuotedSecrets {
    values: Vec<String>,
}

impl QuotedSecrets {
    /// `message` with every one of the values, and URL passwords, hidden.
    pub fn hide(&self, message: &str) -> String {
        let mut out = message.to_string();
        for value in &self.values {
            out = out.replace(value.as_str(), REDACTED);
        }
        redact_urls(&out)
    }
}

/// [`redact_url`] for every URL in `text`.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Each round hides the first URL's password and moves past its `://`.
    while let Some(at) = rest.find("://") {
        let line_end = rest[at..].find(char::is_whitespace).map_or(rest.len(), |e| at + e);
        out.push_str(&redact_url(&rest[..line_end]));
        rest = &rest[line_end..];
    }
    out.push_str(rest);
    out
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

/// A URL as a log line may show it: without its user name, password, query
/// and fragment (`https://u:pw@hooks.example/h?token=x` →
/// `https://hooks.example/h`); a text that is not a URL is not shown.
pub fn url_for_logs(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else { return "(not a URL)".into() };
    let scheme = &text[..scheme_end];
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return "(not a URL)".into();
    }
    let rest = &text[scheme_end + 3..];
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_and_paths() {
        let r = Redaction::default();
        for key in ["secret", "db_password", "apiKey", "API-KEY", "private_key", "refresh_token", "credentials"] {
            assert!(r.is_secret_key(key), "{key}");
        }
        for key in ["url", "name", "requests_per_minute", "tokenizer_model_is_fine"] {
            let expected = key.contains("token");
            assert_eq!(r.is_secret_key(key), expected, "{key}");
        }
        assert!(r.is_secret_path("webhooks.0.secret"));
        assert!(!r.is_secret_path("webhooks.0.url"));
        assert!(!r.is_secret_key("license"));
        let site = Redaction::new(["License", "smtp-pin"]);
        assert!(site.is_secret_key("license") && site.is_secret_key("SMTP_PIN") && site.is_secret_key("secret"));
        assert!(!site.is_secret_key("licenses"), "site keys are names, not words");
        assert!(site.union(&Redaction::new(["x"])).is_secret_key("license"));
    }

    #[test]
    fn urls_in_logs_lose_their_user_password_query_and_fragment() {
        assert_eq!(url_for_logs("https://u:pw@hooks.example:8443/h/x?token=t#f"), "https://hooks.example:8443/h/x");
        assert_eq!(url_for_logs("http://hooks.example?secret=s"), "http://hooks.example");
        assert_eq!(url_for_logs("https://a@b@hooks.example/"), "https://hooks.example/");
        assert_eq!(url_for_logs("hunter2"), "(not a URL)");
        assert_eq!(url_for_logs("pass word://x"), "(not a URL)");
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
        let r = Redaction::default();
        let shown = r.redact_json(&hooks).to_string();
        assert!(!shown.contains("s3cret") && !shown.contains(":pw@"), "{shown}");
        assert!(shown.contains("https://u:•••••@b.example/"), "{shown}");
        assert_eq!(r.shown_value("webhooks.0.secret", &json!("s3cret")), REDACTED);
        assert_eq!(r.shown_value("webhooks.0.secret", &json!("${env:X}")), "\"${env:X}\"");
        let nested = json!({"credentials": {"user": "u", "pass": "hunter2"}, "license": "L-1"});
        let shown = Redaction::new(["license"]).redact_json(&nested).to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("L-1"), "{shown}");
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/x"), "postgres://app:•••••@db:5432/x");
        assert_eq!(redact_url("https://example.org/a@b"), "https://example.org/a@b");
    }

    #[test]
    fn yaml_text_is_redacted_line_by_line() {
        let text = "id: hot_reload\nvalues:\n  webhooks:\n    - url: https://x\n      secret: s3cret\n    - secret: ${env:HOOK}\n      url: https://u:pw@y/\n  password: # none\n";
        let shown = Redaction::default().redact_yaml_text(text);
        assert!(!shown.contains("s3cret") && !shown.contains(":pw@"), "{shown}");
        assert!(shown.contains("      secret: •••••\n"), "{shown}");
        assert!(shown.contains("    - secret: ${env:HOOK}\n"), "{shown}");
        assert!(shown.contains("  password: # none\n"), "{shown}");
        assert_eq!(shown.lines().count(), text.lines().count());
    }

    #[test]
    fn blocks_under_a_secret_key_are_redacted_whole() {
        let text = "values:\n  credentials:\n    user: admin\n    pass: hunter2\n    extra:\n      - k1\n  license: |\n    line one\n    key: value\n  keys:\n  - a1\n  name: shown\n  list_secret:\n  - s1\n  - s2\n  after: visible\n";
        let shown = Redaction::new(["license"]).redact_yaml_text(text);
        for hidden in ["admin", "hunter2", "k1", "line one", "key: value", "s1", "s2"] {
            assert!(!shown.contains(hidden), "{hidden} shown in\n{shown}");
        }
        for kept in [
            "    user: •••••",
            "    extra:",
            "      - •••••",
            "  license: •••••",
            "  - a1",
            "  name: shown",
            "  after: visible",
        ] {
            assert!(shown.contains(kept), "{kept} missing in\n{shown}");
        }
        assert_eq!(shown.lines().count(), text.lines().count());
    }

    #[test]
    fn every_form_a_value_takes_under_a_secret_key_is_hidden() {
        let text = "\
smtp: {host: mail, password: hunter2-flow}
hooks: [{url: https://x, secret: s1-in-a-list}, {secret: '${env:MARAIN_SECRET_A}'}]
token: \"first-line
  second-line\"
api_key: plain-first
  plain-second
private_key: |
  -----BEGIN KEY-----
  block-body
common: &shared anchored-secret
password: *shared
# password: commented-out-secret
name: shown # a comment that is shown
db: postgres://app:url-password@db/x
list_secret:
  # between-items note
  - item-one
  - item-two
after: visible
";
        let shown = Redaction::default().redact_yaml_text(text);
        for hidden in [
            "hunter2-flow",
            "s1-in-a-list",
            "first-line",
            "second-line",
            "plain-first",
            "plain-second",
            "BEGIN KEY",
            "block-body",
            "anchored-secret",
            "commented-out-secret",
            "url-password",
            "between-items",
            "item-one",
            "item-two",
        ] {
            assert!(!shown.contains(hidden), "{hidden} shown in\n{shown}");
        }
        for kept in [
            "smtp: {host: mail, password: •••••}",
            "${env:MARAIN_SECRET_A}",
            "name: shown # a comment that is shown",
            "after: visible",
            "password: *shared",
            "postgres://app:•••••@db/x",
        ] {
            assert!(shown.contains(kept), "{kept} missing in\n{shown}");
        }
        assert_eq!(shown.lines().count(), text.lines().count(), "{shown}");
    }

    #[test]
    fn a_text_the_parser_stops_on_hides_every_value_after_the_stop() {
        let text = "name: shown\nsmtp: {password: hunter2\nother: value-after\n  # note\n";
        let shown = Redaction::default().redact_yaml_text(text);
        assert!(!shown.contains("hunter2") && !shown.contains("value-after"), "{shown}");
        assert!(shown.starts_with("name: shown\n"), "{shown}");
    }

    #[test]
    fn messages_quoting_a_secret_value_or_a_url_password_hide_them() {
        let text = "values:\n  webhooks:\n    - url: https://u:pw-in-url@h/x?token=q\n      secret: 987654321123\n";
        let r = Redaction::default();
        let message =
            "webhooks[0].secret: invalid type: integer `987654321123`, expected a string; url https://u:pw-in-url@h/x";
        let shown = r.redact_message(text, message);
        assert!(!shown.contains("987654321123") && !shown.contains("pw-in-url"), "{shown}");
        assert!(shown.contains("webhooks[0].secret: invalid type: integer `•••••`"), "{shown}");
    }

    #[test]
    fn literal_secrets_are_found_and_references_are_not() {
        let values = json!({"webhooks": [{"url": "https://x", "secret": "s3cret"}, {"secret": "${env:A}"}], "db": "postgres://a:b@h/d"});
        assert_eq!(Redaction::default().literal_secrets("", &values), ["db", "webhooks.0.secret"]);
        let site = Redaction::new(["license"]);
        assert_eq!(site.literal_secrets("", &json!({"license": "L-1", "name": "x"})), ["license"]);
    }
}
