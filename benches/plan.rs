//! diff + grade + plan: one 200-field schema, and a whole 1,000-file site; and
//! what `marain plan` does for one SAFE edit (parse both sites, check, plan) on
//! generated sites of 1,000 schemas and 1,000 configs of each topology (the cost
//! must not grow with how the schemas reference each other).
//! And reference data: one record edited in a 1,000-record data file on a site
//! of 300 entities in a reference chain, against one field added to one of
//! its schemas, each parsed, checked and planned as the engine's batch does.
//! `cargo bench --bench plan` prints the timings (target: ≤ 1 ms for 200 fields).

#[path = "../tests/support/generated.rs"]
mod generated;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use marain::plan::Dialect;
use marain::site::{Site, SiteFile};
use marain::site_plan::{plan_files_in, plan_sites_in};

const TYPES: [&str; 6] = ["text", "long_text", "integer", "float", "boolean", "datetime"];

fn schema(id: &str, fields: usize, variant: usize) -> String {
    let mut text = format!("id: {id}\nname: Entity {id}\nfields:\n");
    for i in 0..fields {
        // The variant drops every 10th field, retypes every 7th and adds one.
        if variant == 1 && i % 10 == 3 {
            continue;
        }
        let t = if variant == 1 && i % 7 == 0 { "text" } else { TYPES[i % TYPES.len()] };
        text.push_str(&format!("  - id: f{i}\n    type: {t}\n    required: {}\n    label: Field {i}\n", i % 5 == 0));
    }
    if variant == 1 {
        text.push_str("  - id: added\n    type: text\n");
    }
    text
}

fn site(files: usize, fields: usize, variant: usize) -> Site {
    let texts: Vec<(String, String)> =
        (0..files).map(|i| (format!("schemas/e{i}.schema.yaml"), schema(&format!("e{i}"), fields, variant))).collect();
    let (site, errors) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    assert!(errors.is_empty(), "{errors:?}");
    site
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("diff_grade_plan");
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        for (files, fields) in [(1, 200), (1000, 20)] {
            let (a, b) = (site(files, fields, 0), site(files, fields, 1));
            let id = BenchmarkId::new(format!("{}/{files}_files", dialect.as_str()), fields);
            group.bench_with_input(id, &(a, b), |bench, (a, b)| {
                bench.iter(|| plan_sites_in(dialect, a, b, |_, s| s.to_string()))
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("marain_plan_one_edit");
    group.sample_size(20);
    for topology in generated::Topology::ALL {
        let from = generated::site_texts(topology, 1000, 1000);
        let mut to = from.clone();
        to[500].1 = generated::with_field(&to[500].1, 0);
        group.bench_function(topology.name(), |bench| {
            bench.iter(|| {
                let load =
                    |texts: &[(String, String)]| Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
                let ((a, ea), (b, eb)) = (load(&from), load(&to));
                assert!(ea.is_empty() && eb.is_empty());
                let changes = plan_sites_in(Dialect::Postgres, &a, &b, |_, s| s.to_string());
                assert_eq!(changes.len(), 1);
                changes
            })
        });
        let (a, b) = (
            Site::from_texts(from.iter().map(|(p, t)| (p.as_str(), t.as_str()))).0,
            Site::from_texts(to.iter().map(|(p, t)| (p.as_str(), t.as_str()))).0,
        );
        group.bench_function(format!("{}/plan_only", topology.name()), |bench| {
            bench.iter(|| plan_sites_in(Dialect::Postgres, &a, &b, |_, s| s.to_string()))
        });
    }
    group.finish();

    let texts: Vec<(String, String)> =
        (0..1000).map(|i| (format!("schemas/e{i}.schema.yaml"), schema(&format!("e{i}"), 20, 0))).collect();
    c.bench_function("parse_and_validate_1000_files", |bench| {
        bench.iter(|| Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str()))))
    });
}

/// A data file of `e150` with `n` records; `edited` changes the title of one.
fn records(n: usize, edited: bool) -> String {
    let mut text = String::from("records:\n");
    for i in 0..n {
        let title = if edited && i == n / 2 { "Edited".to_string() } else { format!("Record {i}") };
        text.push_str(&format!(
            "  - id: r{i}\n    title: {title}\n    views: {i}\n    score: {i}.5\n    live: true\n    at: 2026-01-01T00:00:00Z\n"
        ));
    }
    text
}

/// One file of `path` changed to `text` on `site`: parsed, checked and
/// planned as the engine's batch does.
fn one_edit(site: &Site, path: &str, text: &str) -> usize {
    let mut next = site.clone();
    next.insert_file(SiteFile::parse(path, text).expect("the edit parses"));
    let paths = [path.to_string()];
    assert!(next.check_changes(site, &paths).is_empty());
    plan_files_in(Dialect::Postgres, site, &next, [path], |_, s| s.to_string()).len()
}

fn data_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("reference_data");
    group.sample_size(20);
    let data = "data/e150/main.yaml";
    let mut texts = generated::site_texts(generated::Topology::Chain, 300, 0);
    texts.push((data.to_string(), records(1000, false)));
    let (site, errors) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    assert!(errors.is_empty(), "{errors:?}");
    let edited = records(1000, true);
    group.bench_function("one_record_of_1000_edited", |bench| bench.iter(|| one_edit(&site, data, &edited)));
    group.bench_function("parse_1000_records", |bench| bench.iter(|| SiteFile::parse(data, &edited)));
    let next = {
        let mut next = site.clone();
        next.insert_file(SiteFile::parse(data, &edited).unwrap());
        next
    };
    let paths = [data.to_string()];
    group.bench_function("check_1000_records", |bench| bench.iter(|| next.check_changes(&site, &paths)));
    group.bench_function("plan_one_record_of_1000", |bench| {
        bench.iter(|| plan_files_in(Dialect::Postgres, &site, &next, [data], |_, s| s.to_string()))
    });
    let schema = generated::schema_path(150);
    let with_field = generated::with_field(&texts[150].1, 0);
    group.bench_function("one_field_added_to_a_schema", |bench| bench.iter(|| one_edit(&site, &schema, &with_field)));
    group.finish();
}

criterion_group!(benches, bench, data_bench);
criterion_main!(benches);
