//! The Schema page's picture, drawn on the server: every entity a record (its
//! id and row count, then one row per field), every reference an arrow, laid
//! out by layout-rs (ranks, crossing reduction) and written as SVG. A pending
//! change colours its entity by severity; a field a BREAKING change drops is
//! drawn red and marked, a field it adds green.

use std::collections::{BTreeMap, BTreeSet};

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::StyleAttr;
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, RecordDef, ShapeKind};
use layout::topo::layout::VisualGraph;
use marain::model::{EntitySchema, Field};
use marain::Severity;

/// What a pending change does to one entity, for the picture.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    pub severity: Option<Severity>,
    pub dropped: BTreeSet<String>,
    pub added: Vec<Field>,
}

/// Sites with at most this many entities get layout-rs's rank and crossing
/// optimisation (fewer crossings); larger ones the layered layout as it comes.
const OPTIMISE_UP_TO: usize = 30;

/// Marks a dropped field's row; the SVG's text for it is then coloured.
const DROPPED: &str = " (dropped)";
const ADDED: &str = " (added)";

pub fn field_row(field: &Field) -> String {
    let mut traits = vec![match &field.target_entity {
        Some(target) => format!("→ {target}"),
        None => field.field_type.as_str().to_string(),
    }];
    for (on, word) in [(field.required, "required"), (field.unique, "unique"), (field.indexed, "indexed")] {
        if on {
            traits.push(word.to_string());
        }
    }
    if !field.cardinality.is_single() {
        traits.push("many".to_string());
    }
    format!("{}: {}", field.id, traits.join(" · "))
}

fn fill(severity: Option<Severity>) -> Color {
    Color::new(match severity {
        None => 0xffffffff,
        Some(Severity::Safe) => 0xdafbe1ff,
        Some(Severity::Warning) => 0xfff8c5ff,
        Some(Severity::Blocked) => 0xf3e8ffff,
        Some(_) => 0xffebe9ff,
    })
}

/// The SVG of `entities` (sorted by id), with `rows` per entity and what
/// `pending` changes do to them.
pub fn draw(entities: &[&EntitySchema], rows: &BTreeMap<String, i64>, pending: &BTreeMap<String, Pending>) -> String {
    let mut graph = VisualGraph::new(Orientation::LeftToRight);
    let mut nodes = BTreeMap::new();
    let none = Pending::default();
    for entity in entities {
        let change = pending.get(&entity.id).unwrap_or(&none);
        let count = rows.get(&entity.id).map(|n| marain::plural::count(*n, "row", "rows")).unwrap_or_default();
        let mut cells = vec![RecordDef::new_text(&format!("{} — {count}", entity.id))];
        for field in &entity.fields {
            let mark = if change.dropped.contains(&field.id) { DROPPED } else { "" };
            cells.push(RecordDef::new_text(&format!("{}{mark}", field_row(field))));
        }
        for field in &change.added {
            cells.push(RecordDef::new_text(&format!("{}{ADDED}", field_row(field))));
        }
        let look = StyleAttr::new(Color::new(0x57606aff), 1, Some(fill(change.severity)), 4, 13);
        // The graph runs left to right; the record's cells run across it
        // (one below the other) when nested one level.
        let shape = ShapeKind::Record(RecordDef::Array(vec![RecordDef::Array(cells)]));
        let size = get_shape_size(Orientation::LeftToRight, &shape, look.font_size, false);
        let element = Element::create(shape, look, Orientation::LeftToRight, size);
        nodes.insert(entity.id.clone(), graph.add_node(element));
    }
    for entity in entities {
        for field in &entity.fields {
            let (Some(target), Some(from)) = (&field.target_entity, nodes.get(&entity.id)) else { continue };
            if let Some(to) = nodes.get(target) {
                graph.add_edge(Arrow::simple(""), *from, *to);
            }
        }
    }
    let mut svg = SVGWriter::new();
    if !nodes.is_empty() {
        // The rank and crossing optimisers cost time that grows steeply with
        // long references (42 s for 100 layered entities in a debug build);
        // past a small site the plain layered layout is drawn at once.
        let optimise = entities.len() <= OPTIMISE_UP_TO;
        graph.do_it(false, !optimise, false, &mut svg);
    }
    let svg = svg.finalize();
    // An XML declaration has no place inside an HTML page.
    let svg = svg.find("<svg").map_or(svg.as_str(), |at| &svg[at..]);
    colour_marked(svg)
}

/// Colours the rows the picture marked dropped (red) and added (green).
fn colour_marked(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    for (i, part) in svg.split("<tspan").enumerate() {
        if i == 0 {
            out.push_str(part);
            continue;
        }
        out.push_str("<tspan");
        let text = part.split('>').nth(1).unwrap_or("");
        if text.contains(DROPPED) {
            out.push_str(" fill=\"#a40e26\" font-weight=\"bold\" text-decoration=\"line-through\"");
        } else if text.contains(ADDED) {
            out.push_str(" fill=\"#116329\" font-weight=\"bold\"");
        }
        out.push_str(part);
    }
    out
}

/// The Schema page's data: the applied entities, their row counts, and the
/// pending changes' effect on each.
pub async fn schema(engine: &marain::engine::Coordinator) -> crate::dto::SchemaDto {
    let snapshot = engine.snapshot();
    let mut files: Vec<&marain::site::SchemaFile> = snapshot.applied.schema_files().collect();
    files.sort_by(|a, b| a.entity.id.cmp(&b.entity.id));
    let mut rows = BTreeMap::new();
    for file in &files {
        if let Ok((_, total)) = engine.content().list(&file.entity.id, 1, 0).await {
            rows.insert(file.entity.id.clone(), total);
        }
    }
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    let mut headlines = BTreeMap::new();
    for change in snapshot.pending.iter().filter(|c| c.origin.is_none()) {
        let Some(old) = snapshot.applied.schema_file(&change.file) else { continue };
        let new = change.new_file.as_ref().and_then(|f| f.entity());
        let entry = pending.entry(old.entity.id.clone()).or_default();
        entry.severity = Some(change.severity);
        if let Some(new) = new {
            entry.dropped =
                old.entity.fields.iter().filter(|f| new.field(&f.id).is_none()).map(|f| f.id.clone()).collect();
            entry.added = new.fields.iter().filter(|f| old.entity.field(&f.id).is_none()).cloned().collect();
        } else {
            entry.dropped = old.entity.fields.iter().map(|f| f.id.clone()).collect();
        }
        headlines.insert(old.entity.id.clone(), change.headline.clone());
    }
    let entities: Vec<&EntitySchema> = files.iter().map(|f| &f.entity).collect();
    let svg = draw(&entities, &rows, &pending);
    let entities = files
        .iter()
        .map(|f| crate::dto::SchemaEntityDto {
            id: f.entity.id.clone(),
            name: f.entity.name.clone(),
            file: f.path.clone(),
            fields: f.entity.fields.len(),
            rows: rows.get(&f.entity.id).copied(),
            references: f
                .entity
                .fields
                .iter()
                .filter_map(|x| x.target_entity.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            pending: pending.get(&f.entity.id).and_then(|p| p.severity),
            pending_headline: headlines.get(&f.entity.id).cloned(),
        })
        .collect();
    crate::dto::SchemaDto { svg, entities }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(text: &str) -> EntitySchema {
        marain::site::SchemaFile::parse("schemas/x.schema.yaml", text).unwrap().entity
    }

    #[test]
    fn every_entity_is_drawn_and_a_dropped_field_is_red() {
        let user = entity(
            "id: user\nname: User\nfields:\n  - id: name\n    type: text\n    required: true\n    unique: true\n",
        );
        let post = entity(
            "id: post\nname: Post\nfields:\n  - id: author\n    type: entity_reference\n    target_entity: user\n  - id: body\n    type: long_text\n",
        );
        let rows = BTreeMap::from([("user".to_string(), 1), ("post".to_string(), 12)]);
        let dropped = Pending {
            severity: Some(Severity::Breaking),
            dropped: BTreeSet::from(["body".to_string()]),
            added: vec![],
        };
        let svg = draw(&[&post, &user], &rows, &BTreeMap::from([("post".to_string(), dropped)]));
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("user — 1 row<") && svg.contains("post — 12 rows<"), "{svg}");
        assert!(svg.contains("name: text · required · unique"), "{svg}");
        assert!(svg.contains("author: → user"), "{svg}");
        let body = svg.split("<tspan").find(|t| t.contains("body: long_text (dropped)")).unwrap();
        assert!(body.starts_with(" fill=\"#a40e26\""), "{body}");
        assert!(svg.contains("<path"), "the reference is an arrow: {svg}");
    }

    /// The outline of each entity's box (the rounded rectangle drawn last).
    fn boxes(svg: &str) -> Vec<(f64, f64, f64, f64)> {
        let attr = |rect: &str, name: &str| -> f64 {
            let at = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            rect[at..].split('"').next().unwrap().parse().unwrap()
        };
        svg.split("<rect")
            .skip(1)
            .filter(|r| r.split("/>").next().unwrap().contains("rx=\"4\""))
            .map(|r| (attr(r, "x"), attr(r, "y"), attr(r, "width"), attr(r, "height")))
            .collect()
    }

    /// A site of 100 entities, each referencing the one before it and the
    /// first (the "layered" shape of the benches): every box is drawn, and no
    /// two overlap.
    #[test]
    fn a_hundred_referencing_entities_are_laid_out_without_overlap() {
        let entities: Vec<EntitySchema> = (0..100)
            .map(|i| {
                let mut text = format!("id: e{i}\nname: E{i}\nfields:\n  - id: title\n    type: text\n");
                if i > 0 {
                    text += &format!(
                        "  - id: prev\n    type: entity_reference\n    target_entity: e{}\n  - id: root\n    type: entity_reference\n    target_entity: e0\n",
                        i - 1
                    );
                }
                entity(&text)
            })
            .collect();
        let refs: Vec<&EntitySchema> = entities.iter().collect();
        let started = std::time::Instant::now();
        let svg = draw(&refs, &BTreeMap::new(), &BTreeMap::new());
        eprintln!("{} entities drawn in {:?}, {} bytes", entities.len(), started.elapsed(), svg.len());
        let boxes = boxes(&svg);
        assert_eq!(boxes.len(), entities.len(), "one box per entity");
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                let apart = a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
                assert!(apart, "boxes overlap: {a:?} and {b:?}");
            }
        }
    }
}
