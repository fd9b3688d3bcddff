//! Configuration files (`config/*.yaml`): the model, environment selection, and
//! the key-path diff with its grading.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::diff::ConfigChange;
use crate::error::FileError;
use crate::hash::sha256_hex;
use crate::hazard::{Hazard, HazardCode, Severity};
use crate::locate::top_key;
use crate::secrets::Redaction;
use crate::validate::identifier_problem;
use crate::yaml::{self, RawScalar};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigDoc {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Which part of the system consumes it.
    pub provider: Option<String>,
    pub version: Option<String>,
    pub values: Map<String, Json>,
}

/// One configuration file as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub path: String,
    pub hash: String,
    pub text: String,
    pub doc: ConfigDoc,
    /// `dev` for `config.system.dev.yaml`; `None` for a file of every environment.
    pub env: Option<String>,
}

/// `config.<id>.yaml` → (`id`, none); `config.<id>.<env>.yaml` → (`id`, `env`).
fn name_parts(path: &str) -> Option<(String, Option<String>)> {
    let name = path.rsplit('/').next()?;
    let stem = name.strip_suffix(".yaml").or_else(|| name.strip_suffix(".yml"))?;
    let mut parts = stem.strip_prefix("config.")?.split('.');
    let id = parts.next()?.to_string();
    let env = parts.next().map(str::to_string);
    parts.next().is_none().then_some((id, env))
}

impl ConfigFile {
    pub fn parse(path: &str, text: &str) -> Result<Self, Vec<FileError>> {
        let raw = yaml::parse_config(path, text).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        if let Some(p) = identifier_problem(&raw.id) {
            errors.push(FileError::new(path, top_key(text, "id"), Some("id".into()), format!("config id {p}")));
        }
        let (named_id, env) = name_parts(path).map(|(i, e)| (Some(i), e)).unwrap_or((None, None));
        if let Some(named) = named_id.filter(|n| *n != raw.id) {
            errors.push(FileError::new(
                path,
                top_key(text, "id"),
                Some("id".into()),
                format!("the file name says config `{named}` but `id` is `{}`", raw.id),
            ));
        }
        let values = match raw.values {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m,
            Some(_) => {
                errors.push(FileError::new(
                    path,
                    top_key(text, "values"),
                    Some("values".into()),
                    "values must be a mapping",
                ));
                Map::new()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let problems = crate::live_config::shape_problems(&raw.id, &values, path, text);
        if !problems.is_empty() {
            return Err(problems);
        }
        let version = raw.version.map(|v| match v {
            RawScalar::Text(s) => s,
            RawScalar::Integer(i) => i.to_string(),
            RawScalar::Float(f) => f.to_string(),
            RawScalar::Bool(b) => b.to_string(),
        });
        Ok(ConfigFile {
            path: path.to_string(),
            hash: sha256_hex(text.as_bytes()),
            text: text.to_string(),
            doc: ConfigDoc {
                id: raw.id,
                name: raw.name,
                description: raw.description,
                provider: raw.provider,
                version,
                values,
            },
            env,
        })
    }

    /// Whether this file applies in environment `env`.
    pub fn is_active(&self, env: &str) -> bool {
        self.env.as_deref().is_none_or(|e| e == env)
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "mapping",
    }
}

/// Diffs two versions of a configuration file; `None` is "no file". Values
/// under the keys `redaction` names are never shown.
pub fn diff_configs(old: Option<&ConfigDoc>, new: Option<&ConfigDoc>, redaction: &Redaction) -> Vec<ConfigChange> {
    let (o, n) = match (old, new) {
        (None, None) => return vec![],
        (None, Some(n)) => {
            let mut items = vec![ConfigChange::ConfigCreated { config: n.id.clone() }];
            items.extend(secrets_in_file(&n.id, None, &n.values, redaction));
            return items;
        }
        (Some(o), None) => return vec![ConfigChange::ConfigDeleted { config: o.id.clone() }],
        (Some(o), Some(n)) => (o, n),
    };
    let config = n.id.clone();
    let mut items = Vec::new();
    for (key, a, b) in [("id", Some(&o.id), Some(&n.id)), ("provider", o.provider.as_ref(), n.provider.as_ref())] {
        if a != b {
            items.push(ConfigChange::ConfigIdentity {
                config: config.clone(),
                key: key.into(),
                old: a.cloned().unwrap_or_default(),
                new: b.cloned().unwrap_or_default(),
            });
        }
    }
    let keys: Vec<String> = [
        ("name", o.name != n.name),
        ("description", o.description != n.description),
        ("version", o.version != n.version),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(k, _)| k.to_string())
    .collect();
    if !keys.is_empty() {
        items.push(ConfigChange::ConfigMetadata { config: config.clone(), keys });
    }
    diff_maps(&config, "", &o.values, &n.values, redaction, &mut items);
    items.extend(secrets_in_file(&config, Some(&o.values), &n.values, redaction));
    items
}

/// The secrets written into `new` itself that are new or changed since `old`.
fn secrets_in_file(
    config: &str,
    old: Option<&Map<String, Json>>,
    new: &Map<String, Json>,
    redaction: &Redaction,
) -> Vec<ConfigChange> {
    let new_values = Json::Object(new.clone());
    let old_values = old.map(|o| Json::Object(o.clone()));
    redaction
        .literal_secrets("", &new_values)
        .into_iter()
        .filter(|path| old_values.as_ref().and_then(|o| value_at(o, path)) != value_at(&new_values, path))
        .map(|path| ConfigChange::ConfigSecretInFile { config: config.into(), path })
        .collect()
}

/// The value at a dotted key path (`webhooks.0.secret`), array items by index.
fn value_at<'a>(value: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.').try_fold(value, |v, key| match v {
        Json::Object(map) => map.get(key),
        Json::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    })
}

fn diff_maps(
    config: &str,
    prefix: &str,
    o: &Map<String, Json>,
    n: &Map<String, Json>,
    redaction: &Redaction,
    out: &mut Vec<ConfigChange>,
) {
    let path = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    for (k, ov) in o {
        match n.get(k) {
            None => out.push(ConfigChange::ConfigKeyRemoved { config: config.into(), path: path(k) }),
            Some(nv) => diff_values(config, &path(k), ov, nv, redaction, out),
        }
    }
    for k in n.keys().filter(|k| !o.contains_key(*k)) {
        out.push(ConfigChange::ConfigKeyAdded { config: config.into(), path: path(k) });
    }
}

fn diff_values(config: &str, path: &str, o: &Json, n: &Json, redaction: &Redaction, out: &mut Vec<ConfigChange>) {
    match (o, n) {
        (Json::Object(a), Json::Object(b)) => diff_maps(config, path, a, b, redaction, out),
        _ if o == n => {}
        (Json::Object(_), _) => {
            out.push(ConfigChange::ConfigMappingReplaced { config: config.into(), path: path.into() })
        }
        _ if kind(o) != kind(n) && !(matches!(o, Json::Number(_)) && matches!(n, Json::Number(_))) => {
            out.push(ConfigChange::ConfigTypeChanged {
                config: config.into(),
                path: path.into(),
                old_type: kind(o).into(),
                new_type: kind(n).into(),
            })
        }
        _ => {
            // Secrets are never shown; a change only they make still says so.
            let (old, mut new) = (redaction.shown_value(path, o), redaction.shown_value(path, n));
            if old == new {
                new.push_str(" (changed)");
            }
            out.push(ConfigChange::ConfigValueChanged { config: config.into(), path: path.into(), old, new })
        }
    }
}

/// The grades of configuration changes (`docs/grading.md`), and a flag on keys the running
/// process cannot apply live.
pub fn config_hazards(item: &ConfigChange) -> Vec<Hazard> {
    let mut hazards = key_hazards(item);
    let restart_path = match item {
        ConfigChange::ConfigKeyAdded { config, path }
        | ConfigChange::ConfigKeyRemoved { config, path }
        | ConfigChange::ConfigValueChanged { config, path, .. }
        | ConfigChange::ConfigTypeChanged { config, path, .. }
        | ConfigChange::ConfigMappingReplaced { config, path } => Some((config, path)),
        ConfigChange::ConfigSecretInFile { .. } => None,
        ConfigChange::ConfigCreated { .. }
        | ConfigChange::ConfigDeleted { .. }
        | ConfigChange::ConfigIdentity { .. }
        | ConfigChange::ConfigMetadata { .. } => None,
    };
    if let Some((config, path)) = restart_path.filter(|(c, p)| crate::live_config::takes_effect_on_restart(c, p)) {
        hazards.push(Hazard::new(
            HazardCode::RestartRequired,
            Severity::Safe,
            format!(
                "`{config}.{path}` takes effect on restart: it is stored now, the running server keeps the old value"
            ),
        ));
    }
    hazards
}

fn key_hazards(item: &ConfigChange) -> Vec<Hazard> {
    use HazardCode as C;
    use Severity as S;
    let h = |code, sev, msg: String| vec![Hazard::new(code, sev, msg)];
    match item {
        ConfigChange::ConfigCreated { config } => h(C::ConfigCreated, S::Safe, format!("new config `{config}`")),
        ConfigChange::ConfigDeleted { config } => h(
            C::ConfigKeyRemoved,
            S::Warning,
            format!("config `{config}` is removed: its consumers fall back to defaults"),
        ),
        ConfigChange::ConfigIdentity { config, key, old, new } => h(
            C::ConfigIdentityChanged,
            S::Breaking,
            format!("config `{config}`: `{key}` changes from `{old}` to `{new}`; its consumer changes"),
        ),
        ConfigChange::ConfigMetadata { config, keys } => {
            h(C::MetadataOnly, S::Safe, format!("config `{config}`: {} edited", keys.join(", ")))
        }
        ConfigChange::ConfigKeyAdded { config, path } => {
            h(C::ConfigKeyAdded, S::Safe, format!("`{config}.{path}` is added"))
        }
        ConfigChange::ConfigKeyRemoved { config, path } => h(
            C::ConfigKeyRemoved,
            S::Warning,
            format!("`{config}.{path}` is removed: its consumer falls back to a default"),
        ),
        ConfigChange::ConfigValueChanged { config, path, old, new } => {
            h(C::ConfigValueChanged, S::Safe, format!("`{config}.{path}` changes from {old} to {new}"))
        }
        ConfigChange::ConfigTypeChanged { config, path, old_type, new_type } => {
            h(C::ConfigTypeChanged, S::Warning, format!("`{config}.{path}` changes type from {old_type} to {new_type}"))
        }
        ConfigChange::ConfigSecretInFile { config, path } => h(
            C::SecretInFile,
            S::Warning,
            format!("`{config}.{path}` holds a secret in the file itself: move it to ${{env:…}} or ${{file:…}}"),
        ),
        ConfigChange::ConfigMappingReplaced { config, path } => h(
            C::ConfigMappingReplaced,
            S::Breaking,
            format!("`{config}.{path}` was a mapping and is replaced by a single value: every key under it is gone"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> ConfigDoc {
        ConfigFile::parse("config/config.gateway.yaml", text).unwrap().doc
    }

    #[test]
    fn env_from_file_name() {
        let f = ConfigFile::parse("config/config.system.dev.yaml", "id: system\n").unwrap();
        assert_eq!(f.env.as_deref(), Some("dev"));
        assert!(f.is_active("dev") && !f.is_active("prod"));
        let err = ConfigFile::parse("config/config.system.yaml", "id: api\n").unwrap_err();
        assert!(err[0].to_string().contains("file name says config `system`"), "{err:?}");
    }

    #[test]
    fn key_paths_and_grades() {
        let a = doc("id: gateway\nprovider: api\nvalues:\n  rate_limit:\n    enabled: false\n    rpm: 60\n  cors: {origins: [a]}\n  old: 1\n");
        let b = doc("id: gateway\nprovider: api\nvalues:\n  rate_limit:\n    enabled: true\n    rpm: \"60\"\n  cors: none\n  new: 2\n");
        let items = diff_configs(Some(&a), Some(&b), &Redaction::default());
        let graded: Vec<String> = items
            .iter()
            .map(|i| {
                let h = &config_hazards(i)[0];
                format!("{} {}", h.severity, h.code.as_str())
            })
            .collect();
        assert_eq!(
            graded,
            // Keys in sorted order: cors, old, rate_limit.*, then additions.
            [
                "BREAKING config_mapping_replaced",
                "WARNING config_key_removed",
                "SAFE config_value_changed",
                "WARNING config_type_changed",
                "SAFE config_key_added"
            ]
        );
    }

    #[test]
    fn comment_only_edit_is_empty() {
        let a = doc("id: gateway\nvalues: {a: 1}\n");
        let b = doc("# hello\nid: gateway\nvalues:\n  a: 1\n");
        assert!(diff_configs(Some(&a), Some(&b), &Redaction::default()).is_empty());
    }
}
