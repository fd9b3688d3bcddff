//! `marain history`: the applied versions, and `marain history verify`.

use std::process::ExitCode;

use crate::cli::{HistoryAction, HistoryArgs};
use crate::store_cmd::{failed, with_store};

pub async fn run(args: &HistoryArgs) -> ExitCode {
    with_store(&args.database, async |store| match args.action {
        Some(HistoryAction::Verify) => match store.verify_chain().await {
            Ok(rows) => {
                println!("ok: {rows} history rows, chain intact");
                ExitCode::SUCCESS
            }
            Err(broken) => {
                eprintln!("{broken}");
                ExitCode::from(1)
            }
        },
        None => match store.history(args.file.as_deref(), args.limit).await {
            Ok(rows) => {
                for r in rows {
                    println!(
                        "{:<40} v{:<4} {:<8} {:<8} {} by {}{}",
                        r.file,
                        r.version,
                        r.severity.as_str(),
                        r.status.as_str(),
                        r.applied_at,
                        r.actor,
                        r.reason.map(|x| format!(" — {x}")).unwrap_or_default()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
    })
    .await
}
