//! `marain history`: the applied versions, and `marain history verify`.

use std::process::ExitCode;

use marain::engine::Store;

use crate::cli::{HistoryAction, HistoryArgs};

pub async fn run(args: &HistoryArgs) -> ExitCode {
    let store = match Store::open(&args.database).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match args.action {
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
                        r.status,
                        r.applied_at,
                        r.actor,
                        r.reason.map(|x| format!(" — {x}")).unwrap_or_default()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    };
    store.close().await;
    code
}
