//! A secret in a config file never reaches what the product shows, whatever
//! form YAML gives it and wherever it sits: generated documents with one
//! secret at a random depth, in a random form (plain, quoted, a flow mapping
//! or sequence, a block or folded scalar, a multi-line scalar, an anchor a
//! secret key aliases, a commented-out line, a URL's password), checked
//! against the shown text (diff view, file history), the parse errors and
//! their messages, the graded change's summary and hazards, and a message
//! quoting the value. `tests/engine_pipeline.rs` and the server's tests follow
//! the same secrets through events, `secure.log`, webhooks and the API.

use marain::secrets::Redaction;
use marain::site::Site;
use marain::site_plan::plan_sites;
use proptest::prelude::*;

/// Where the secret goes and how it is written.
#[derive(Debug, Clone, Copy)]
enum Form {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    FlowMappingValue,
    FlowSequenceValue,
    Block,
    Folded,
    MultiLineQuoted,
    PlainContinued,
    Anchored,
    CommentedOut,
    KeyInsideAFlowMapping,
    KeyInsideAListOfMappings,
    UrlPassword,
}

const FORMS: [Form; 14] = [
    Form::Plain,
    Form::SingleQuoted,
    Form::DoubleQuoted,
    Form::FlowMappingValue,
    Form::FlowSequenceValue,
    Form::Block,
    Form::Folded,
    Form::MultiLineQuoted,
    Form::PlainContinued,
    Form::Anchored,
    Form::CommentedOut,
    Form::KeyInsideAFlowMapping,
    Form::KeyInsideAListOfMappings,
    Form::UrlPassword,
];

const SECRET_KEYS: [&str; 5] = ["password", "api_key", "smtp_secret", "refresh_token", "private_key"];
const KEYS: [&str; 6] = ["name", "mode", "level", "region", "owner", "colour"];
const WORDS: [&str; 5] = ["alpha", "beta", "gamma", "delta", "omega"];

/// A filler entry, `key: value` at `indent`.
fn filler(indent: &str, n: usize) -> String {
    format!("{indent}{}: {}\n", KEYS[n % KEYS.len()], WORDS[n % WORDS.len()])
}

/// The config document, with `secret` written in `form` under `key` at
/// nesting `depth`.
fn document(secret: &str, form: Form, key: &str, depth: usize, fillers: usize) -> String {
    let mut text = String::from("id: probe\nvalues:\n");
    if let Form::Anchored = form {
        text.push_str(&format!("  common: &shared {secret}\n"));
    }
    let mut indent = String::from("  ");
    for level in 0..depth {
        text.push_str(&filler(&indent, level + fillers));
        text.push_str(&format!("{indent}nest{level}:\n"));
        indent.push_str("  ");
    }
    text.push_str(&filler(&indent, fillers));
    let i = &indent;
    text.push_str(&match form {
        Form::Plain => format!("{i}{key}: {secret}\n"),
        Form::SingleQuoted => format!("{i}{key}: '{secret}'\n"),
        Form::DoubleQuoted => format!("{i}{key}: \"{secret}\"\n"),
        Form::FlowMappingValue => format!("{i}{key}: {{user: bob, inner: {secret}}}\n"),
        Form::FlowSequenceValue => format!("{i}{key}: [one, {secret}]\n"),
        Form::Block => format!("{i}{key}: |\n{i}  first line\n{i}  {secret}\n"),
        Form::Folded => format!("{i}{key}: >\n{i}  {secret}\n"),
        Form::MultiLineQuoted => format!("{i}{key}: \"first\n{i}  {secret}\"\n"),
        Form::PlainContinued => format!("{i}{key}: first\n{i}  {secret}\n"),
        Form::Anchored => format!("{i}{key}: *shared\n"),
        Form::CommentedOut => format!("{i}# {key}: {secret}\n"),
        Form::KeyInsideAFlowMapping => format!("{i}smtp: {{host: mail, {key}: {secret}}}\n"),
        Form::KeyInsideAListOfMappings => format!("{i}hooks: [{{url: 'https://x', {key}: {secret}}}]\n"),
        Form::UrlPassword => format!("{i}store: postgres://app:{secret}@db/x\n"),
    });
    text.push_str(&filler(&indent, fillers + 1));
    text
}

/// How a message would quote the value holding `secret` (escaped, as serde
/// shows a string); `None` when no value holds it.
fn quoted(form: Form, secret: &str) -> Option<String> {
    let value = match form {
        Form::CommentedOut => return None,
        Form::UrlPassword => format!("postgres://app:{secret}@db/x"),
        Form::Block => format!("first line\n{secret}\n"),
        Form::Folded => format!("{secret}\n"),
        Form::MultiLineQuoted | Form::PlainContinued => format!("first {secret}"),
        _ => secret.to_string(),
    };
    Some(format!("{value:?}"))
}

fn case() -> impl Strategy<Value = (String, Form, &'static str, usize, usize)> {
    (
        "[a-z]{4}[0-9]{4}",
        proptest::sample::select(FORMS.to_vec()),
        proptest::sample::select(SECRET_KEYS.to_vec()),
        0..3usize,
        0..6usize,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_secret_never_reaches_what_is_shown((secret, form, key, depth, fillers) in case()) {
        let text = document(&secret, form, key, depth, fillers);
        let path = "config/config.probe.yaml";
        let redaction = Redaction::default();

        // The diff view and the file history.
        let shown = marain::kind::shown_text(path, &text, &redaction);
        prop_assert!(!shown.contains(&secret), "{form:?} shown:\n{shown}\nfrom:\n{text}");
        prop_assert_eq!(shown.lines().count(), text.lines().count(), "{:?}: lines moved:\n{}", form, shown);

        // Parse errors, and the graded change's summary and hazards.
        let (site, errors) = Site::from_texts([(path, text.as_str())]);
        let errors = format!("{errors:?}");
        prop_assert!(!errors.contains(&secret), "{form:?} errors: {errors}");
        for change in plan_sites(&Site::default(), &site, |_, _| "t".into()) {
            let summary: Vec<String> = change.graded.items.iter().map(|i| i.item.summary()).collect();
            let hazards: Vec<&marain::Hazard> = change.graded.hazards().collect();
            let graded = format!("{summary:?}{hazards:?}");
            prop_assert!(!graded.contains(&secret), "{form:?} graded: {graded}");
        }

        // A message built from the file that quotes the value as the
        // loader would (a comment is never in one).
        if let Some(quoted) = quoted(form, &secret) {
            let message = format!("values.{key}: invalid type: string {quoted}, expected a number");
            let shown = redaction.redact_message(&text, &message);
            prop_assert!(!shown.contains(&secret), "{form:?} message: {shown}");
        }
    }
}

#[test]
fn the_generated_documents_are_yaml_the_loader_takes() {
    // A case that fails to parse would prove little: every form loads.
    for form in FORMS {
        for depth in 0..3 {
            let text = document("abcd1234", form, "password", depth, 2);
            let (_, errors) = Site::from_texts([("config/config.probe.yaml", text.as_str())]);
            assert!(errors.is_empty(), "{form:?} at depth {depth}: {errors:?}\n{text}");
        }
    }
}
