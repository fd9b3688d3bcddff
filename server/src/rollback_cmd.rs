//! `marain rollback`: asks the running server for a rollback over its REST API,
//! and approves it too when told to (with an approver's token).

use std::process::ExitCode;

use serde_json::{json, Value};

use crate::cli::RollbackArgs;

pub async fn run(args: &RollbackArgs) -> ExitCode {
    match rollback(args).await {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

async fn post(client: &reqwest::Client, args: &RollbackArgs, path: &str, body: Value) -> Result<Value, String> {
    let url = format!("{}/api/v1/hot-reload{path}", args.server.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .bearer_auth(&args.token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        let message = body["error"]["message"].as_str().unwrap_or("no message").to_string();
        Err(format!("{status}: {message}"))
    }
}

async fn rollback(args: &RollbackArgs) -> Result<String, String> {
    let client = reqwest::Client::new();
    let body = json!({"file": args.file, "version": args.version, "reason": args.reason});
    let change = post(&client, args, "/rollback", body).await?;
    let id = change["id"].as_u64().ok_or("the server answered without a change id")?;
    let severity = change["severity"].as_str().unwrap_or("?").to_string();
    if !args.approve {
        return Ok(format!(
            "change {id} ({severity}) rolls {} back to version {}; it waits for approval",
            args.file, args.version
        ));
    }
    let approval = json!({"reason": args.reason, "confirm": args.confirm});
    let row = post(&client, args, &format!("/changes/{id}/approve"), approval).await?;
    Ok(format!("{} is at version {} again, applied as version {}", args.file, args.version, row["version"]))
}
