//! `marain backups`: the backup tables of dropped data, and `marain backups prune`.

use std::process::ExitCode;

use crate::cli::{BackupsAction, BackupsArgs};
use crate::store_cmd::{failed, with_store};

pub async fn run(args: &BackupsArgs) -> ExitCode {
    with_store(&args.database, async |store| match &args.action {
        None => match store.history().backups().await {
            Ok(backups) => {
                for b in backups {
                    let rows =
                        b.rows.map(|n| marain::plural::count(n, "row", "rows")).unwrap_or_else(|| "pruned".into());
                    println!("{:<64} {:<40} v{:<4} {} {rows}", b.table, b.file, b.version, b.applied_at);
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
        Some(BackupsAction::Prune { older_than_days }) => match store.history().prune_backups(*older_than_days).await {
            Ok(pruned) => {
                for table in &pruned {
                    println!("pruned {table}");
                }
                println!("{} pruned", marain::plural::count(pruned.len() as i64, "backup table", "backup tables"));
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
    })
    .await
}
