//! `marain admin add` and `marain token create`, straight on the database.

use std::io::BufRead;
use std::process::ExitCode;

use marain::engine::accounts::Role;

use crate::cli::{AdminAction, AdminArgs, TokenAction, TokenArgs};
use crate::store_cmd::{failed, with_store};

fn role(s: &str) -> Role {
    Role::parse(s).expect("clap allows viewer and approver only")
}

pub async fn admin(args: &AdminArgs) -> ExitCode {
    let AdminAction::Add { username, role: r, replace } = &args.action;
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
    with_store(&args.database, async |store| match store.add_account(username, &password, role(r), *replace).await {
        Ok(()) => {
            println!("account `{username}` ({r}) saved");
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    })
    .await
}

pub async fn token(args: &TokenArgs) -> ExitCode {
    let TokenAction::Create { name, role: r } = &args.action;
    with_store(&args.database, async |store| match store.create_token(name, role(r)).await {
        Ok(secret) => {
            eprintln!("token `{name}` ({r}) created; it is shown only this once:");
            println!("{secret}");
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    })
    .await
}
