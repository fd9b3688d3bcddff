//! Command-line arguments. Every `serve` flag has an environment equivalent so the
//! binary runs the same under a process manager.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "marain", version = crate::version::LONG, about = "Marain hot-reload: YAML files as the live source of truth")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `marain` alone serves, with these flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the site, apply changes, serve the dashboard and API (the default).
    Serve(ServeArgs),
    /// Validate every file of a site without touching a database.
    /// Exit code 0: valid; 2: invalid.
    Check(CheckArgs),
    /// Show the graded plan that takes one site to another, without a database.
    /// Exit code 0: all SAFE or nothing to do; 1: needs approval; 2: invalid input.
    Plan(PlanArgs),
    /// List applied versions, or verify the tamper-evident chain of the history.
    History(HistoryArgs),
    /// List the backup tables of dropped data, or prune old ones.
    Backups(BackupsArgs),
    /// Manage dashboard accounts.
    Admin(AdminArgs),
    /// Manage API tokens (`Authorization: Bearer`).
    Token(TokenArgs),
    /// Ask the running server to roll a file back to a version; the change waits
    /// for approval in the dashboard unless `--approve` is given with an
    /// approver's token.
    Rollback(RollbackArgs),
    /// Bring content across from the legacy JSON `content` table into the typed
    /// tables: `plan`, `infer`, `run`, `verify`, `finish`, in that order
    /// (docs/legacy.md). Exit code 0: fine; 1: needs attention; 2: invalid input.
    Legacy(LegacyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LegacyArgs {
    #[command(subcommand)]
    pub action: LegacyAction,
    /// The site's database: the typed tables, and the legacy table unless
    /// `--legacy-database` names another.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/marain.db", global = true)]
    pub database: String,
    /// The database holding the legacy table, when it is not the site's. The
    /// content API serves and writes legacy rows only when it is the same.
    #[arg(long, env = "MARAIN_LEGACY_DATABASE", global = true)]
    pub legacy_database: Option<String>,
    /// The legacy table's name.
    #[arg(long, default_value = "content", global = true)]
    pub legacy_table: String,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text, global = true)]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Subcommand)]
pub enum LegacyAction {
    /// Per entity type: rows, keys mapped to fields, keys no field takes, and
    /// every value that will not convert, with why. Writes nothing.
    Plan {
        /// Read against this site's schemas instead of those applied in the
        /// database.
        #[arg(long)]
        site: Option<PathBuf>,
        /// Which `config.<id>.<env>.yaml` files apply (with `--site`).
        #[arg(long, env = "MARAIN_ENV", default_value = "dev")]
        env: String,
    },
    /// Write a starting `schemas/<type>.schema.yaml` per entity type, inferred
    /// from the data.
    Infer {
        /// The site directory to write `schemas/` into.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite schema files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Copy the rows that fit into the typed tables, in batches of one
    /// transaction each; resumable, idempotent by id.
    Run {
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
        /// Keep the JSON keys no field takes (in `marain_legacy_extra`) instead
        /// of leaving such rows in the legacy table.
        #[arg(long)]
        keep_unmapped: bool,
        /// Content API writes go to the typed tables only, not to the legacy rows.
        #[arg(long)]
        no_dual_write: bool,
    },
    /// Compare every copied value with the JSON it came from.
    Verify,
    /// After a clean verify with every row copied: rename the legacy table
    /// `content_legacy_<timestamp>` (kept, never dropped) and end the move.
    Finish,
}

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub action: AdminAction,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/marain.db", global = true)]
    pub database: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminAction {
    /// Add an account; the password is read from `MARAIN_PASSWORD` or, if unset,
    /// from the first line of standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = ["viewer", "approver"])]
        role: String,
        /// Replace the password and role of an existing account (its sessions end).
        #[arg(long)]
        replace: bool,
    },
    /// Remove an account; its sessions end on their next request.
    Remove {
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/marain.db", global = true)]
    pub database: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["viewer", "approver"])]
        role: String,
        /// Valid for this long: `30d`, `12h` or `45m`; without it the token does
        /// not expire.
        #[arg(long, value_parser = parse_lifetime)]
        expires_in: Option<std::time::Duration>,
    },
    /// List the tokens: name, role, created, expires (never their secrets).
    List,
    /// Revoke a token; requests carrying it are refused at once.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

/// `30d`, `12h`, `45m` as a duration.
pub fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| format!("`{text}`: use a number and d, h or m, e.g. 30d"))?;
    let seconds = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        _ => return Err(format!("`{text}`: use a number and d, h or m, e.g. 30d")),
    };
    match seconds {
        Some(s) if s > 0 && s <= 3650 * 86_400 => Ok(std::time::Duration::from_secs(s)),
        _ => Err(format!("`{text}`: use between 1 minute and 3650 days")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// Site-relative path, e.g. schemas/article.schema.yaml.
    #[arg(long)]
    pub file: String,
    #[arg(long)]
    pub version: i64,
    /// Why; recorded with the version.
    #[arg(long)]
    pub reason: Option<String>,
    /// Apply at once (needs an approver token); BREAKING rollbacks also need `--confirm`.
    #[arg(long)]
    pub approve: bool,
    /// The entity or config id, for a BREAKING rollback with `--approve`.
    #[arg(long)]
    pub confirm: Option<String>,
    /// The running server.
    #[arg(long, env = "MARAIN_URL", default_value = "http://127.0.0.1:3000")]
    pub server: String,
    #[arg(long, env = "MARAIN_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Clone, Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    pub action: Option<BackupsAction>,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/marain.db", global = true)]
    pub database: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackupsAction {
    /// Drop the backups of versions applied more than N days ago; rollbacks past
    /// them can no longer refill that data.
    Prune {
        #[arg(long)]
        older_than_days: u32,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The site directory, holding `schemas/` and `config/`.
    #[arg(long, env = "MARAIN_SITE", default_value = "examples/site")]
    pub site: PathBuf,
    /// Where content tables and the history live: `sqlite://…` or
    /// `postgres://…` (several instances may share one PostgreSQL database).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/marain.db")]
    pub database: String,
    /// When `--database` is a connection pooler in transaction mode
    /// (PgBouncer's `pool_mode = transaction`): the same PostgreSQL database
    /// reached without the pooler. `LISTEN`, migrations and the leases of
    /// online schema changes use it, since they need a session that outlives
    /// a transaction; the pooled URL then runs without prepared statements.
    /// See docs/multi-instance.md.
    #[arg(long, env = "MARAIN_DIRECT_DATABASE_URL")]
    pub direct_database: Option<String>,
    /// The address to listen on.
    #[arg(long, env = "MARAIN_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// The built dashboard assets (cargo-leptos's site root).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub assets: PathBuf,
    /// Quiet time after a file event before it is processed, in milliseconds.
    #[arg(long, env = "MARAIN_DEBOUNCE_MS", default_value_t = 25)]
    pub debounce_ms: u64,
    /// How many events a slow event-stream client may fall behind before it is
    /// told to refetch everything (a `resync` event) instead.
    #[arg(long, env = "MARAIN_EVENT_BUFFER", default_value_t = 1024)]
    pub event_buffer: usize,
    /// Which `config.<id>.<env>.yaml` files apply.
    #[arg(long, env = "MARAIN_ENV", default_value = "dev")]
    pub env: String,
    /// Every reload event is appended here as one JSON line.
    #[arg(long, env = "MARAIN_SECURE_LOG", default_value = "data/secure.log")]
    pub secure_log: Option<PathBuf>,
    /// The first start's `admin` password (otherwise a random one is printed).
    #[arg(long, env = "MARAIN_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Mark the session cookie `Secure` (behind HTTPS).
    #[arg(long, env = "MARAIN_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// On PostgreSQL: how often to look for changes of other instances that no
    /// notification announced, in milliseconds.
    #[arg(long, env = "MARAIN_SYNC_POLL_MS", default_value_t = 5000)]
    pub sync_poll_ms: u64,
    /// On PostgreSQL: how long an apply waits for a table lock before it backs
    /// off and tries again, in milliseconds.
    #[arg(long, env = "MARAIN_LOCK_TIMEOUT_MS", default_value_t = 2000)]
    pub lock_timeout_ms: u64,
    /// `shared`: every instance watches one site directory (or there is one
    /// instance). `per-instance`: each has its own copy, updated host by host; a
    /// copy equal to an older applied version is then reported as behind.
    #[arg(long, env = "MARAIN_SITE_LAYOUT", value_enum, default_value_t = SiteLayoutArg::Shared)]
    pub site_layout: SiteLayoutArg,
    /// The directory whose files `${file:…}` references in config files may
    /// read (regular files, up to 64 KiB). Without it, `${file:}` is off.
    #[arg(long, env = "MARAIN_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// `${env:…}` references may name only environment variables whose names
    /// start with this.
    #[arg(long, env = "MARAIN_SECRET_ENV_PREFIX", default_value = marain::engine::secret_refs::DEFAULT_ENV_PREFIX)]
    pub secret_env_prefix: String,
    /// This instance's name in proposals shared between per-instance copies;
    /// stable across restarts and unique per copy. Default `<host>:<site dir>`.
    #[arg(long, env = "MARAIN_INSTANCE_NAME")]
    pub instance_name: Option<String>,
}

/// `--site-layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SiteLayoutArg {
    Shared,
    PerInstance,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub action: Option<HistoryAction>,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/marain.db", global = true)]
    pub database: String,
    /// Only this file's versions (site-relative, e.g. schemas/article.schema.yaml).
    #[arg(long)]
    pub file: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum HistoryAction {
    /// Recompute every row's hash and link, and check the head; exit 0 when
    /// intact, 1 at the first broken row. With `--secure-log`, check that log's
    /// line chain (across its rotated files) too.
    Verify {
        #[arg(long)]
        secure_log: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[arg(long, env = "MARAIN_SITE", default_value = "examples/site")]
    pub site: PathBuf,
    /// Which `config.<id>.<env>.yaml` files apply.
    #[arg(long, env = "MARAIN_ENV", default_value = "dev")]
    pub env: String,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// The site as it is now.
    #[arg(long)]
    pub from: PathBuf,
    /// The site as it should become.
    #[arg(long)]
    pub to: PathBuf,
    #[arg(long, value_enum, default_value_t = Dialect::Sqlite)]
    pub dialect: Dialect,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Which `config.<id>.<env>.yaml` files apply.
    #[arg(long, env = "MARAIN_ENV", default_value = "dev")]
    pub env: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}
