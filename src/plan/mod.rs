//! Planning: a graded change becomes SQL steps, each with its inverse and hazards.
//!
//! One planner per dialect: [`sqlite`] works around SQLite's limited ALTER TABLE
//! with table rebuilds, [`postgres`] alters in place. Both obey the same rules:
//! every step carries its hazards and its inverse, and every step that deletes
//! data first copies it into a backup table that the inverse restores from.

mod postgres;
mod sqlite;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::grade::GradedChange;
use crate::hazard::{worst, Hazard, HazardCode, ProbeKind, Severity};
use crate::model::{EntitySchema, Field};
use crate::probe::{probes_for, regrade, Probe};
pub use crate::sql::Dialect;

/// What a plan is bound to: applying it to any other state is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanBinding {
    /// Hash of the state the plan starts from (the applied file, or "" for none).
    pub base_hash: String,
    /// Hash of the state it produces.
    pub target_hash: String,
    /// Makes backup-table names unique per applied version.
    pub backup_tag: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub binding: PlanBinding,
    #[serde(default)]
    pub dialect: Dialect,
    pub steps: Vec<Step>,
    /// A table rebuild must run with foreign-key enforcement off, and SQLite only
    /// switches that outside a transaction; the store checks keys before commit.
    pub foreign_keys_off: bool,
    pub rollback_foreign_keys_off: bool,
    /// Foreign keys this plan could not add because their target table does not
    /// exist yet (a reference cycle created in one batch, on PostgreSQL): the plan
    /// creating the target adds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<ForeignKey>,
    /// Tables whose references may point at a table this plan drops, because a
    /// later plan of the same batch drops them too (a reference cycle deleted at
    /// once, on SQLite): the foreign-key check before commit skips them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dangling: Vec<String>,
    /// The same for the inverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_dangling: Vec<String>,
    /// How it applies: in one transaction, or (steps that have an online form,
    /// on a big table) in phases before a short cut-over. Chosen from the live
    /// row count once the plan is probed ([`Plan::choose_path`]).
    #[serde(default)]
    pub path: PlanPath,
    /// The rows of the tables the online steps alter, when counted: what the
    /// path was chosen from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<i64>,
}

/// How a plan applies (docs/online-changes.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanPath {
    /// Every statement in the one transaction that records the change.
    #[default]
    Transaction,
    /// The online steps' phases first, each statement on its own, then the
    /// one transaction (the cut-over) with what is left.
    Online,
}

impl PlanPath {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanPath::Transaction => "transaction",
            PlanPath::Online => "online",
        }
    }
}

/// Work done before a change's cut-over, outside its transaction, on a live
/// table: building an index concurrently, validating a constraint. Every
/// statement runs on its own (`CREATE INDEX CONCURRENTLY` cannot run in a
/// transaction), and `reset` runs first, so a phase that failed or was cut
/// short can simply run again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub summary: String,
    /// Clears what an earlier, unfinished run of the phase left.
    pub reset: Vec<String>,
    pub sql: Vec<String>,
    /// Queries run again and again, each a batch in its own transaction,
    /// until one answers 0: each takes the batch size as `$1` and the last
    /// key the batch before took as `$2` (`''` at first), and answers how
    /// many rows it took and its last key (a backup copied, a shadow column
    /// filled, in keyset batches: each starts where the last ended, so the
    /// phase reads the table once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<String>,
    /// Where a backend cannot write in the query that finds a batch (SQLite
    /// has no writing `WITH`): each of `batches` then only finds the batch's
    /// rows, and these statements write them, in the same transaction, over
    /// the rows after `$2` up to and including `$3`, the batch's last key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_writes: Vec<String>,
    /// Counts run once the phase's statements and batches are done, each of
    /// which must answer 0: what the data must not hold for the change to go
    /// on (values its new type cannot hold, say), proven beside live traffic
    /// so that the cut-over need not scan for it. Writes after the proof are
    /// refused by the phases' triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proofs: Vec<String>,
}

/// How a PostgreSQL rewrite's hazard says it converts the rows, on the
/// one-transaction path and on the online path.
pub(crate) const REWRITE_LOCKED: &str = "ALTER COLUMN … TYPE converts every row under an exclusive lock";
pub(crate) const REWRITE_ONLINE: &str =
    "every row is converted online, into a shadow column or table filled in batches beside live traffic, then \
     swapped in a short cut-over";
/// How a SQLite rebuild's hazard says it copies the rows, on either path.
pub(crate) const REBUILD_LOCKED: &str = "every row is copied into a new table";
pub(crate) const REBUILD_ONLINE: &str =
    "every row is copied online, into a shadow table filled in batches beside live traffic, then swapped in a \
     short cut-over";
/// What the probe of a big rewrite adds, and what the online path says instead.
const WRITES_WAIT: &str = "; writes wait until it is done";
const WRITES_GO_ON: &str = "; reads and writes go on meanwhile";

/// A step's online form: its phases, and what remains of its SQL for the
/// cut-over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Online {
    /// The table the phases read in full: its rows decide the path.
    pub table: String,
    pub phases: Vec<Phase>,
    /// The step's SQL in the cut-over, instead of [`Step::sql`].
    pub sql: Vec<String>,
    /// Phases run once the cut-over committed, beside live traffic: what the
    /// old shape left, cleared (SQLite: the table the shadow replaced,
    /// emptied in batches, then dropped). Run once; a crash before they end
    /// leaves what start-up clears.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retire: Vec<Phase>,
}

impl Phase {
    /// A phase of statements alone: no batches, no proofs.
    pub fn statements(summary: String, reset: Vec<String>, sql: Vec<String>) -> Self {
        Phase { summary, reset, sql, batches: vec![], batch_writes: vec![], proofs: vec![] }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub summary: String,
    pub sql: Vec<String>,
    pub rollback_sql: Vec<String>,
    pub hazards: Vec<Hazard>,
    /// Backup tables this step fills before deleting data.
    pub backups: Vec<String>,
    /// Backup tables this step refills data from (a rollback's restore steps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<String>,
    /// The step's online form, when it has one (PostgreSQL: indexes, keys and
    /// constraints added to a live table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<Online>,
}

impl Step {
    /// A step that only records: no SQL.
    pub fn record(summary: String, hazards: Vec<Hazard>) -> Self {
        Step { summary, sql: vec![], rollback_sql: vec![], hazards, backups: vec![], restores: vec![], online: None }
    }

    /// The statements this step runs in the change's transaction on `path`.
    pub fn cut_over(&self, path: PlanPath) -> &[String] {
        match (&self.online, path) {
            (Some(online), PlanPath::Online) => &online.sql,
            _ => &self.sql,
        }
    }

    /// Whether `statement`, one of this step's, copies data into one of its
    /// backup tables (`CREATE TABLE <backup> AS SELECT …`).
    pub fn fills_backup(&self, statement: &str) -> bool {
        let Some(table) = statement.strip_prefix("CREATE TABLE ").and_then(|rest| rest.split_whitespace().next())
        else {
            return false;
        };
        self.backups.iter().any(|b| [Dialect::Sqlite, Dialect::Postgres].iter().any(|d| d.table(b) == table))
    }
}

/// A reference field whose foreign key belongs to another file's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The entity holding the reference.
    pub entity: String,
    pub field: Field,
}

impl ForeignKey {
    pub fn target(&self) -> &str {
        self.field.target_entity.as_deref().unwrap_or_default()
    }

    /// The table holding the reference: the entity table or the field's child table.
    pub fn table(&self) -> String {
        match self.field.cardinality.is_single() {
            true => crate::model::table_name(&self.entity),
            false => crate::sql::child_table(&self.entity, &self.field.id),
        }
    }
}

/// What a file's plan needs to know about the rest of the site. Borrowed, so a
/// batch of a thousand files does not copy the site's sets a thousand times.
#[derive(Clone)]
pub struct PlanContext<'a> {
    pub dialect: Dialect,
    /// Whether an entity's table exists just before this plan runs. PostgreSQL
    /// checks a foreign key's target when the key is added.
    pub existing: &'a dyn Fn(&str) -> bool,
    /// Foreign keys of tables created earlier in the batch that waited for this
    /// file's entity to exist.
    pub waiting: Vec<ForeignKey>,
    /// Foreign keys pointing at this file's entity from tables that are dropped
    /// later in the batch: they must go before this table does.
    pub referrers_dropped_later: Vec<ForeignKey>,
    /// Entities renamed in the same batch (old id → new id): a reference that
    /// follows its target's rename needs no DDL, the key follows the table.
    pub renames: &'a BTreeMap<String, String>,
    /// Which configuration keys hold secrets: their values never reach a
    /// summary or hazard.
    pub redaction: &'a crate::secrets::Redaction,
    /// The site as the batch leaves it: the schema a data file's records are
    /// written with, and who references an entity.
    pub site: &'a crate::site::Site,
}

static NO_ENTITIES: fn(&str) -> bool = |_| false;

impl std::fmt::Debug for PlanContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanContext")
            .field("dialect", &self.dialect)
            .field("waiting", &self.waiting)
            .field("referrers_dropped_later", &self.referrers_dropped_later)
            .field("renames", &self.renames)
            .finish_non_exhaustive()
    }
}
static NO_RENAMES: BTreeMap<String, String> = BTreeMap::new();
static BUILT_IN_SECRETS: crate::secrets::Redaction = crate::secrets::Redaction::BUILT_IN;
static NO_SITE: std::sync::LazyLock<crate::site::Site> = std::sync::LazyLock::new(crate::site::Site::default);

impl PlanContext<'static> {
    /// A file planned on its own: nothing known about the rest of the site.
    pub fn alone(dialect: Dialect) -> Self {
        PlanContext {
            dialect,
            existing: &NO_ENTITIES,
            waiting: Vec::new(),
            referrers_dropped_later: Vec::new(),
            renames: &NO_RENAMES,
            redaction: &BUILT_IN_SECRETS,
            site: &NO_SITE,
        }
    }
}

impl Plan {
    pub fn new(binding: PlanBinding, dialect: Dialect) -> Self {
        Plan {
            binding,
            dialect,
            steps: Vec::new(),
            foreign_keys_off: false,
            rollback_foreign_keys_off: false,
            deferred: Vec::new(),
            dangling: Vec::new(),
            rollback_dangling: Vec::new(),
            path: PlanPath::Transaction,
            table_rows: None,
        }
    }

    /// The tables the steps with an online form read in full, once each.
    pub fn online_tables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for online in self.steps.iter().filter_map(|s| s.online.as_ref()) {
            if !out.contains(&online.table) {
                out.push(online.table.clone());
            }
        }
        out
    }

    /// Takes the online path when a step has an online form and its tables
    /// hold at least `threshold` rows (`rows`, the most of them), the
    /// one-transaction path otherwise.
    pub fn choose_path(&mut self, rows: Option<i64>, threshold: i64) {
        self.table_rows = rows;
        let online = rows.is_some_and(|n| n >= threshold) && !self.online_tables().is_empty();
        self.path = if online { PlanPath::Online } else { PlanPath::Transaction };
        self.word_rewrites();
    }

    /// Words a rewrite's hazard as the path chosen runs it: on the online
    /// path no lock is held while the rows are converted, and writes go on.
    fn word_rewrites(&mut self) {
        let online = self.path == PlanPath::Online;
        for step in self.steps.iter_mut().filter(|s| s.online.is_some()) {
            for hazard in step.hazards.iter_mut().filter(|h| h.code == HazardCode::TableRebuild) {
                for (locked, unlocked) in [(REWRITE_LOCKED, REWRITE_ONLINE), (REBUILD_LOCKED, REBUILD_ONLINE)] {
                    let (from, to) = match online {
                        true => (locked, unlocked),
                        false => (unlocked, locked),
                    };
                    hazard.message = hazard.message.replace(from, to);
                }
                if online {
                    hazard.message = hazard.message.replace(WRITES_WAIT, WRITES_GO_ON);
                }
            }
        }
    }

    /// The probes the cut-over need not run on the online path, each with
    /// the count it is taken as (`None`: the hazard stays as statically
    /// graded). A step's violations and rows left without a value are proven
    /// absent by the constraint or unique index its phases validated (which
    /// has refused new ones since): zero. Values a drop deletes and rows a
    /// rewrite copies only ever lower the grade, and once `approved` covers
    /// the hazard as graded statically, counting them again (a scan of the
    /// table) cannot matter.
    pub fn settled_by_phases(&self, approved: Severity) -> Vec<(Probe, Option<i64>)> {
        if self.path != PlanPath::Online {
            return Vec::new();
        }
        let online = self.steps.iter().filter(|s| s.online.is_some());
        let hazards = online.flat_map(|s| &s.hazards);
        let settled = hazards.filter_map(|h| {
            let probe = h.probe.as_ref()?;
            match probe.kind {
                ProbeKind::Violations | ProbeKind::RowsWithoutValue => Some((probe.clone(), Some(0))),
                // The plan applied is the static one: `severity` is as graded statically.
                ProbeKind::DeletedValues | ProbeKind::RowsCopied if approved >= h.severity => {
                    Some((probe.clone(), None))
                }
                _ => None,
            }
        });
        settled.collect()
    }

    /// The phases that run before the cut-over, in step order (none on the
    /// one-transaction path).
    pub fn phases(&self) -> Vec<&Phase> {
        match self.path {
            PlanPath::Transaction => vec![],
            PlanPath::Online => self.steps.iter().filter_map(|s| s.online.as_ref()).flat_map(|o| &o.phases).collect(),
        }
    }

    /// The phases that run after the cut-over committed, in step order
    /// (none on the one-transaction path).
    pub fn retire_phases(&self) -> Vec<&Phase> {
        match self.path {
            PlanPath::Transaction => vec![],
            PlanPath::Online => self.steps.iter().filter_map(|s| s.online.as_ref()).flat_map(|o| &o.retire).collect(),
        }
    }

    pub fn severity(&self) -> Severity {
        worst(self.steps.iter().flat_map(|s| s.hazards.iter()))
    }

    pub fn hazards(&self) -> Vec<Hazard> {
        self.steps.iter().flat_map(|s| s.hazards.iter().cloned()).collect()
    }

    /// Everything the plan runs on its path: the phases' statements, then the
    /// cut-over's.
    pub fn sql(&self) -> Vec<String> {
        let phases = self.phases().into_iter().flat_map(|p| p.sql.iter().cloned());
        phases.chain(self.steps.iter().flat_map(|s| s.cut_over(self.path).iter().cloned())).collect()
    }

    /// What the cut-over transaction runs on the plan's path (all of it on
    /// the one-transaction path).
    pub fn cut_over_sql(&self) -> Vec<String> {
        self.steps.iter().flat_map(|s| s.cut_over(self.path).iter().cloned()).collect()
    }

    /// The inverse: steps in reverse order, each step's own inverse SQL.
    pub fn rollback_sql(&self) -> Vec<String> {
        self.steps.iter().rev().flat_map(|s| s.rollback_sql.iter().cloned()).collect()
    }

    /// Every probe the plan's hazards carry, once each.
    pub fn probes(&self) -> Vec<Probe> {
        let mut out: Vec<Probe> = Vec::new();
        for p in self.steps.iter().flat_map(|s| &s.hazards).filter_map(|h| h.probe.as_ref()) {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Re-grades every probed hazard with `count(probe)`; a probe without a
    /// result leaves its hazard as statically graded.
    pub fn regrade(&mut self, count: impl Fn(&Probe) -> Option<i64>) {
        for hazard in self.steps.iter_mut().flat_map(|s| s.hazards.iter_mut()) {
            let Some(probe) = hazard.probe.clone() else { continue };
            if let Some(n) = count(&probe) {
                regrade(hazard, &probe, n);
            }
        }
        self.word_rewrites();
    }

    /// Whether applying it deletes data into backups or refills data from them:
    /// such a commit must survive a power cut, since the files cannot re-derive it.
    pub fn moves_data(&self) -> bool {
        self.steps.iter().any(|s| !s.backups.is_empty() || !s.restores.is_empty())
    }

    pub fn backups(&self) -> Vec<String> {
        self.steps.iter().flat_map(|s| s.backups.iter().cloned()).collect()
    }

    /// No steps at all: nothing changed.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The entities whose tables the plan's SQL names, forwards and inverse:
    /// `content_<e>`, a child table `content_<e>__<field>` (every reading of
    /// the name, so an id holding `__` is covered too) and a rebuild's
    /// `marain_rebuild_<e>`. What the engine locks against content requests
    /// while the plan applies; reading more than the plan touches only makes a
    /// request wait, reading less would let it run across the change.
    pub fn entities(&self) -> std::collections::BTreeSet<String> {
        let statements = self.steps.iter().flat_map(|s| s.sql.iter().chain(&s.rollback_sql));
        let mut out = std::collections::BTreeSet::new();
        for statement in statements {
            for ident in quoted_identifiers(statement) {
                let name = ident.strip_prefix("content_").or_else(|| ident.strip_prefix("marain_rebuild_"));
                let Some(name) = name else { continue };
                out.insert(name.to_string());
                out.extend(name.match_indices("__").map(|(at, _)| name[..at].to_string()));
            }
        }
        out
    }
}

/// The double-quoted identifiers in `statement` (`""` inside one is a quote),
/// skipping string literals and the table a foreign key `REFERENCES` (its
/// schema does not change: a key pointing at it does).
fn quoted_identifiers(statement: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = statement.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' => {
                while let Some((_, c)) = chars.next() {
                    if c == '\'' && chars.next_if(|(_, c)| *c == '\'').is_none() {
                        break;
                    }
                }
            }
            '"' => {
                let mut ident = String::new();
                while let Some((_, c)) = chars.next() {
                    if c == '"' && chars.next_if(|(_, c)| *c == '"').is_none() {
                        break;
                    }
                    ident.push(c);
                }
                if !statement[..at].trim_end().to_ascii_uppercase().ends_with("REFERENCES") {
                    out.push(ident);
                }
            }
            _ => {}
        }
    }
    out
}

/// Plans SQLite DDL taking a file's entity from `old` to `new`.
pub fn plan_change(
    old: Option<&EntitySchema>,
    new: Option<&EntitySchema>,
    graded: &GradedChange,
    binding: PlanBinding,
) -> Plan {
    plan_change_in(old, new, graded, binding, &PlanContext::alone(Dialect::Sqlite))
}

/// Plans DDL in `ctx`'s dialect taking a file's entity from `old` to `new`.
pub fn plan_change_in(
    old: Option<&EntitySchema>,
    new: Option<&EntitySchema>,
    graded: &GradedChange,
    binding: PlanBinding,
    ctx: &PlanContext,
) -> Plan {
    let graded = &with_probes(graded, old, new, ctx.dialect);
    match ctx.dialect {
        Dialect::Sqlite => sqlite::plan(old, new, graded, binding, ctx),
        Dialect::Postgres => postgres::plan(graded, binding, ctx),
    }
}

/// The online form of bringing back `field` of `entity` refilled from
/// backup `backup` (a rollback of a change that dropped it), in `dialect`:
/// the phases add and fill a shadow column, the cut-over names it; on
/// PostgreSQL, given `whole` (the entity as the rollback leaves it, when
/// this is its only change), the phases fill a shadow table and the
/// cut-over swaps it in. `None` where the field keeps the one-transaction
/// path (a child table, a unique key, allowed values, a reference).
pub fn online_refill(
    dialect: Dialect,
    entity: &str,
    field: &Field,
    backup: &str,
    whole: Option<&EntitySchema>,
) -> Option<Online> {
    match dialect {
        Dialect::Postgres => {
            let spec = crate::sql::postgres::ColumnSpec::of_field(entity, field)?;
            let swapped =
                whole.and_then(|e| postgres::online_swap(e, postgres::Reshape::Refill { spec: &spec, backup }));
            swapped.or_else(|| postgres::online_refill(&spec, backup))
        }
        Dialect::Sqlite => sqlite::online_refill(entity, field, backup),
    }
}

/// A configuration change: no SQL, one recorded step per change item; the engine
/// applies it to the live state.
pub fn plan_config(graded: &GradedChange, binding: PlanBinding) -> Plan {
    let mut plan = Plan::new(binding, Dialect::default());
    plan.steps = graded.items.iter().map(|gi| Step::record(gi.item.summary(), gi.hazards.clone())).collect();
    plan
}

/// Gives each hazard the probe that settles it, if there is one.
fn with_probes(
    graded: &GradedChange,
    old: Option<&EntitySchema>,
    new: Option<&EntitySchema>,
    dialect: Dialect,
) -> GradedChange {
    let mut graded = graded.clone();
    for gi in &mut graded.items {
        for probe in probes_for(&gi.item, old, new, dialect) {
            if let Some(h) = gi.hazards.iter_mut().find(|h| h.code == probe.code && h.probe.is_none()) {
                h.probe = Some(probe);
            }
        }
    }
    graded
}

/// Copies a multi-valued field's child table into backup table
/// `marain_backup_<tag>_…`; returns its name and the SQL.
fn backup_child(dialect: Dialect, tag: &str, entity: &str, f: &Field) -> (String, String) {
    let child = crate::sql::child_table(entity, &f.id);
    let bk = crate::sql::backup_table(tag, &child, None);
    let sql = format!("CREATE TABLE {} AS SELECT * FROM {}", dialect.table(&bk), dialect.table(&child));
    (bk, sql)
}

/// Refills a multi-valued field's child table from backup `bk`.
fn restore_child(dialect: Dialect, bk: &str, entity: &str, f: &Field) -> String {
    use crate::sql::quote;
    format!(
        "INSERT INTO {} ({p}, {d}, {v}) SELECT {p}, {d}, {v} FROM {}",
        dialect.table(&crate::sql::child_table(entity, &f.id)),
        dialect.table(bk),
        p = quote("parent_id"),
        d = quote("delta"),
        v = quote("value"),
    )
}

/// The old entity as it stands after an entity rename in the same plan: the
/// table has the new name, the fields are still the old ones.
fn renamed_old(old: &EntitySchema, new: &EntitySchema) -> EntitySchema {
    EntitySchema { id: new.id.clone(), renamed_from: None, ..old.clone() }
}

/// The values of a field whose type changes, copied before the conversion so
/// that a rollback gives back exactly what was there (`' 7'`, not `'7'`;
/// `'007'`, not `'7'`), on either backend.
pub(super) struct Originals {
    pub backup: String,
    /// Where the values live before the change (and again after a rollback).
    table: String,
    column: String,
    /// The columns naming a row of `table`.
    keys: &'static [&'static str],
    original: crate::model::FieldType,
    converted: crate::model::FieldType,
}

impl Originals {
    /// `None` when the change converts no stored value (text types share one).
    pub fn of(tag: &str, entity: &str, old: &Field, new: &Field) -> Option<Originals> {
        use crate::sql::{backup_table, child_table};
        if !crate::sql::convert::converts(old.field_type, new.field_type) {
            return None;
        }
        let (table, column, keys): (String, String, &'static [&'static str]) = match old.column() {
            Some(column) => (crate::model::table_name(entity), column, &["id"]),
            None => (child_table(entity, &old.id), "value".into(), &["parent_id", "delta"]),
        };
        let backup = match old.column() {
            Some(_) => backup_table(tag, &table, Some(&column)),
            None => backup_table(tag, &table, None),
        };
        Some(Originals { backup, table, column, keys, original: old.field_type, converted: new.field_type })
    }

    /// Copies the rows' keys and values, before the conversion.
    pub fn copy(&self, d: Dialect) -> String {
        let mut cols: Vec<String> = self.keys.iter().map(|k| crate::sql::quote(k)).collect();
        cols.push(crate::sql::quote(&self.column));
        format!("CREATE TABLE {} AS SELECT {} FROM {}", d.table(&self.backup), cols.join(", "), d.table(&self.table))
    }

    /// After the inverse conversion: each row still holding what the apply made
    /// of its original value gets the original back; a row written since keeps
    /// the inverse conversion of its new value, and a row added since is not in
    /// the copy.
    pub fn restore(&self, d: Dialect) -> String {
        use crate::sql::{convert::value, quote};
        let (t, b, c) = (d.table(&self.table), d.table(&self.backup), quote(&self.column));
        let there = value(d, &format!("{b}.{c}"), self.original, self.converted);
        let back = value(d, &format!("({there})"), self.converted, self.original);
        let same_row: Vec<String> = self.keys.iter().map(|k| format!("{b}.{k} = {t}.{k}", k = quote(k))).collect();
        format!(
            "UPDATE {t} SET {c} = {b}.{c} FROM {b} WHERE {} AND {t}.{c} IS NOT DISTINCT FROM ({back})",
            same_row.join(" AND ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_names_the_entities_of_the_tables_its_sql_touches() {
        let binding = PlanBinding { base_hash: String::new(), target_hash: String::new(), backup_tag: "t".into() };
        let mut plan = Plan::new(binding, Dialect::Postgres);
        let mut step = Step::record("x".into(), vec![]);
        step.sql = vec![
            r#"CREATE TABLE "marain_backup_t_content_post__body" AS SELECT "id", "body" FROM "content_post""#.into(),
            r#"ALTER TABLE "content_post__tags" ADD CONSTRAINT "x" FOREIGN KEY ("value") REFERENCES "content_tag" ("id")"#.into(),
            r#"INSERT INTO "content_note" ("id", "t") VALUES ('"content_secret"', 'it''s "content_other"')"#.into(),
        ];
        step.rollback_sql = vec![r#"ALTER TABLE "marain_rebuild_page" RENAME TO "content_page""#.into()];
        plan.steps.push(step);
        let names: Vec<String> = plan.entities().into_iter().collect();
        // `tag` is only referenced: its schema does not change.
        assert_eq!(names, ["note", "page", "post", "post__tags"]);
    }
}
