//! Generated sites of every shape a real CMS has, for the benches and the
//! incremental-planning property test: N entity schemas of eight fields each,
//! and as many configuration files as asked.
//!
//! - `Independent`: no references.
//! - `Star`: every schema references `e0`.
//! - `Chain`: every schema references the one before it (`e{i}` → `e{i-1}`).
//! - `Layered`: every schema references two earlier ones.

#![allow(dead_code)]

/// How the generated schemas reference each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Independent,
    Star,
    Chain,
    Layered,
}

impl Topology {
    pub const ALL: [Topology; 4] = [Topology::Independent, Topology::Star, Topology::Chain, Topology::Layered];

    pub fn name(self) -> &'static str {
        match self {
            Topology::Independent => "independent",
            Topology::Star => "star",
            Topology::Chain => "chain",
            Topology::Layered => "layered",
        }
    }

    /// The entities `e{i}` references.
    pub fn targets(self, i: usize) -> Vec<usize> {
        match (self, i) {
            (_, 0) | (Topology::Independent, _) => vec![],
            (Topology::Star, _) => vec![0],
            (Topology::Chain, _) => vec![i - 1],
            (Topology::Layered, 1) => vec![0],
            (Topology::Layered, _) => vec![i - 1, i / 2],
        }
    }
}

pub fn schema_path(i: usize) -> String {
    format!("schemas/e{i}.schema.yaml")
}

pub fn config_path(i: usize) -> String {
    format!("config/config.c{i}.yaml")
}

/// The schema of entity `e{i}`: eight fields, references as `topology` says.
pub fn schema(topology: Topology, i: usize) -> String {
    let mut text = format!(
        "id: e{i}\nname: Entity {i}\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: body\n    type: long_text\n  - id: views\n    type: integer\n  - id: score\n    type: float\n  - id: live\n    type: boolean\n  - id: at\n    type: datetime\n"
    );
    let targets = topology.targets(i);
    for (n, t) in targets.iter().enumerate() {
        text.push_str(&format!("  - id: ref{n}\n    type: entity_reference\n    target_entity: e{t}\n"));
    }
    for n in targets.len()..2 {
        text.push_str(&format!("  - id: extra{n}\n    type: text\n"));
    }
    text
}

pub fn config(i: usize) -> String {
    format!("id: c{i}\nprovider: bench\nvalues:\n  enabled: true\n  limit: {i}\n  nested: {{a: 1, b: [x, y]}}\n")
}

/// Every file of a site of `schemas` schemas and `configs` configs, as (path, text).
pub fn site_texts(topology: Topology, schemas: usize, configs: usize) -> Vec<(String, String)> {
    let schemas = (0..schemas).map(|i| (schema_path(i), schema(topology, i)));
    schemas.chain((0..configs).map(|i| (config_path(i), config(i)))).collect()
}

/// `text` with one optional field more: a SAFE `ADD COLUMN`.
pub fn with_field(text: &str, n: usize) -> String {
    format!("{text}  - id: added_{n}\n    type: text\n")
}
