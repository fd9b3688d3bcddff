//! Configuration files (`config/*.yaml`): the second kind. No SQL: planning
//! records one step per changed key, and the engine applies the file to the
//! live settings once it commits. Secrets are redacted wherever text is shown.

use crate::config::{diff_configs, ConfigFile};
use crate::diff::ChangeItem;
use crate::error::FileError;
use crate::grade::{grade, GradedChange};
use crate::plan::{plan_config, Plan, PlanBinding, PlanContext};
use crate::secrets::Redaction;
use crate::site::{CheckScope, Site, SiteFile};

use super::FileKind;

pub struct ConfigKind;

impl FileKind for ConfigKind {
    fn name(&self) -> &'static str {
        "config"
    }

    fn directory(&self) -> &'static str {
        "config"
    }

    fn pattern(&self) -> &'static str {
        "config/*.yaml"
    }

    fn claims(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or("");
        path.starts_with("config/") && (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.starts_with('.')
    }

    fn stage(&self) -> u8 {
        1
    }

    fn parse(&self, path: &str, text: &str) -> Result<SiteFile, Vec<FileError>> {
        ConfigFile::parse(path, text).map(SiteFile::Config)
    }

    fn active_in(&self, file: &SiteFile, env: &str) -> bool {
        file.config().is_none_or(|c| c.is_active(env))
    }

    /// Config ids are unique per environment.
    fn check(&self, site: &Site, scope: &CheckScope) -> Vec<FileError> {
        let mut errors = Vec::new();
        for id in &scope.config_ids {
            let mut files = site.config_files_of(id);
            let Some(first) = files.next() else { continue };
            for c in files {
                errors.push(FileError::new(
                    &c.path,
                    crate::locate::top_key(&c.text, "id"),
                    Some("id".into()),
                    format!("config id `{id}` is already defined by {} for this environment", first.path),
                ));
            }
        }
        errors
    }

    fn plan(
        &self,
        old: Option<&SiteFile>,
        new: Option<&SiteFile>,
        binding: PlanBinding,
        ctx: &PlanContext,
    ) -> (GradedChange, Plan) {
        let (old, new) = (old.and_then(SiteFile::config), new.and_then(SiteFile::config));
        let items = diff_configs(old.map(|c| &c.doc), new.map(|c| &c.doc), ctx.redaction)
            .into_iter()
            .map(ChangeItem::Config)
            .collect();
        let graded = grade(items);
        let plan = plan_config(&graded, binding);
        (graded, plan)
    }

    fn feeds_live_settings(&self) -> bool {
        true
    }

    fn shown(&self, text: &str, redaction: &Redaction) -> String {
        redaction.redact_yaml_text(text)
    }

    fn shown_errors(&self, text: &str, errors: Vec<FileError>, redaction: &Redaction) -> Vec<FileError> {
        // The file's secrets are found once for all its errors.
        let quoted = redaction.quoted_secrets(text);
        errors.into_iter().map(|e| FileError { message: quoted.hide(&e.message), ..e }).collect()
    }
}
