//! The built-in configuration consumers (`docs/config-format.md`): the typed shapes of the
//! `system`, `api` and `hot_reload` configs, the settings the running server takes
//! from them without a restart, and the keys that only a restart can apply.
//!
//! Shapes accept keys they do not know (the upstream files carry many), but a key
//! they do know must have the right type: a file that does not fit is rejected
//! with the key's path and line, and the last good settings stay live.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::FileError;
use crate::locate::key_path;

/// Keys applied to the stored state but read by the process only at start.
pub const RESTART_ONLY: &[(&str, &str)] = &[
    ("api", "host"),
    ("api", "port"),
    ("api", "max_connections"),
    ("api", "max_event_streams"),
    ("system", "database"),
    ("system", "server"),
    ("system", "logging.file"),
];

/// Whether a change at `path` of config `config` only takes effect on restart.
pub fn takes_effect_on_restart(config: &str, path: &str) -> bool {
    RESTART_ONLY.iter().any(|(c, p)| *c == config && (path == *p || path.starts_with(&format!("{p}."))))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// How the server writes its log lines (`system.logging.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Whether SAFE changes apply without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoApply {
    Safe,
    None,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SystemValues {
    app: AppValues,
    logging: LoggingValues,
    /// Key names whose values are secrets, beyond the built-in words.
    redact_keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppValues {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoggingValues {
    level: Option<LogLevel>,
    format: Option<LogFormat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiValues {
    rate_limit: RateLimit,
    cors: CorsValues,
    trusted_proxies: Vec<core::net::IpAddr>,
    metrics_from: Vec<core::net::IpAddr>,
    max_connections: Option<u32>,
    max_event_streams: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CorsValues {
    allowed_origins: Vec<String>,
}

/// Requests per client address; a burst may spend `burst_size` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    pub enabled: bool,
    pub requests_per_minute: u32,
    pub burst_size: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { enabled: false, requests_per_minute: 600, burst_size: 60 }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HotReloadValues {
    debounce_ms: Option<u64>,
    sync_poll_ms: Option<u64>,
    lock_timeout_ms: Option<u64>,
    webhook_timeout_ms: Option<u64>,
    online_threshold_rows: Option<u64>,
    online_batch_rows: Option<u64>,
    online_batch_pause_ms: Option<u64>,
    auto_apply: Option<AutoApply>,
    directories: BTreeMap<String, DirectoryValues>,
    webhooks: Vec<Webhook>,
}

/// Where every engine event is POSTed as JSON, signed with HMAC-SHA256 of the
/// body under `secret` when one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DirectoryValues {
    auto_apply: Option<AutoApply>,
}

/// What the running server applies live, taken from the applied configs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSettings {
    pub app_name: Option<String>,
    pub log_level: Option<LogLevel>,
    /// `None` keeps the format the process started with (text).
    pub log_format: Option<LogFormat>,
    pub rate_limit: RateLimit,
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client (`api.trusted_proxies`).
    pub trusted_proxies: Vec<core::net::IpAddr>,
    /// Peers that may read `GET /metrics` without a token (`api.metrics_from`):
    /// the connecting address itself, never a forwarded one.
    pub metrics_from: Vec<core::net::IpAddr>,
    /// How many HTTP connections may be open at once (`api.max_connections`);
    /// read at start-up only.
    pub max_connections: Option<u32>,
    /// How many event streams may be open at once (`api.max_event_streams`,
    /// by default half the connections); read at start-up only.
    pub max_event_streams: Option<u32>,
    /// Trailing-edge debounce of the watcher; `None` keeps the command line's.
    pub debounce_ms: Option<u64>,
    /// PostgreSQL: how often to look for other instances' changes that no
    /// notification announced; `None` keeps the command line's.
    pub sync_poll_ms: Option<u64>,
    /// PostgreSQL: how long an apply waits for a table lock before it backs
    /// off; `None` keeps the command line's.
    pub lock_timeout_ms: Option<u64>,
    /// How long one webhook attempt may take before it counts as failed;
    /// `None`: 10 s.
    pub webhook_timeout_ms: Option<u64>,
    /// The row count from which a change with an online form takes the online
    /// path; `None`: [`ONLINE_THRESHOLD_ROWS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_threshold_rows: Option<u64>,
    /// How many rows one batch of an online phase takes; `None`:
    /// [`ONLINE_BATCH_ROWS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_batch_rows: Option<u64>,
    /// How long an online phase rests between two batches; `None`: no rest
    /// (it still slows itself when content requests slow down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_batch_pause_ms: Option<u64>,
    pub auto_apply: Option<AutoApply>,
    /// Per top-level directory (`schemas`, `config`), overriding `auto_apply`.
    pub directory_auto_apply: BTreeMap<String, AutoApply>,
    pub webhooks: Vec<Webhook>,
    /// Key names whose values are never shown (`system.redact_keys`), beyond
    /// the built-in words.
    pub redact_keys: Vec<String>,
}

/// Which keys hold secrets, by the `values` of a `system` config.
pub fn system_redaction(values: &Map<String, Json>) -> crate::secrets::Redaction {
    let system: SystemValues = serde_json::from_value(Json::Object(values.clone())).unwrap_or_default();
    crate::secrets::Redaction::new(&system.redact_keys)
}

/// The row count from which a change takes the online path when
/// `hot_reload.online_threshold_rows` does not say (docs/online-changes.md):
/// below it, one transaction is cheaper and its locks are short anyway.
pub const ONLINE_THRESHOLD_ROWS: u64 = 10_000;

/// How many rows one batch of an online phase takes when
/// `hot_reload.online_batch_rows` does not say: each batch is a transaction of
/// its own, short beside live writes.
pub const ONLINE_BATCH_ROWS: u64 = 10_000;

impl LiveSettings {
    /// The row count from which a change takes the online path.
    pub fn online_threshold(&self) -> i64 {
        i64::try_from(self.online_threshold_rows.unwrap_or(ONLINE_THRESHOLD_ROWS)).unwrap_or(i64::MAX)
    }

    /// How many rows one batch of an online phase takes.
    pub fn batch_rows(&self) -> u64 {
        self.online_batch_rows.unwrap_or(ONLINE_BATCH_ROWS)
    }

    /// How long an online phase rests between two batches.
    pub fn batch_pause(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.online_batch_pause_ms.unwrap_or(0))
    }

    /// Which keys hold secrets on this site (the built-in words and `system.redact_keys`).
    pub fn redaction(&self) -> crate::secrets::Redaction {
        crate::secrets::Redaction::new(&self.redact_keys)
    }

    /// The settings the built-in configs give; `values(id)` is the `values` of the
    /// applied config `id`, if any.
    pub fn from_configs<'a>(values: impl Fn(&str) -> Option<&'a Map<String, Json>>) -> Self {
        let values = |id: &str| values(id).map(|v| Json::Object(v.clone()));
        let system: SystemValues = values("system").and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        let api: ApiValues = values("api").and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        let hot: HotReloadValues =
            values("hot_reload").and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        LiveSettings {
            app_name: system.app.name,
            log_level: system.logging.level,
            log_format: system.logging.format,
            rate_limit: api.rate_limit,
            cors_allowed_origins: api.cors.allowed_origins,
            trusted_proxies: api.trusted_proxies,
            metrics_from: api.metrics_from,
            max_connections: api.max_connections,
            max_event_streams: api.max_event_streams,
            debounce_ms: hot.debounce_ms,
            sync_poll_ms: hot.sync_poll_ms,
            lock_timeout_ms: hot.lock_timeout_ms,
            webhook_timeout_ms: hot.webhook_timeout_ms,
            online_threshold_rows: hot.online_threshold_rows,
            online_batch_rows: hot.online_batch_rows,
            online_batch_pause_ms: hot.online_batch_pause_ms,
            auto_apply: hot.auto_apply,
            directory_auto_apply: hot.directories.into_iter().filter_map(|(d, v)| Some((d, v.auto_apply?))).collect(),
            webhooks: hot.webhooks,
            redact_keys: system.redact_keys,
        }
    }

    /// Whether a SAFE change to `path` applies by itself; `default` is the
    /// command line's policy when no config says.
    pub fn auto_applies(&self, path: &str, default: bool) -> bool {
        let dir = path.split('/').next().unwrap_or("");
        match self.directory_auto_apply.get(dir).copied().or(self.auto_apply) {
            Some(AutoApply::Safe) => true,
            Some(AutoApply::None) => false,
            None => default,
        }
    }
}

/// Checks the `values` of built-in config `id` against its shape; other configs pass.
pub fn shape_problems(id: &str, values: &Map<String, Json>, path: &str, text: &str) -> Vec<FileError> {
    let result = match id {
        "system" => fits::<SystemValues>(values),
        "api" => fits::<ApiValues>(values).and_then(|()| rate_limit_sane(values)).and_then(|()| {
            in_range(values, &[("max_connections", 2..=1_000_000), ("max_event_streams", 1..=1_000_000)], "")
        }),
        "hot_reload" => {
            fits::<HotReloadValues>(values).and_then(|()| debounce_sane(values)).and_then(|()| webhooks_sane(values))
        }
        _ => Ok(()),
    };
    match result {
        Ok(()) => vec![],
        Err((key, message)) => {
            let segments: Vec<&str> = std::iter::once("values").chain(key.split('.')).collect();
            vec![FileError::new(path, key_path(text, &segments), Some(format!("values.{key}")), message)]
        }
    }
}

fn fits<T: DeserializeOwned>(values: &Map<String, Json>) -> Result<(), (String, String)> {
    let value = Json::Object(values.clone());
    serde_path_to_error::deserialize::<_, T>(value).map(|_| ()).map_err(|e| {
        let key = e.path().to_string();
        (key.clone(), format!("`{key}`: {}", e.inner()))
    })
}

fn rate_limit_sane(values: &Map<String, Json>) -> Result<(), (String, String)> {
    let limit: RateLimit =
        values.get("rate_limit").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    if limit.enabled && limit.requests_per_minute == 0 {
        let key = "rate_limit.requests_per_minute".to_string();
        return Err((key, "requests_per_minute must be at least 1 when the limit is enabled".into()));
    }
    Ok(())
}

fn webhooks_sane(values: &Map<String, Json>) -> Result<(), (String, String)> {
    let hooks: Vec<Webhook> =
        values.get("webhooks").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    for (i, hook) in hooks.iter().enumerate() {
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
            return Err((
                format!("webhooks.{i}.url"),
                format!("webhook url `{}` must start with http:// or https://", hook.url),
            ));
        }
    }
    Ok(())
}

fn debounce_sane(values: &Map<String, Json>) -> Result<(), (String, String)> {
    let ranges = [
        ("debounce_ms", 1..=10_000),
        ("sync_poll_ms", 100..=600_000),
        ("lock_timeout_ms", 10..=600_000),
        ("webhook_timeout_ms", 100..=60_000),
        ("online_batch_pause_ms", 0..=60_000),
    ];
    in_range(values, &ranges, " milliseconds")?;
    in_range(values, &[("online_batch_rows", 100..=1_000_000)], " rows")
}

/// Each of the integer `keys` present lies in its range; `unit` follows the bounds.
fn in_range(
    values: &Map<String, Json>,
    keys: &[(&str, std::ops::RangeInclusive<u64>)],
    unit: &str,
) -> Result<(), (String, String)> {
    for (key, range) in keys {
        match values.get(*key).and_then(Json::as_u64) {
            Some(n) if !range.contains(&n) => {
                let (low, high) = (range.start(), range.end());
                return Err(((*key).into(), format!("{key} is {n}; use {low} to {high}{unit}")));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use crate::site::Site;

    fn parse(path: &str, text: &str) -> Result<ConfigFile, Vec<FileError>> {
        ConfigFile::parse(path, text)
    }

    #[test]
    fn a_known_key_of_the_wrong_type_is_rejected_at_its_line() {
        let text = "id: system\nvalues:\n  app:\n    name: Demo\n  logging:\n    level: loud\n";
        let errors = parse("config/config.system.yaml", text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (6, 5));
        assert_eq!(errors[0].field.as_deref(), Some("values.logging.level"));
        assert!(errors[0].message.contains("unknown variant `loud`"), "{}", errors[0].message);

        let text = "id: api\nvalues:\n  rate_limit:\n    enabled: true\n    requests_per_minute: many\n";
        let errors = parse("config/config.api.yaml", text).unwrap_err();
        assert_eq!(errors[0].line, 5, "{errors:?}");
        let text = "id: hot_reload\nvalues:\n  debounce_ms: 0\n";
        assert_eq!(parse("config/config.hot_reload.yaml", text).unwrap_err()[0].line, 3);
        let text = "id: hot_reload\nvalues:\n  sync_poll_ms: 1000\n  lock_timeout_ms: 5\n";
        let errors = parse("config/config.hot_reload.yaml", text).unwrap_err();
        assert_eq!(errors[0].line, 4, "{errors:?}");
        assert!(errors[0].message.contains("lock_timeout_ms is 5; use 10 to 600000"), "{errors:?}");
        let text = "id: api\nvalues:\n  max_event_streams: 8\n  max_connections: 1\n";
        let errors = parse("config/config.api.yaml", text).unwrap_err();
        assert_eq!((errors[0].line, errors[0].field.as_deref()), (4, Some("values.max_connections")), "{errors:?}");
        assert!(errors[0].message.contains("max_connections is 1; use 2 to 1000000"), "{errors:?}");
        let text = "id: system\nvalues:\n  redact_keys: license\n";
        assert_eq!(parse("config/config.system.yaml", text).unwrap_err()[0].line, 3);
    }

    #[test]
    fn unknown_keys_pass_and_settings_are_read() {
        let mut site = Site::default();
        for (path, text) in [
            ("config/config.system.yaml", "id: system\nvalues:\n  logging:\n    level: debug\n    format: json\n"),
            (
                "config/config.api.yaml",
                "id: api\nvalues:\n  port: 3030\n  rate_limit:\n    enabled: true\n    requests_per_minute: 60\n    burst_size: 5\n  cors:\n    enabled: true\n    allowed_origins: [\"http://a.example\"]\n",
            ),
            (
                "config/config.hot_reload.yaml",
                "id: hot_reload\nvalues:\n  auto_apply: safe\n  directories:\n    schemas:\n      auto_apply: none\n",
            ),
        ] {
            site.insert_file(crate::site::SiteFile::Config(parse(path, text).unwrap()));
        }
        let s = site.live_settings();
        assert_eq!(s.log_level, Some(LogLevel::Debug));
        assert_eq!(s.rate_limit, RateLimit { enabled: true, requests_per_minute: 60, burst_size: 5 });
        assert_eq!(s.cors_allowed_origins, ["http://a.example"]);
        assert!(!s.auto_applies("schemas/a.schema.yaml", true));
        assert!(s.auto_applies("config/config.api.yaml", false));
        assert!(LiveSettings::default().auto_applies("schemas/a.schema.yaml", true));
    }

    #[test]
    fn restart_only_keys() {
        assert!(takes_effect_on_restart("api", "port"));
        assert!(takes_effect_on_restart("system", "database.connections.sqlite.file"));
        assert!(!takes_effect_on_restart("api", "portal"));
        assert!(!takes_effect_on_restart("system", "logging.level"));
    }
}
