//! Secrets named by reference in configuration files (`${env:NAME}`,
//! `${file:/path}`, see [`crate::secrets`]) resolved on this server: checked
//! when a config file is read (a reference that does not resolve rejects the
//! file at its line), and put in place of the reference in the live settings
//! when the config applies. The resolved values live only in memory.
//!
//! Whoever writes the site's files chooses what a reference names, so what
//! may be named is the server's to say ([`SecretSources`]): `${file:}` reads
//! only regular files under `--secrets-dir` (off without it), opened without
//! waiting (a FIFO would hold the engine) and read up to a size cap;
//! `${env:}` names only variables with the allowed prefix, so a file cannot
//! send `MARAIN_ADMIN_PASSWORD` to a URL it chooses as a signing key. A
//! refusal names the key, never what the reference names (docs/security.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use crate::error::FileError;
use crate::live_config::LiveSettings;
use crate::secrets::{url_for_logs, SecretRef};

/// The prefix `${env:}` names must start with unless the server says otherwise.
pub const DEFAULT_ENV_PREFIX: &str = "MARAIN_SECRET_";
/// The largest file `${file:}` reads.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Where references may read secrets from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSources {
    /// `${file:}` reads regular files under this directory only; `None`
    /// turns `${file:}` off.
    pub dir: Option<PathBuf>,
    /// `${env:}` names only variables whose names start with this.
    pub env_prefix: String,
}

impl Default for SecretSources {
    fn default() -> Self {
        SecretSources { dir: None, env_prefix: DEFAULT_ENV_PREFIX.to_string() }
    }
}

impl SecretSources {
    /// The secret `reference` names, read now; the error says why not,
    /// without the reference's own text.
    pub fn resolve(&self, reference: &SecretRef) -> Result<String, String> {
        match reference {
            SecretRef::Env(name) if !name.starts_with(&self.env_prefix) => Err(format!(
                "names an environment variable outside the ones references may name (those starting with `{}`, \
                 the server's --secret-env-prefix)",
                self.env_prefix
            )),
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| "names an environment variable that is not set".into())
            }
            SecretRef::File(path) => self.read_file(Path::new(path)),
        }
    }

    fn read_file(&self, path: &Path) -> Result<String, String> {
        let Some(dir) = &self.dir else {
            return Err("names a file, and `${file:}` is off: the server was started without --secrets-dir".into());
        };
        let dir =
            dir.canonicalize().map_err(|_| "names a file, and the secrets directory cannot be read".to_string())?;
        // Every link resolved: a link inside the directory to a file outside
        // it is outside.
        let path = path.canonicalize().map_err(|_| "names a file that does not exist".to_string())?;
        if !path.starts_with(&dir) {
            return Err("names a file outside the secrets directory (--secrets-dir)".into());
        }
        let mut file = open_without_waiting(&path).map_err(|_| "names a file that cannot be opened".to_string())?;
        let meta = file.metadata().map_err(|_| "names a file that cannot be opened".to_string())?;
        if !meta.is_file() {
            return Err("names something that is not a regular file".into());
        }
        if meta.len() > MAX_SECRET_FILE_BYTES {
            return Err(format!("names a file over the {MAX_SECRET_FILE_BYTES}-byte limit of a secret"));
        }
        let mut bytes = Vec::new();
        let read = (&mut file).take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes);
        read.map_err(|_| "names a file that cannot be read".to_string())?;
        if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
            return Err(format!("names a file over the {MAX_SECRET_FILE_BYTES}-byte limit of a secret"));
        }
        let text = String::from_utf8(bytes).map_err(|_| "names a file that is not UTF-8 text".to_string())?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Opens `path` for reading without waiting on it (a FIFO with no writer
/// would hold the open, and the engine with it) and without following a
/// link it was swapped for since it was resolved.
fn open_without_waiting(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path)
}

/// Every reference in `values` that does not resolve, as an error at the line of
/// file `path` (text `text`) that holds it.
pub fn check(sources: &SecretSources, path: &str, text: &str, values: &Map<String, Json>) -> Vec<FileError> {
    let mut errors = Vec::new();
    walk("values", &Json::Object(values.clone()), &mut |field, value| {
        let Some(reference) = SecretRef::parse(value) else { return };
        if let Err(why) = sources.resolve(&reference) {
            let at = position_of(text, value.trim());
            errors.push(FileError::new(path, at, Some(field.to_string()), format!("the reference in `{field}` {why}")));
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
pub fn resolved(sources: &SecretSources, mut settings: LiveSettings) -> LiveSettings {
    for hook in &mut settings.webhooks {
        let Some(reference) = hook.secret.as_deref().and_then(SecretRef::parse) else { continue };
        match sources.resolve(&reference) {
            Ok(secret) => hook.secret = Some(secret),
            Err(why) => {
                let url = url_for_logs(&hook.url);
                tracing::error!(%url, %why, "a webhook's secret reference no longer resolves; its deliveries go unsigned");
                hook.secret = None;
            }
        }
    }
    settings
}
