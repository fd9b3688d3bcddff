//! Secrets named by reference in configuration files (`${env:NAME}`,
//! `${file:/path}`, see [`crate::secrets`]) resolved on this server: checked
//! when a config file is read (a reference that does not resolve rejects the
//! file at its line), and put in place of the reference in the live settings
//! when the config applies. The resolved values live only in memory.

use serde_json::{Map, Value as Json};

use crate::error::FileError;
use crate::live_config::LiveSettings;
use crate::secrets::SecretRef;

/// The secret `reference` names, read now.
pub fn resolve(reference: &SecretRef) -> Result<String, String> {
    match reference {
        SecretRef::Env(name) => std::env::var(name).map_err(|_| format!("the environment variable {name} is not set")),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("{path} cannot be read: {e}")),
    }
}

/// Every reference in `values` that does not resolve, as an error at the line of
/// file `path` (text `text`) that holds it.
pub fn check(path: &str, text: &str, values: &Map<String, Json>) -> Vec<FileError> {
    let mut errors = Vec::new();
    walk("values", &Json::Object(values.clone()), &mut |field, value| {
        let Some(reference) = SecretRef::parse(value) else { return };
        if let Err(why) = resolve(&reference) {
            let at = position_of(text, value.trim());
            errors.push(FileError::new(
                path,
                at,
                Some(field.to_string()),
                format!("`{}` does not resolve: {why}", value.trim()),
            ));
        }
    });
    errors
}

fn walk(path: &str, value: &Json, visit: &mut impl FnMut(&str, &str)) {
    match value {
        Json::Object(map) => map.iter().for_each(|(k, v)| walk(&format!("{path}.{k}"), v, visit)),
        Json::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(&format!("{path}.{i}"), v, visit)),
        Json::String(s) => visit(path, s),
        _ => {}
    }
}

/// Line and column (1-based) of the first `needle` in `text`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    text.lines().enumerate().find_map(|(i, line)| line.find(needle).map(|c| (i + 1, c + 1))).unwrap_or((1, 1))
}

/// `settings` with each webhook secret that is a reference replaced by what it
/// names. One that no longer resolves (a variable unset since) leaves the hook
/// without a secret, and says so in the log.
pub fn resolved(mut settings: LiveSettings) -> LiveSettings {
    for hook in &mut settings.webhooks {
        let Some(reference) = hook.secret.as_deref().and_then(SecretRef::parse) else { continue };
        match resolve(&reference) {
            Ok(secret) => hook.secret = Some(secret),
            Err(why) => {
                tracing::error!(url = %hook.url, %why, "a webhook's secret does not resolve; its deliveries go unsigned");
                hook.secret = None;
            }
        }
    }
    settings
}
