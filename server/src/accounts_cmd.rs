//! `marain admin add` and `marain token create`, straight on the database.

use std::io::BufRead;
use std::process::ExitCode;

use marain::engine::accounts::Role;
use marain::engine::Store;

use crate::cli::{AdminAction, AdminArgs, TokenAction, TokenArgs};

async fn open(url: &str) -> Result<Store, ExitCode> {
    Store::open(url).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn role(s: &str) -> Role {
    Role::parse(s).expect("clap allows viewer and approver only")
}

pub async fn admin(args: &AdminArgs) -> ExitCode {
    let store = match open(&args.database).await {
        Ok(s) => s,
        Err(code) => return code,
    };
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
    let result = store.add_account(username, &password, role(r), *replace).await;
    store.close().await;
    match result {
        Ok(()) => {
            println!("account `{username}` ({r}) saved");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub async fn token(args: &TokenArgs) -> ExitCode {
    let store = match open(&args.database).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let TokenAction::Create { name, role: r } = &args.action;
    let result = store.create_token(name, role(r)).await;
    store.close().await;
    match result {
        Ok(secret) => {
            eprintln!("token `{name}` ({r}) created; it is shown only this once:");
            println!("{secret}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
