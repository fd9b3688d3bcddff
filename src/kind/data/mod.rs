//! Reference data (`data/<entity>/*.yaml`): the third kind. Each file holds
//! records of one entity, keyed by `id` — the categories, countries or roles a
//! site ships with, kept in version control. Records are checked against the
//! entity's live schema like content API input; a change is diffed by id and
//! planned as INSERT / UPDATE / DELETE in the same transaction model as DDL,
//! with the rows it overwrites or deletes backed up first.
//!
//! A file owns the fields its records name: other fields of the same rows stay
//! the content API's. A row changed by another writer since the file applied is
//! drift of the file, never silently overwritten.

mod check;
mod plan;
mod refill;
mod values;

use crate::error::FileError;
use crate::grade::GradedChange;
use crate::plan::{Dialect, Plan, PlanBinding, PlanContext};
use crate::site::{CheckScope, Site, SiteFile};

use super::{FileKind, Undone};

pub use crate::records::{diff_records, DataFile, DataRecord, RecordChange, RowDiff};
pub use values::row_differs;

pub struct DataKind;

impl FileKind for DataKind {
    fn name(&self) -> &'static str {
        "data"
    }

    fn directory(&self) -> &'static str {
        "data"
    }

    fn pattern(&self) -> &'static str {
        "data/<entity>/*.yaml"
    }

    fn claims(&self, path: &str) -> bool {
        crate::records::entity_of(path).is_some()
    }

    fn stage(&self) -> u8 {
        2
    }

    fn parse(&self, path: &str, text: &str) -> Result<SiteFile, Vec<FileError>> {
        DataFile::parse(path, text).map(|f| SiteFile::Data(std::sync::Arc::new(f)))
    }

    fn check(&self, site: &Site, scope: &CheckScope) -> Vec<FileError> {
        check::check(site, scope)
    }

    fn plan(
        &self,
        old: Option<&SiteFile>,
        new: Option<&SiteFile>,
        binding: PlanBinding,
        ctx: &PlanContext,
    ) -> (GradedChange, Plan) {
        let (old, new) = (old.and_then(SiteFile::data), new.and_then(SiteFile::data));
        plan::plan(old, new, binding, ctx)
    }

    fn refill(&self, dialect: Dialect, undone: &Undone, plan: &mut Plan) {
        plan.steps.extend(refill::refill(dialect, undone));
    }
}
