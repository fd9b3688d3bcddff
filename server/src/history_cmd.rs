//! `marain history`: the applied versions, and `marain history verify`.

use std::process::ExitCode;

use crate::cli::{HistoryAction, HistoryArgs};
use crate::store_cmd::{failed, with_store};

pub async fn run(args: &HistoryArgs) -> ExitCode {
    with_store(&args.database, async |store| match args.action {
        Some(HistoryAction::Verify { ref secure_log }) => {
            match store.history().verify_chain().await {
                Ok(rows) => println!("ok: {rows} history rows, chain intact"),
                Err(broken) => {
                    eprintln!("{broken}");
                    return ExitCode::from(1);
                }
            }
            let Some(log) = secure_log else { return ExitCode::SUCCESS };
            let anchor = match store.secure_log_head(&marain::engine::secure_log::anchor_name(log)).await {
                Ok(anchor) => anchor,
                Err(e) => return failed(e),
            };
            match marain::engine::secure_log::verify_anchored(log, anchor.as_deref()) {
                Ok(lines) => {
                    println!("ok: {lines} secure-log lines, chain intact");
                    ExitCode::SUCCESS
                }
                Err(broken) => {
                    eprintln!("secure log: {broken}");
                    ExitCode::from(1)
                }
            }
        }
        None => match store.history().rows(args.file.as_deref(), args.limit).await {
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
