//! `marain backups`: the backup tables of dropped data, and `marain backups prune`.

use std::process::ExitCode;

use marain::engine::Store;

use crate::cli::{BackupsAction, BackupsArgs};

pub async fn run(args: &BackupsArgs) -> ExitCode {
    let store = match Store::open(&args.database).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match &args.action {
        None => store.backups().await.map(|backups| {
            for b in backups {
                let rows = b.rows.map(|n| format!("{n} rows")).unwrap_or_else(|| "pruned".into());
                println!("{:<64} {:<40} v{:<4} {} {rows}", b.table, b.file, b.version, b.applied_at);
            }
        }),
        Some(BackupsAction::Prune { older_than_days }) => {
            let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(*older_than_days));
            store.prune_backups(cutoff).await.map(|pruned| {
                for table in &pruned {
                    println!("pruned {table}");
                }
                println!("{} backup table(s) pruned", pruned.len());
            })
        }
    };
    store.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
