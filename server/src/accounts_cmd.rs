//! `marain admin add|remove` and `marain token create|list|revoke`, straight on
//! the database.

use std::io::BufRead;
use std::process::ExitCode;

use marain::engine::accounts::Role;

use crate::cli::{AdminAction, AdminArgs, TokenAction, TokenArgs};
use crate::store_cmd::{failed, with_store};

fn role(s: &str) -> Role {
    Role::parse(s).expect("clap allows viewer and approver only")
}

pub async fn admin(args: &AdminArgs) -> ExitCode {
    match &args.action {
        AdminAction::Add { username, role: r, replace } => add_account(args, username, r, *replace).await,
        AdminAction::Remove { username } => {
            with_store(&args.database, async |store| match store.accounts().remove_account(username).await {
                Ok(true) => {
                    println!("account `{username}` removed; its sessions end on their next request");
                    ExitCode::SUCCESS
                }
                Ok(false) => failed(format!("no account `{username}`")),
                Err(e) => failed(e),
            })
            .await
        }
    }
}

async fn add_account(args: &AdminArgs, username: &str, r: &str, replace: bool) -> ExitCode {
    let password = match std::env::var("MARAIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("password for {username} (one line on standard input):");
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() {
                eprintln!("error: no password given");
                return ExitCode::from(2);
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    with_store(&args.database, async |store| {
        match store.accounts().add_account(username, &password, role(r), replace).await {
            Ok(()) => {
                println!("account `{username}` ({r}) saved");
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
    .await
}

pub async fn token(args: &TokenArgs) -> ExitCode {
    with_store(&args.database, async |store| match &args.action {
        TokenAction::Create { name, role: r, expires_in } => {
            let expires_at = expires_in.map(|d| {
                let at = time::OffsetDateTime::now_utc() + d;
                at.format(&time::format_description::well_known::Rfc3339).expect("a UTC time formats")
            });
            match store.accounts().create_token_until(name, role(r), expires_at.clone()).await {
                Ok(secret) => {
                    let until = expires_at.map(|at| format!(", valid until {at}")).unwrap_or_default();
                    eprintln!("token `{name}` ({r}{until}) created; it is shown only this once:");
                    println!("{secret}");
                    ExitCode::SUCCESS
                }
                Err(e) => failed(e),
            }
        }
        TokenAction::List => match store.accounts().tokens().await {
            Ok(tokens) => {
                for t in tokens {
                    let expires = t.expires_at.unwrap_or_else(|| "never".into());
                    println!("{:<24} {:<9} created {}  expires {expires}", t.name, t.role, t.created_at);
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
        TokenAction::Revoke { name } => match store.accounts().revoke_token(name).await {
            Ok(true) => {
                println!("token `{name}` revoked");
                ExitCode::SUCCESS
            }
            Ok(false) => failed(format!("no token `{name}`")),
            Err(e) => failed(e),
        },
    })
    .await
}
