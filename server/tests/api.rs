//! The REST API and the SSE stream over real HTTP, against the real engine on a
//! temp site with a real SQLite file.

use std::time::Duration;

use marain::engine::accounts::Role;
use serde_json::{json, Value};

mod support;
use support::in_process::{client_with, token, Server, USER};
use support::{Backend, EventReader};

async fn status_has_the_spec_shape(backend: Backend) {
    let server = Server::start(backend).await;
    let (code, status) = server.get("/status").await;
    assert_eq!(code, 200);
    assert_eq!(status["in_sync"], json!(true));
    assert!(status["last_sync"].is_string());
    assert_eq!(status["pending"], json!([]));
    assert_eq!(status["rejected"], json!([]));
    assert_eq!(status["drift"], json!([]));
    server.stop().await;
}

async fn breaking_change_needs_confirmation_then_lands_in_history(backend: Backend) {
    let server = Server::start(backend).await;
    let content = server.base.replace("/hot-reload", "/entity/user");
    let resp =
        server.client.post(&content).json(&json!({"id": "u1", "username": "ann", "bio": "hi"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    std::fs::write(
        server.site.join("schemas/user.schema.yaml"),
        USER.replace("  - id: bio\n    type: long_text\n", ""),
    )
    .unwrap();
    let status = server.wait_until(|s| s["pending"].as_array().is_some_and(|p| !p.is_empty())).await;
    let change = &status["pending"][0];
    assert_eq!(change["file"], "schemas/user.schema.yaml");
    assert_eq!(change["severity"], "BREAKING");
    assert_eq!(change["from_version"], 1);
    assert_eq!(change["hazards"][0]["code"], "field_dropped");
    let id = change["id"].as_u64().unwrap();

    let (code, detail) = server.get(&format!("/changes/{id}")).await;
    assert_eq!(code, 200);
    assert!(detail["sql"].to_string().contains(r#"DROP COLUMN \"bio\""#), "{detail}");
    assert!(detail["rollback_sql"].to_string().contains("ADD COLUMN"), "{detail}");

    let (code, err) = server.post(&format!("/changes/{id}/approve"), json!({"reason": "cleanup"})).await;
    assert_eq!(code, 422);
    assert_eq!(err["error"]["code"], "confirmation_required");
    assert!(err["error"]["message"].as_str().unwrap().contains("`user`"), "{err}");

    let (code, version) =
        server.post(&format!("/changes/{id}/approve"), json!({"reason": "cleanup", "confirm": "user"})).await;
    assert_eq!(code, 200, "{version}");
    assert_eq!(version["version"], 2);
    assert_eq!(version["actor"], "tests", "the token that approved it");
    assert_eq!(version["reason"], "cleanup");

    let (code, history) = server.get("/history?file_path=schemas/user.schema.yaml").await;
    assert_eq!(code, 200);
    let versions: Vec<i64> =
        history["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(history["versions"][0]["severity"], "BREAKING");
    let user: Value = server.client.get(format!("{content}/u1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["username"], "ann");
    assert!(user.get("bio").is_none(), "{user}");

    // Roll back to version 1: 202 and a pending change; approving it brings `bio` back.
    let (code, change) = server.post("/rollback", json!({"file": "schemas/user.schema.yaml", "version": 1})).await;
    assert_eq!(code, 202, "{change}");
    let (code, _) = server.post("/rollback", json!({"file": "schemas/user.schema.yaml", "version": 9})).await;
    assert_eq!(code, 404);
    let id = change["id"].as_u64().unwrap();
    let (code, version) =
        server.post(&format!("/changes/{id}/approve"), json!({"reason": "undo", "confirm": "user"})).await;
    assert_eq!(code, 200, "{version}");
    assert_eq!(version["version"], 3);
    let user: Value = server.client.get(format!("{content}/u1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["bio"], "hi", "{user}");
    assert_eq!(std::fs::read_to_string(server.site.join("schemas/user.schema.yaml")).unwrap(), USER);
    server.stop().await;
}

async fn errors_use_the_api_shape(backend: Backend) {
    let server = Server::start(backend).await;
    let (code, err) = server.get("/changes/999").await;
    assert_eq!(code, 404);
    assert_eq!(err["error"]["code"], "not_found");
    let (code, err) = server.post("/changes/999/approve", json!({})).await;
    assert_eq!(code, 404);
    assert_eq!(err["error"]["code"], "not_found");
    let (code, err) = server.get("/no-such-endpoint").await;
    assert_eq!(code, 404);
    assert_eq!(err["error"]["code"], "not_found");
    let (code, body) = server.post("/reload", json!({})).await;
    assert_eq!(code, 202, "{body}");
    server.stop().await;
}

async fn events_stream_announces_applied_changes(backend: Backend) {
    let server = Server::start(backend).await;
    let mut reader = EventReader::open(&server.client, &server.base).await;
    std::fs::write(server.site.join("schemas/user.schema.yaml"), format!("{USER}  - id: motto\n    type: text\n"))
        .unwrap();
    let events = reader.until(|e| e["kind"] == "applied").await;
    let event = events.last().unwrap();
    assert_eq!(event["file"], "schemas/user.schema.yaml");
    assert_eq!(event["version"], 2);
    assert_eq!(event["severity"], "SAFE");
    drop(reader);
    server.stop().await;
}

async fn content_is_validated_against_the_live_schema(backend: Backend) {
    let server = Server::start(backend).await;
    let content = server.base.replace("/hot-reload", "/entity/user");
    let resp = server.client.post(&content).json(&json!({"username": "ann", "bio": "hi"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let stored: Value = resp.json().await.unwrap();
    let id = stored["id"].as_str().unwrap().to_string();
    assert_eq!(stored["username"], "ann");
    assert_eq!(stored["bio"], "hi");

    let got: Value = server.client.get(format!("{content}/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, stored);
    let list: Value = server.client.get(&content).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 1);

    let resp = server.client.post(&content).json(&json!({"bio": 3, "shoe_size": 9})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid");
    let message = err["error"]["message"].as_str().unwrap();
    for expected in ["shoe_size", "username: is required", "bio: must be a string"] {
        assert!(message.contains(expected), "{message}");
    }

    // A body that is not JSON, or not sent as JSON, is refused in the API's
    // own shape (not the framework's plain text), naming where it broke.
    let broken = server.client.post(&content).header("content-type", "application/json").body("{\"username\": ");
    let resp = broken.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "malformed", "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("line 1 column"), "{err}");
    let resp = server.client.post(&content).body("username=ann").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "malformed", "{err}");
    // JSON of the wrong shape for the endpoint is `invalid`.
    let resp = server.client.post(format!("{}/rollback", server.base)).json(&json!({"file": 7})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid", "{err}");

    // A field added to the file is accepted as soon as it is live.
    std::fs::write(server.site.join("schemas/user.schema.yaml"), format!("{USER}  - id: motto\n    type: text\n"))
        .unwrap();
    server.wait_until(|s| s["in_sync"] == json!(true)).await;
    let mut accepted = false;
    for _ in 0..100 {
        let resp =
            server.client.post(&content).json(&json!({"username": "bob", "motto": "carpe"})).send().await.unwrap();
        if resp.status().as_u16() == 201 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(accepted, "the new field never became writable");

    let resp = server.client.get(format!("{content}/nope")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = server.client.get(server.base.replace("/hot-reload", "/entity/ghost")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    server.stop().await;
}

async fn content_can_be_replaced_and_deleted(backend: Backend) {
    let server = Server::start(backend).await;
    let content = server.base.replace("/hot-reload", "/entity/user");
    let resp =
        server.client.post(&content).json(&json!({"id": "ann", "username": "ann", "bio": "hi"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let resp = server.client.put(format!("{content}/ann")).json(&json!({"username": "annie"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let replaced: Value = resp.json().await.unwrap();
    assert_eq!(replaced["username"], "annie");
    assert_eq!(replaced["bio"], Value::Null, "PUT replaces: a field left out is cleared");

    let resp = server.client.put(format!("{content}/ann")).json(&json!({"bio": "no name"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let resp =
        server.client.put(format!("{content}/ann")).json(&json!({"id": "bob", "username": "x"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let resp = server.client.put(format!("{content}/ghost")).json(&json!({"username": "x"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    let resp = server.client.delete(format!("{content}/ann")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let resp = server.client.get(format!("{content}/ann")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = server.client.delete(format!("{content}/ann")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
    server.stop().await;
}

/// Writers keep inserting while the table is rebuilt twice (once by itself, once
/// approved; on PostgreSQL altered in place): no request fails, and every
/// acknowledged row is there afterwards.
async fn writes_during_table_rebuilds_lose_nothing(backend: Backend) {
    let server = Server::start(backend).await;
    let content = server.base.replace("/hot-reload", "/entity/user");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, stop) = (server.client.clone(), content.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("w{w}-{n}");
                n += 1;
                let body = json!({"id": id, "username": id});
                match client.post(&url).json(&body).send().await {
                    Ok(resp) if resp.status().as_u16() == 201 => acknowledged.push(id),
                    Ok(resp) => {
                        failed.push(format!("{id}: {} {}", resp.status(), resp.text().await.unwrap_or_default()))
                    }
                    Err(e) => failed.push(format!("{id}: {e}")),
                }
            }
            (acknowledged, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // required → optional: a rebuild, probed SAFE on a small table, applies alone.
    let optional = USER.replace("    required: true\n", "");
    std::fs::write(server.site.join("schemas/user.schema.yaml"), &optional).unwrap();
    let mut versions = 0;
    for _ in 0..200 {
        versions =
            server.get("/history?file_path=schemas/user.schema.yaml").await.1["versions"].as_array().unwrap().len();
        if versions == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(versions, 2, "the SAFE rebuild did not apply by itself");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // optional → required: a rebuild that waits for approval.
    std::fs::write(server.site.join("schemas/user.schema.yaml"), USER).unwrap();
    let status = server.wait_until(|s| !s["pending"].as_array().unwrap().is_empty()).await;
    let id = status["pending"][0]["id"].as_u64().unwrap();
    let (code, body) =
        server.post(&format!("/changes/{id}/approve"), json!({"reason": "names are required again"})).await;
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
    for w in writers {
        let (a, f) = w.await.unwrap();
        acknowledged.extend(a);
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} requests failed during the reloads: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(acknowledged.len() > 20, "only {} writes went through", acknowledged.len());
    let list: Value = server.client.get(format!("{content}?limit=1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"].as_u64().unwrap() as usize, acknowledged.len());
    for id in acknowledged.iter().step_by(7) {
        let resp = server.client.get(format!("{content}/{id}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{id} is missing");
    }
    let history = server.get("/history?file_path=schemas/user.schema.yaml").await.1;
    assert_eq!(history["versions"].as_array().unwrap().len(), 3);
    // SQLite rebuilds the table; PostgreSQL alters the column in place.
    let made = match backend {
        Backend::Sqlite => "marain_rebuild_user",
        Backend::Postgres => "ALTER COLUMN \\\"username\\\" SET NOT NULL",
    };
    assert!(history["versions"][0]["sql"].to_string().contains(made), "{history}");
    server.stop().await;
}

/// `api.rate_limit` and `api.cors.allowed_origins` take effect on the next
/// request after the config file changes, and stop when it changes back.
async fn rate_limit_and_cors_follow_the_api_config(backend: Backend) {
    let server = Server::start(backend).await;
    let content = server.base.replace("/hot-reload", "/entity/user");
    let config = server.site.join("config/config.api.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let api = |enabled: bool, origin: &str| {
        format!(
            "id: api\nvalues:\n  rate_limit:\n    enabled: {enabled}\n    requests_per_minute: 60\n    burst_size: 3\n  cors:\n    allowed_origins:\n      - {origin}\n"
        )
    };
    let origin_of = |resp: &reqwest::Response| {
        resp.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
    };

    std::fs::write(&config, api(true, "http://a.example")).unwrap();
    server.wait_versions("config/config.api.yaml", 1).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(server.client.get(&content).header("origin", "http://a.example").send().await.unwrap());
    }
    let statuses: Vec<u16> = codes.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    let limited = codes.into_iter().find(|r| r.status().as_u16() == 429).unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // Limit off, another origin allowed: both on the next requests.
    std::fs::write(&config, api(false, "http://b.example")).unwrap();
    let mut live = false;
    for _ in 0..100 {
        let resp = server.client.get(&content).header("origin", "http://b.example").send().await.unwrap();
        if resp.status().as_u16() == 200 && origin_of(&resp).as_deref() == Some("http://b.example") {
            live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(live, "the new api config never took effect");
    for _ in 0..10 {
        let resp = server.client.get(&content).header("origin", "http://a.example").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(origin_of(&resp), None, "a.example is no longer allowed");
    }
    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, &content)
        .header("origin", "http://b.example")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(origin_of(&preflight).as_deref(), Some("http://b.example"));
    server.stop().await;
}

async fn recovery_and_backups_endpoints(backend: Backend) {
    let server = Server::start(backend).await;
    let (code, body) = server.post("/recover", json!({"at": "yesterday"})).await;
    assert_eq!(code, 422);
    assert_eq!(body["error"]["code"], "invalid_recovery");
    // Drop `bio` (BREAKING, approved): one backup, listed, then pruned.
    std::fs::write(
        server.site.join("schemas/user.schema.yaml"),
        USER.replace("  - id: bio\n    type: long_text\n", ""),
    )
    .unwrap();
    let status = server.wait_until(|s| !s["pending"].as_array().unwrap().is_empty()).await;
    let id = status["pending"][0]["id"].as_u64().unwrap();
    let (code, _) = server.post(&format!("/changes/{id}/approve"), json!({"reason": "r", "confirm": "user"})).await;
    assert_eq!(code, 200);
    let (code, body) = server.get("/backups").await;
    assert_eq!(code, 200);
    assert_eq!(body["backups"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["backups"][0]["rows"], 0);
    let (_, body) = server.post("/backups/prune", json!({"older_than_days": 1})).await;
    assert_eq!(body["pruned"], json!([]));
    // Recovering to now is a no-op: nothing differs.
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let (code, body) = server.post("/recover", json!({"at": now})).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["changes"], json!([]));
    server.stop().await;
}

/// Everything but the sign-in page needs a session or a token; a viewer reads
/// but may not change; state changes with a session must come from this site.
async fn sign_in_sessions_tokens_roles_and_origin(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");

    // No credentials: 401 in the API's shape; pages send you to sign in.
    let resp = server.anonymous.get(format!("{}/status", server.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    let resp = server.anonymous.get(server.base.replace("/hot-reload", "/entity/user")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_redirects.get(format!("{root}/")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/login?next=/");
    let bogus = client_with("mrn_not-a-token");
    assert_eq!(bogus.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 401);

    // A viewer token reads, and is refused every change with 403.
    let viewer = client_with(&token(&server.db, "reader", Role::Viewer).await);
    assert_eq!(viewer.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 200);
    for (path, body) in [
        ("/changes/1/approve", json!({"reason": "r"})),
        ("/changes/1/reject", json!({})),
        ("/rollback", json!({"file": "schemas/user.schema.yaml", "version": 1})),
        ("/reload", json!({})),
    ] {
        let resp = viewer.post(format!("{}{path}", server.base)).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{path}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "forbidden", "{path}");
    }
    let resp = viewer
        .post(server.base.replace("/hot-reload", "/entity/user"))
        .json(&json!({"username": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // Sign in with a session: a wrong password is refused, the right one gives a
    // new HttpOnly, SameSite=Strict cookie.
    fn form(password: &str) -> [(&'static str, String); 3] {
        [("username", "admin".into()), ("password", password.into()), ("next", "/".into())]
    }
    let origin = root.clone();
    let resp = no_redirects
        .post(format!("{root}/login"))
        .header("origin", &origin)
        .form(&form("wrong password!"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/login?error=invalid");
    let resp = no_redirects
        .post(format!("{root}/login"))
        .header("origin", &origin)
        .form(&form("correct horse battery staple"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let with_session = |req: reqwest::RequestBuilder| req.header("cookie", &session);
    let resp = with_session(no_redirects.get(format!("{}/status", server.base))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // After signing in, `next` leads to a page of this site, never elsewhere
    // (a browser reads `/\t/evil.example` and `/\evil.example` as `//evil.example`).
    for (next, want) in [
        ("/history", "/history"),
        ("//evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
    ] {
        let form = [("username", "admin"), ("password", "correct horse battery staple"), ("next", next)];
        let resp =
            no_redirects.post(format!("{root}/login")).header("origin", &origin).form(&form).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 303, "{next:?}");
        assert_eq!(resp.headers()["location"], want, "next={next:?}");
    }

    // With a session, a POST from elsewhere (or from nowhere) is refused.
    for from in [Some("http://evil.example"), None] {
        let mut req = with_session(no_redirects.post(format!("{}/reload", server.base)));
        if let Some(from) = from {
            req = req.header("origin", from);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{from:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "origin_mismatch");
    }
    let resp = with_session(no_redirects.post(format!("{}/reload", server.base)).header("origin", &origin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);

    // Signing out ends the session.
    let resp =
        with_session(no_redirects.post(format!("{root}/logout")).header("origin", &origin)).send().await.unwrap();
    assert_eq!(resp.headers()["location"], "/login");
    let resp = with_session(no_redirects.get(format!("{}/status", server.base))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // Failed sign-ins are rate-limited per address.
    let mut last = String::new();
    for _ in 0..8 {
        let resp = no_redirects
            .post(format!("{root}/login"))
            .header("origin", &origin)
            .form(&form("still wrong!!"))
            .send()
            .await
            .unwrap();
        last = resp.headers()["location"].to_str().unwrap().to_string();
    }
    assert_eq!(last, "/login?error=rate");
    server.stop().await;
}

/// Sign-in guesses count per account and address, per address, and per
/// account, before the password is checked: a success elsewhere on the
/// address takes back only its own attempt; guesses from many addresses slow
/// the account down for them but never lock its owner out; parallel guesses
/// cannot all reach the hash; and `X-Forwarded-For` names the client only
/// through a trusted proxy.
async fn sign_in_cannot_be_brute_forced(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let store = marain::engine::Store::open(&server.db).await.unwrap();
    for name in ["viewer", "writer"] {
        store.accounts().add_account(name, "viewer password, long enough", Role::Viewer, false).await.unwrap();
    }
    store.close().await;
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).local_address(ip).build().unwrap()
    };
    let attempt = |client: reqwest::Client, user: String, password: &'static str, forwarded: Option<&'static str>| {
        let (url, origin) = (format!("{root}/login"), root.clone());
        async move {
            let mut req = client
                .post(url)
                .header("origin", origin)
                .form(&[("username", user), ("password", password.to_string())]);
            if let Some(xff) = forwarded {
                req = req.header("x-forwarded-for", xff);
            }
            let resp = req.send().await.unwrap();
            match resp.headers().get("location") {
                Some(l) => l.to_str().unwrap().to_string(),
                None => resp.status().as_u16().to_string(),
            }
        }
    };
    const ADMIN: &str = "correct horse battery staple";
    const VIEWER: &str = "viewer password, long enough";

    // Guesses at the admin's password, each followed by the guesser's own
    // successful sign-in: the successes win the guesser nothing.
    let guesser = from("127.0.0.3");
    for _ in 0..4 {
        assert_eq!(attempt(guesser.clone(), "admin".into(), "wrong guess!", None).await, "/login?error=invalid");
        assert_eq!(attempt(guesser.clone(), "viewer".into(), VIEWER, None).await, "/");
    }
    assert_eq!(attempt(guesser.clone(), "admin".into(), "wrong guess!", None).await, "/login?error=invalid");
    assert_eq!(attempt(guesser.clone(), "admin".into(), ADMIN, None).await, "/login?error=rate", "address");
    // The owner, from an address of their own, is not held by it.
    assert_eq!(attempt(from("127.0.0.4"), "admin".into(), ADMIN, None).await, "/", "the owner signs in");

    // Guessers on ten addresses: each one's first guess is checked, and the
    // account slows down (past five failures: 1 s, 2 s, 4 s … 30 s); an
    // address that failed already must wait, whoever it guesses for.
    for n in 10..20 {
        let guess = attempt(from(&format!("127.0.0.{n}")), "admin".into(), "wrong guess!", None).await;
        assert_eq!(guess, "/login?error=invalid", "127.0.0.{n}");
    }
    let again = attempt(from("127.0.0.10"), "admin".into(), "wrong guess!", None).await;
    let wait: i64 = again.strip_prefix("/login?error=slow&wait=").unwrap_or_else(|| panic!("{again}")).parse().unwrap();
    assert!((1..=30).contains(&wait), "{again}");
    // Even with the right password: that address is slowed down.
    let right = attempt(from("127.0.0.11"), "admin".into(), ADMIN, None).await;
    assert!(right.starts_with("/login?error=slow"), "{right}");
    // The owner's address never failed at the account: it signs in, and the
    // account starts afresh for everyone.
    assert_eq!(attempt(from("127.0.0.4"), "admin".into(), ADMIN, None).await, "/", "the owner is never locked out");
    assert_eq!(attempt(from("127.0.0.10"), "admin".into(), "wrong guess!", None).await, "/login?error=invalid");
    // The owner signing in frees no guesser: the first one's address stays locked.
    assert_eq!(attempt(guesser.clone(), "admin".into(), ADMIN, None).await, "/login?error=rate", "still locked");

    // Forty wrong guesses at once: at most five reach the password check.
    let parallel = from("127.0.0.5");
    let guesses = (0..40).map(|_| attempt(parallel.clone(), "writer".into(), "wrong guess!", None));
    let outcomes = futures::future::join_all(guesses).await;
    let checked = outcomes.iter().filter(|o| *o == "/login?error=invalid").count();
    assert!(checked <= 5, "{checked} of 40 parallel guesses were checked: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o == "/login?error=invalid" || o == "/login?error=rate" || o == "429"),
        "{outcomes:?}"
    );

    // X-Forwarded-For from an untrusted peer changes nothing: the peer is
    // locked after twenty failures, whichever accounts they were for.
    let spoofer = from("127.0.0.6");
    for n in 0..20 {
        attempt(spoofer.clone(), format!("nobody{n}"), "wrong guess!", Some("198.51.100.1")).await;
    }
    let locked = attempt(spoofer.clone(), "nobody".into(), "wrong guess!", Some("198.51.100.99")).await;
    assert_eq!(locked, "/login?error=rate");
    // Through a trusted proxy, each forwarded client counts on its own.
    server.apply_api_config("  trusted_proxies: [127.0.0.7]\n").await;
    let proxy = from("127.0.0.7");
    for n in 0..20 {
        attempt(proxy.clone(), format!("someone{n}"), "wrong guess!", Some("198.51.100.2")).await;
    }
    let one = attempt(proxy.clone(), "someone".into(), "wrong guess!", Some("198.51.100.2")).await;
    assert_eq!(one, "/login?error=rate", "the forwarded client is locked");
    let other = attempt(proxy.clone(), "someone".into(), "wrong guess!", Some("198.51.100.3")).await;
    assert_eq!(other, "/login?error=invalid", "another forwarded client is not");
    server.stop().await;
}

/// What a client sends is bounded: no body over 1 MiB reaches any route
/// (server functions included), and a number too large to mean anything is a
/// 4xx, never a panic.
async fn limits_on_everything_a_client_sends(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let huge = "x".repeat(2 * 1024 * 1024);
    for url in
        [format!("{root}/_sfn/dashboard"), server.base.replace("/hot-reload", "/entity/user"), format!("{root}/login")]
    {
        let resp = server.client.post(&url).header("origin", &root).body(huge.clone()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 413, "{url}");
    }
    let (code, body) = server.post("/backups/prune", json!({"older_than_days": 4294967295u64})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 36500"), "{body}");
    let (code, _) = server.get("/status").await;
    assert_eq!(code, 200, "the server still answers");
    server.stop().await;
}

/// Every page says how a browser may use it: a content security policy
/// whose nonce is the one the page's inline scripts carry (and differs per
/// page), no framing by another site (`frame-ancestors`, `X-Frame-Options`),
/// no sniffing, no `Referer` to other sites; API answers carry the same
/// framing, sniffing and referrer headers.
async fn pages_carry_a_content_security_policy_and_cannot_be_framed(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let page = |path: &'static str| reqwest::get(format!("{root}{path}"));
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let resp = page("/login").await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let csp = header("content-security-policy");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "same-origin");
        for part in ["default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"] {
            assert!(csp.contains(part), "{part} missing in {csp}");
        }
        let nonce = csp.split("'nonce-").nth(1).and_then(|n| n.split('\'').next()).expect("a nonce").to_string();
        let html = resp.text().await.unwrap();
        let scripts = html.matches("<script").count();
        let with_nonce = html.matches(&format!("nonce=\"{nonce}\"")).count();
        assert!(scripts >= 2, "{html}");
        assert_eq!(with_nonce, scripts, "every inline script carries the page's nonce:\n{html}");
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a nonce per page");
    let (code, _) = server.get("/status").await;
    assert_eq!(code, 200);
    let api = server.client.get(format!("{}/status", server.base)).send().await.unwrap();
    assert_eq!(api.headers()["x-frame-options"], "DENY");
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    server.stop().await;
}

/// OPTIONS is no way around sign-in (only a real CORS preflight to the API goes
/// through unauthenticated, and the CORS layer answers it), and a token that
/// cannot be looked up is the server's trouble (503), not a wrong token (401).
async fn options_need_sign_in_and_a_failed_token_lookup_is_503(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    for url in [format!("{}/status", server.base), format!("{root}/_sfn/dashboard")] {
        let resp = server.anonymous.request(reqwest::Method::OPTIONS, &url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{url}");
    }
    let preflight = server
        .anonymous
        .request(reqwest::Method::OPTIONS, format!("{}/status", server.base))
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_ne!(preflight.status().as_u16(), 401, "a preflight carries no credentials");

    server.exec("DROP TABLE marain_tokens").await;
    let resp = server.client.get(format!("{}/status", server.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    server.stop().await;
}

/// `api.max_event_streams` (read at start-up) caps the open event streams: one
/// more is told to come back later, and a closed one makes room.
async fn event_streams_are_capped_by_max_event_streams(backend: Backend) {
    let server = Server::start(backend).await;
    server.apply_api_config("  max_event_streams: 2\n").await;
    let server = server.restart().await;
    let first = EventReader::open(&server.client, &server.base).await;
    let _second = EventReader::open(&server.client, &server.base).await;
    let third = server.client.get(format!("{}/events", server.base)).send().await.unwrap();
    assert_eq!(third.status().as_u16(), 503);
    assert!(third.headers().contains_key("retry-after"));
    drop(first);
    let mut room = 0;
    for _ in 0..100 {
        let again = server.client.get(format!("{}/events", server.base)).send().await.unwrap();
        room = again.status().as_u16();
        if room == 200 {
            // What a buffering proxy needs to pass the events on at once.
            assert_eq!(again.headers()["x-accel-buffering"], "no");
            assert_eq!(again.headers()["content-type"], "text/event-stream");
            assert_eq!(again.headers()["cache-control"], "no-cache");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(room, 200, "a closed stream makes room");
    server.stop().await;
}

/// `api.max_connections` (read at start-up) caps the open connections, idle
/// ones included: one more is answered 503 with `Retry-After` and closed, and
/// a closed one makes room. Event streams get half of them by default.
async fn connections_are_capped_by_max_connections(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(backend).await;
    server.apply_api_config("  max_connections: 4\n").await;
    let server = server.restart().await;
    let addr = server.base.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let ask = |addr: String| async move {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!("GET /api/v1/hot-reload/status HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut answer)).await;
        read.expect("an answer, not a hang").unwrap();
        answer
    };
    // Streams: half of four.
    let first = EventReader::open(&server.client, &server.base).await;
    let _second = EventReader::open(&server.client, &server.base).await;
    let third = server.client.get(format!("{}/events", server.base)).send().await.unwrap();
    assert_eq!(third.status().as_u16(), 503, "a third stream of four connections");
    drop(third);
    drop(first);
    let mut idle = Vec::new();
    let mut refused = String::new();
    for _ in 0..100 {
        // Idle connections hold their place until they close.
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
        let answer = ask(addr.clone()).await;
        if answer.starts_with("HTTP/1.1 503") {
            refused = answer;
            break;
        }
    }
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"), "{refused}");
    assert!(refused.contains("too many connections"), "{refused}");
    assert!(idle.len() <= 4, "{} idle connections were let in past a cap of 4", idle.len());
    idle.clear();
    let mut room = String::new();
    for _ in 0..100 {
        room = ask(addr.clone()).await;
        if !room.starts_with("HTTP/1.1 503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        room.starts_with("HTTP/1.1 401") || room.starts_with("HTTP/1.1 200"),
        "closed connections make room: {room}"
    );
    server.stop().await;
}

/// Sessions and tokens follow their account: a new role or password, or a
/// removed account, ends its sessions at once; a revoked or expired token is
/// refused at once.
async fn sessions_and_tokens_follow_the_account(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    const PASSWORD: &str = "editor password, long";
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sign_in = || async {
        let form = [("username", "editor"), ("password", PASSWORD), ("next", "/")];
        let resp = no_redirects.post(format!("{root}/login")).header("origin", &root).form(&form).send().await.unwrap();
        assert_eq!(resp.headers()["location"], "/", "signed in");
        resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
    };
    let status_with = |cookie: String| {
        let url = format!("{}/status", server.base);
        let client = no_redirects.clone();
        async move { client.get(url).header("cookie", cookie).send().await.unwrap().status().as_u16() }
    };
    let store = marain::engine::Store::open(&server.db).await.unwrap();
    store.accounts().add_account("editor", PASSWORD, Role::Approver, false).await.unwrap();

    let session = sign_in().await;
    assert_eq!(status_with(session.clone()).await, 200);
    // Demoted: the session signed in as an approver is over.
    store.accounts().add_account("editor", PASSWORD, Role::Viewer, true).await.unwrap();
    assert_eq!(status_with(session).await, 401, "a demoted account's session lives on");
    // Removed: so is the new one.
    let session = sign_in().await;
    assert_eq!(status_with(session.clone()).await, 200);
    assert!(store.accounts().remove_account("editor").await.unwrap());
    assert_eq!(status_with(session).await, 401, "a removed account's session lives on");

    // A revoked token, and an expired one, are refused at once.
    let revoked = client_with(&store.accounts().create_token("short-lived", Role::Viewer).await.unwrap());
    assert_eq!(revoked.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 200);
    assert!(store.accounts().revoke_token("short-lived").await.unwrap());
    assert_eq!(revoked.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 401);
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring =
        client_with(&store.accounts().create_token_until("expiring", Role::Viewer, Some(soon)).await.unwrap());
    assert_eq!(expiring.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(expiring.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 401);
    store.close().await;
    server.stop().await;
}

/// The Access page's server functions: who is signed in (address and browser
/// for approvers only, the asking session marked), ending another session (it
/// is signed out on its next request, and a request in flight cannot bring it
/// back), signing out, and revoking a token (refused at once); a viewer may
/// look but not act.
async fn approvers_see_who_is_signed_in_end_sessions_and_revoke_tokens(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    const PASSWORD: &str = "access password, long";
    let store = marain::engine::Store::open(&server.db).await.unwrap();
    store.accounts().add_account("boss", PASSWORD, Role::Approver, false).await.unwrap();
    store.accounts().add_account("watcher", PASSWORD, Role::Viewer, false).await.unwrap();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sign_in = |user: &'static str, agent: &'static str| {
        let (client, root) = (no_redirects.clone(), root.clone());
        async move {
            let form = [("username", user), ("password", PASSWORD), ("next", "/")];
            let resp = client
                .post(format!("{root}/login"))
                .header("origin", &root)
                .header("user-agent", agent)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.headers()["location"], "/", "{user} signed in");
            resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
        }
    };
    let call = |cookie: String, endpoint: &'static str, form: Vec<(&'static str, String)>| {
        let (client, root) = (no_redirects.clone(), root.clone());
        async move {
            let resp = client
                .post(format!("{root}/_sfn/{endpoint}"))
                .header("cookie", cookie)
                .header("origin", &root)
                .form(&form)
                .send()
                .await
                .unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let status_with = |cookie: String| {
        let (client, url) = (no_redirects.clone(), format!("{}/status", server.base));
        async move { client.get(url).header("cookie", cookie).send().await.unwrap().status().as_u16() }
    };

    let desk = sign_in("boss", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0").await;
    let laptop = sign_in("boss", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15").await;
    let viewer = sign_in("watcher", "curl/8.0").await;
    let (code, access) = call(desk.clone(), "access", vec![]).await;
    assert_eq!(code, 200, "{access}");
    let sessions = access["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{access}");
    let mine: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(mine.len(), 1, "{access}");
    assert_eq!(mine[0]["browser"], "Firefox on Linux");
    assert_eq!(mine[0]["address"], "127.0.0.1");
    let other = sessions.iter().find(|s| s["browser"] == "Safari on macOS").expect("the laptop's session");
    let handle = other["handle"].as_str().unwrap().to_string();
    assert_eq!(handle.len(), 64, "a SHA-256, not a session id");
    assert!(!desk.contains(&handle) && !laptop.contains(&handle));

    // A viewer sees who, not from where, and may not act.
    let (_, seen) = call(viewer.clone(), "access", vec![]).await;
    assert!(seen["sessions"].as_array().unwrap().iter().all(|s| s["address"].is_null() && s["handle"] == ""), "{seen}");
    let (code, refused) = call(viewer.clone(), "end_session", vec![("handle", handle.clone())]).await;
    assert_eq!((code, refused["kind"].as_str()), (403, Some("forbidden")), "{refused}");
    assert_eq!(status_with(laptop.clone()).await, 200);

    // Ended: signed out on its next request, and it stays out.
    let (code, ended) = call(desk.clone(), "end_session", vec![("handle", handle.clone())]).await;
    assert_eq!(code, 200, "{ended}");
    assert_eq!(status_with(laptop.clone()).await, 401, "an ended session lives on");
    assert_eq!(status_with(laptop).await, 401);
    let (_, again) = call(desk.clone(), "end_session", vec![("handle", handle)]).await;
    assert_eq!(again["kind"], "not_found", "ended twice: {again}");
    // Signed out: gone from the list.
    let resp = no_redirects.post(format!("{root}/logout")).header("cookie", &viewer).header("origin", &root);
    let out = resp.send().await.unwrap();
    assert_eq!(out.headers()["location"], "/login", "signed out");
    let (_, access) = call(desk.clone(), "access", vec![]).await;
    let users: Vec<&str> =
        access["sessions"].as_array().unwrap().iter().map(|s| s["username"].as_str().unwrap()).collect();
    assert_eq!(users, ["boss"], "{access}");

    // Tokens: listed without secrets, revoked at once, by an approver only.
    let secret = store.accounts().create_token("deploy-bot", Role::Approver).await.unwrap();
    let bot = client_with(&secret);
    assert_eq!(bot.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 200);
    let (_, access) = call(desk.clone(), "access", vec![]).await;
    assert_eq!(access["tokens"][0]["name"], "deploy-bot");
    assert!(!access.to_string().contains(&secret[4..]), "a token's secret was listed");
    let viewer = sign_in("watcher", "curl/8.0").await;
    let (_, refused) = call(viewer, "revoke_token", vec![("name", "deploy-bot".into())]).await;
    assert_eq!(refused["kind"], "forbidden", "{refused}");
    let (code, revoked) = call(desk.clone(), "revoke_token", vec![("name", "deploy-bot".into())]).await;
    assert_eq!((code, revoked.as_str()), (200, Some("deploy-bot")), "{revoked}");
    assert_eq!(bot.get(format!("{}/status", server.base)).send().await.unwrap().status().as_u16(), 401);
    let (_, access) = call(desk, "access", vec![]).await;
    assert!(access["tokens"].as_array().unwrap().iter().all(|t| t["name"] != "deploy-bot"), "{access}");
    store.close().await;
    server.stop().await;
}

/// Drops a field of the demo site's user schema; returns the id of the
/// change that then waits.
async fn a_waiting_change(server: &Server) -> u64 {
    std::fs::write(
        server.site.join("schemas/user.schema.yaml"),
        "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n",
    )
    .unwrap();
    let status = server.wait_until(|s| !s["pending"].as_array().unwrap().is_empty()).await;
    status["pending"][0]["id"].as_u64().unwrap()
}

async fn a_rejected_change_records_who_and_why(backend: Backend) {
    let server = Server::start(backend).await;
    let id = a_waiting_change(&server).await;
    let (code, _) = server.post(&format!("/changes/{id}/reject"), json!({"reason": "we still need bios"})).await;
    assert_eq!(code, 200);
    let status = server.wait_until(|s| s["pending"].as_array().unwrap().is_empty()).await;
    let message = status["rejected"][0]["message"].as_str().unwrap();
    assert!(message.contains("rejected by tests: we still need bios"), "{message}");
    let (code, err) = server.post(&format!("/changes/{id}/reject"), json!({})).await;
    assert_eq!(code, 404, "{err}");
    server.stop().await;
}

/// `/decline` is the route's name; its answer names the id both ways, and a
/// decline by either name is the same decline (a second one finds nothing).
async fn a_change_is_declined_by_the_new_name_and_the_old(backend: Backend) {
    let server = Server::start(backend).await;
    let id = a_waiting_change(&server).await;
    let (code, answer) = server.post(&format!("/changes/{id}/decline"), json!({"reason": "not yet"})).await;
    assert_eq!((code, answer["declined"].as_u64(), answer["rejected"].as_u64()), (200, Some(id), Some(id)), "{answer}");
    let status = server.wait_until(|s| s["pending"].as_array().unwrap().is_empty()).await;
    let message = status["rejected"][0]["message"].as_str().unwrap();
    assert!(message.contains("by tests: not yet"), "{message}");
    let (code, err) = server.post(&format!("/changes/{id}/reject"), json!({})).await;
    assert_eq!((code, err["error"]["code"].as_str()), (404, Some("not_found")), "{err}");
    server.stop().await;
}

/// Pause, resume and abort over HTTP: a change that runs no online phases
/// (here: waiting for approval) answers 409 saying so, an unknown id 404, a
/// viewer 403, and nothing changes. (The phases themselves are steered in
/// `tests/online_changes.rs`, on a big table.)
async fn a_change_running_no_phases_cannot_be_paused_or_aborted(backend: Backend) {
    let server = Server::start(backend).await;
    let id = a_waiting_change(&server).await;
    for action in ["pause", "resume", "abort"] {
        let (code, err) = server.post(&format!("/changes/{id}/{action}"), json!({})).await;
        assert_eq!((code, err["error"]["code"].as_str()), (409, Some("conflict")), "{action}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains("runs no online phases"), "{message}");
        let (code, err) = server.post(&format!("/changes/999/{action}"), json!({})).await;
        assert_eq!(code, 404, "{action}: {err}");
    }
    let viewer = client_with(&token(&server.db, "reader", Role::Viewer).await);
    let resp = viewer.post(format!("{}/changes/{id}/abort", server.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (_, status) = server.get("/status").await;
    assert_eq!(status["pending"][0]["id"].as_u64(), Some(id), "the change still waits: {status}");
    assert!(status["pending"][0].get("running").is_none(), "{status}");
    server.stop().await;
}

/// A server function's error answers with the status its kind has in the
/// REST API, and its body still carries the kind and the message the
/// dashboard shows.
async fn server_functions_answer_with_the_status_of_their_error_kind(backend: Backend) {
    let server = Server::start(backend).await;
    let id = a_waiting_change(&server).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let viewer = client_with(&token(&server.db, "reader", Role::Viewer).await);
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let call = |client: reqwest::Client, id: u64, action: &'static str| {
        let url = format!("{root}/_sfn/control_change");
        async move {
            let form = [("id", id.to_string()), ("action", action.to_string())];
            let resp = client.post(url).form(&form).send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (who, client, id, action, status, kind) in [
        ("an approver, a wrong action", server.client.clone(), id, "dance", 422, "invalid"),
        ("an approver, a change without phases", server.client.clone(), id, "pause", 409, "conflict"),
        ("an approver, no such change", server.client.clone(), 999, "pause", 404, "not_found"),
        ("a viewer", viewer.clone(), id, "pause", 403, "forbidden"),
    ] {
        let (code, body) = call(client, id, action).await;
        assert_eq!((code, body["kind"].as_str()), (status, Some(kind)), "{who}: {body}");
        assert!(!body["message"].as_str().unwrap_or_default().is_empty(), "{who}: {body}");
    }
    // Arguments that cannot be read: the caller's fault, as the REST API
    // answers a body that is not JSON.
    let resp = server.client.post(format!("{root}/_sfn/control_change")).form(&[("id", "seven")]).send().await.unwrap();
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((code, body["kind"].as_str()), (400, Some("malformed")), "{body}");
    let (code, body) = call(anonymous.clone(), id, "pause").await;
    assert_eq!(code, 401, "signed out: {body}");
    let huge = "x".repeat(2 * 1024 * 1024);
    let resp = server.client.post(format!("{root}/_sfn/control_change")).body(huge).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // A success is untouched.
    let resp = server.client.post(format!("{root}/_sfn/dashboard")).form(&Vec::<(String, String)>::new());
    assert_eq!(resp.send().await.unwrap().status().as_u16(), 200);
    server.stop().await;
}

/// `hot_reload.webhooks`: events are POSTed, HMAC-signed, and retried when the
/// receiver fails.
/// One delivery attempt as a webhook receiver saw it.
#[derive(Debug, Clone)]
struct Attempt {
    hook: &'static str,
    delivery: String,
    kind: String,
    signature: String,
    body: String,
    at: std::time::Instant,
}

/// Webhooks: every event is POSTed, signed so that a receiver holding only the
/// secret can check it; a refused delivery is sent again with the same delivery
/// id after 0.2 s, 1 s and 5 s, and given up after the fourth attempt.
async fn webhooks_deliver_signed_events_and_retry(backend: Backend) {
    use axum::http::{HeaderMap, StatusCode};
    use hmac::{Hmac, Mac};
    use std::sync::{Arc, Mutex};
    let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let record = |hook: &'static str, attempts: Arc<Mutex<Vec<Attempt>>>| {
        move |headers: HeaderMap, body: String| async move {
            let header = |k: &str| headers.get(k).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            let attempt = Attempt {
                hook,
                delivery: header("x-marain-delivery"),
                kind: header("x-marain-event"),
                signature: header("x-marain-signature"),
                body,
                at: std::time::Instant::now(),
            };
            let mut all = attempts.lock().unwrap();
            let earlier = all.iter().filter(|a| a.hook == hook && a.delivery == attempt.delivery).count();
            all.push(attempt.clone());
            // `flaky` refuses each user-file delivery three times; `down` refuses everything.
            let refuse = hook == "down" || (attempt.body.contains("user.schema.yaml") && earlier < 3);
            if refuse {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::NO_CONTENT
            }
        }
    };
    // `bounce` answers every delivery with a redirect to `caught`, another
    // address the delivery must never reach.
    let bounced = {
        let record = record("bounce", attempts.clone());
        move |headers: HeaderMap, body: String| async move {
            let _ = record(headers, body).await;
            (StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, "/caught")])
        }
    };
    let receiver = axum::Router::new()
        .route("/flaky", axum::routing::post(record("flaky", attempts.clone())))
        .route("/down", axum::routing::post(record("down", attempts.clone())))
        .route("/bounce", axum::routing::post(bounced))
        .route("/caught", axum::routing::post(record("caught", attempts.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    // The secret is named by reference, kept beside the site (the server's
    // secrets directory), never in it.
    let beside_the_site =
        |args: &mut marain_server::cli::ServeArgs| args.secrets_dir = args.site.parent().map(Into::into);
    let server = Server::start_with(backend, beside_the_site).await;
    std::fs::create_dir_all(server.site.join("config")).unwrap();
    let secret_file = server.site.parent().unwrap().join("hook-secret");
    std::fs::write(&secret_file, "s3cret\n").unwrap();
    std::fs::write(
        server.site.join("config/config.hot_reload.yaml"),
        format!(
            "id: hot_reload\nvalues:\n  webhooks:\n    - url: http://{hook_addr}/flaky\n      secret: ${{file:{}}}\n    - url: http://{hook_addr}/down\n    - url: http://{hook_addr}/bounce\n",
            secret_file.display()
        ),
    )
    .unwrap();
    server.wait_versions("config/config.hot_reload.yaml", 1).await;
    std::fs::write(server.site.join("schemas/user.schema.yaml"), format!("{USER}  - id: motto\n    type: text\n"))
        .unwrap();

    // The flaky hook's `applied` delivery: refused three times, accepted the fourth.
    let applied_of = |hook: &str| -> Vec<Attempt> {
        let all = attempts.lock().unwrap();
        let first = all.iter().find(|a| a.hook == hook && a.kind == "applied" && a.body.contains("user.schema.yaml"));
        let Some(first) = first.cloned() else { return vec![] };
        all.iter().filter(|a| a.hook == hook && a.delivery == first.delivery).cloned().collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while applied_of("flaky").len() < 4 || applied_of("down").len() < 4 {
        assert!(std::time::Instant::now() < deadline, "deliveries so far: {:#?}", attempts.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flaky = applied_of("flaky");
    assert!(!flaky[0].delivery.is_empty());
    assert!(flaky.iter().all(|a| a.body == flaky[0].body && a.kind == "applied"), "{flaky:#?}");
    // The waits between attempts follow the backoff, in order.
    let gaps: Vec<Duration> = flaky.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, at_least) in gaps.iter().zip([200, 1000, 5000]) {
        assert!(*gap >= Duration::from_millis(at_least), "gaps {gaps:?}");
    }
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "gaps {gaps:?}");

    // No delivery carries a secret, and a receiver that knows only the secret
    // accepts the signature.
    assert!(attempts.lock().unwrap().iter().all(|a| !a.body.contains("s3cret")));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(flaky[3].body.as_bytes());
    let hex = flaky[3].signature.strip_prefix("sha256=").expect("sha256= prefix");
    mac.verify_slice(&hex::decode(hex).unwrap()).expect("the HMAC verifies with the receiver's own secret");
    let event: Value = serde_json::from_str(&flaky[3].body).unwrap();
    assert_eq!(event["kind"], "applied");
    // The delivery id names the event cluster-wide (what instances claim), per hook.
    assert_eq!(event["version"], 2);
    assert!(flaky[3].delivery.len() == 64 && flaky[3].delivery.bytes().all(|b| b.is_ascii_hexdigit()), "{flaky:#?}");

    // A hook without a secret sends no signature; after four refusals it is given up.
    let down = applied_of("down");
    assert!(down.iter().all(|a| a.signature.is_empty()), "{down:#?}");
    assert_ne!(down[0].delivery, flaky[0].delivery, "each hook's delivery is its own");
    // Longer than the longest backoff after the fourth attempt: no fifth comes.
    tokio::time::sleep_until((down[3].at + Duration::from_secs(6)).into()).await;
    assert_eq!(applied_of("down").len(), 4, "given up after the fourth attempt");
    // A redirect is a failed delivery, retried at the same address; where
    // it points is never reached.
    assert_eq!(applied_of("bounce").len(), 4, "{:#?}", attempts.lock().unwrap());
    assert!(attempts.lock().unwrap().iter().all(|a| a.hook != "caught"), "a redirect was followed");
    server.stop().await;
}

/// The remaining error codes: a BLOCKED change cannot be approved (409
/// `not_approvable`), a duplicate id conflicts (409 `conflict`), an unknown
/// version is 404, a body that is not an object is 422 `invalid`.
async fn more_error_codes(backend: Backend) {
    let server = Server::start(backend).await;
    let content = server.base.replace("/hot-reload", "/entity/user");
    let resp = server.client.post(&content).json(&json!({"id": "u1", "username": "ann"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let resp = server.client.post(&content).json(&json!({"id": "u1", "username": "ann"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "conflict");
    let resp = server.client.post(&content).json(&json!(["not", "an", "object"])).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "invalid");

    // A required field without a default, on a table with a row: BLOCKED.
    std::fs::write(
        server.site.join("schemas/user.schema.yaml"),
        format!("{USER}  - id: age\n    type: integer\n    required: true\n"),
    )
    .unwrap();
    let status = server.wait_until(|s| !s["pending"].as_array().unwrap().is_empty()).await;
    assert_eq!(status["pending"][0]["severity"], "BLOCKED");
    let id = status["pending"][0]["id"].as_u64().unwrap();
    let (code, err) = server.post(&format!("/changes/{id}/approve"), json!({"reason": "try"})).await;
    assert_eq!(code, 409, "{err}");
    assert_eq!(err["error"]["code"], "not_approvable");

    let (code, err) = server.post("/rollback", json!({"file": "schemas/user.schema.yaml", "version": 99})).await;
    assert_eq!(code, 404, "{err}");
    assert_eq!(err["error"]["code"], "not_found");
    server.stop().await;
}

/// `marain rollback`, the real command against the running server: without
/// `--approve` the change waits; with it (an approver's token) it applies.
async fn the_rollback_command_asks_the_running_server(backend: Backend) {
    let server = Server::start(backend).await;
    std::fs::write(server.site.join("schemas/user.schema.yaml"), format!("{USER}  - id: motto\n    type: text\n"))
        .unwrap();
    server.wait_versions("schemas/user.schema.yaml", 2).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let token = token(&server.db, "cli", Role::Approver).await;
    let run = move |extra: &[&str]| {
        let mut args = vec![
            "rollback",
            "--file",
            "schemas/user.schema.yaml",
            "--version",
            "1",
            "--server",
            &root,
            "--token",
            &token,
        ];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_marain")).args(&args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&[])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("waits for approval"), "{stdout}");
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run(&["--approve", "--reason", "motto was a mistake", "--confirm", "user"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("applied as version 3"), "{stdout}");
    let (_, history) = server.get("/history?file_path=schemas/user.schema.yaml").await;
    assert_eq!(history["versions"][0]["actor"], "cli");
    assert_eq!(history["versions"][0]["reason"], "motto was a mistake");
    assert!(!std::fs::read_to_string(server.site.join("schemas/user.schema.yaml")).unwrap().contains("motto"));
    server.stop().await;
}

/// A rollback to a version that no longer fits the rest of the site is refused
/// with 409 `invalid_rollback`, naming why.
async fn a_rollback_that_no_longer_fits_is_refused(backend: Backend) {
    let server = Server::start(backend).await;
    let team = "id: team\nname: Team\nfields:\n  - id: name\n    type: text\n";
    let member = |with_team: bool| {
        let mut s = "id: member\nname: Member\nfields:\n  - id: nick\n    type: text\n".to_string();
        if with_team {
            s.push_str("  - id: team\n    type: entity_reference\n    target_entity: team\n");
        }
        s
    };
    std::fs::write(server.site.join("schemas/team.schema.yaml"), team).unwrap();
    std::fs::write(server.site.join("schemas/member.schema.yaml"), member(true)).unwrap();
    server.wait_versions("schemas/member.schema.yaml", 1).await;
    // v2 drops the reference (empty table: WARNING, approved); then `team` goes.
    std::fs::write(server.site.join("schemas/member.schema.yaml"), member(false)).unwrap();
    let status = server.wait_until(|s| !s["pending"].as_array().unwrap().is_empty()).await;
    let id = status["pending"][0]["id"].as_u64().unwrap();
    let (code, body) = server.post(&format!("/changes/{id}/approve"), json!({"reason": "no teams"})).await;
    assert_eq!(code, 200, "{body}");
    std::fs::remove_file(server.site.join("schemas/team.schema.yaml")).unwrap();
    let status = server.wait_until(|s| !s["pending"].as_array().unwrap().is_empty()).await;
    let id = status["pending"][0]["id"].as_u64().unwrap();
    let (code, body) =
        server.post(&format!("/changes/{id}/approve"), json!({"reason": "gone", "confirm": "team"})).await;
    assert_eq!(code, 200, "{body}");

    let (code, err) = server.post("/rollback", json!({"file": "schemas/member.schema.yaml", "version": 1})).await;
    assert_eq!(code, 409, "{err}");
    assert_eq!(err["error"]["code"], "invalid_rollback");
    assert!(err["error"]["message"].as_str().unwrap().contains("team"), "{err}");
    server.stop().await;
}

/// Database error text stays in the server log: a unique violation on the
/// content API and a DDL statement the database refuses both reach the client
/// as our own words, never as SQLite's sentence.
async fn database_text_never_reaches_a_client(backend: Backend) {
    let server = Server::start(backend).await;
    let tag = "id: tag\nname: Tag\nfields:\n  - id: slug\n    type: slug\n    unique: true\n";
    std::fs::write(server.site.join("schemas/tag.schema.yaml"), tag).unwrap();
    server.wait_versions("schemas/tag.schema.yaml", 1).await;
    let tags = server.base.replace("/hot-reload", "/entity/tag");
    let first = server.client.post(&tags).json(&json!({"slug": "rust"})).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let again = server.client.post(&tags).json(&json!({"slug": "rust"})).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 409);
    let body = again.text().await.unwrap();
    assert!(body.contains("\"conflict\"") && body.contains("`slug`"), "{body}");
    assert!(!body.contains("UNIQUE constraint") && !body.contains("content_tag."), "{body}");
    assert!(!body.contains("duplicate key") && !body.contains("_key"), "{body}");

    // A table the history does not know blocks the CREATE TABLE of a new entity.
    server.exec("CREATE TABLE content_widget (id TEXT PRIMARY KEY)").await;
    let widget = "id: widget\nname: Widget\nfields:\n  - id: label\n    type: text\n";
    std::fs::write(server.site.join("schemas/widget.schema.yaml"), widget).unwrap();
    let status = server
        .wait_until(|s| {
            s["rejected"].as_array().is_some_and(|r| r.iter().any(|e| e["file"] == "schemas/widget.schema.yaml"))
        })
        .await;
    let text = status.to_string();
    assert!(text.contains("the database refused a statement"), "{text}");
    assert!(!text.contains("already exists") && !text.contains("CREATE TABLE"), "{text}");
    let (_, history) = server.get("/history?file_path=schemas/widget.schema.yaml").await;
    assert_eq!(history["versions"], json!([]), "nothing was applied");
    server.stop().await;
}

/// A viewer is refused every change on every path: the REST endpoints the first
/// auth test does not cover, the content writes, and the dashboard's own server
/// functions (which check the role themselves; the middleware only guards `/api/`).
async fn a_viewer_is_refused_every_change_everywhere(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    // A BREAKING change waits, so there is something to approve or reject.
    std::fs::write(
        server.site.join("schemas/user.schema.yaml"),
        USER.replace("  - id: bio\n    type: long_text\n", ""),
    )
    .unwrap();
    let status = server.wait_until(|s| s["pending"].as_array().is_some_and(|p| p.len() == 1)).await;
    let id = status["pending"][0]["id"].as_u64().unwrap();
    let content = server.base.replace("/hot-reload", "/entity/user");
    let resp = server.client.post(&content).json(&json!({"id": "u1", "username": "ann"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let viewer = client_with(&token(&server.db, "reader", Role::Viewer).await);
    for (path, body) in
        [("/recover", json!({"at": "2026-01-01T00:00:00Z"})), ("/backups/prune", json!({"older_than_days": 0}))]
    {
        let resp = viewer.post(format!("{}{path}", server.base)).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{path}");
    }
    let resp = viewer.put(format!("{content}/u1")).json(&json!({"username": "eve"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = viewer.delete(format!("{content}/u1")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // The dashboard's server functions, called straight.
    let id = id.to_string();
    for (endpoint, form) in [
        ("approve", vec![("id", id.as_str()), ("confirm", "user")]),
        ("reject", vec![("id", id.as_str())]),
        ("rollback", vec![("file", "schemas/user.schema.yaml"), ("version", "1")]),
    ] {
        let resp = viewer.post(format!("{root}/_sfn/{endpoint}")).form(&form).send().await.unwrap();
        let text = resp.text().await.unwrap();
        assert!(text.contains("\"forbidden\"") && text.contains("viewer"), "{endpoint}: {text}");
    }
    // Nothing moved: the change still waits, the record is unchanged.
    let (_, status) = server.get("/status").await;
    assert_eq!(status["pending"][0]["id"].to_string(), id);
    let record: Value = server.client.get(format!("{content}/u1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(record["username"], "ann");
    let (_, history) = server.get("/history?file_path=schemas/user.schema.yaml").await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 1);
    server.stop().await;
}

/// Sign-in gives a new session id every time (an id known before sign-in is
/// worth nothing after), and the cookie lives 8 hours from the last use.
async fn sign_in_rotates_the_session_id_and_sets_its_expiry(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("username", "admin"), ("password", "correct horse battery staple"), ("next", "/")];
    let sign_in = |cookie: Option<String>| {
        let mut req = no_redirects.post(format!("{root}/login")).header("origin", &root).form(&form);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send()
    };
    let first = sign_in(None).await.unwrap();
    let first_cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    let first_id = first_cookie.split(';').next().unwrap().to_string();
    let second = sign_in(Some(first_id.clone())).await.unwrap();
    let second_cookie = second.headers()["set-cookie"].to_str().unwrap().to_string();
    let second_id = second_cookie.split(';').next().unwrap().to_string();
    assert_ne!(first_id, second_id, "the session id must change at sign-in");
    let status = |cookie: String| no_redirects.get(format!("{}/status", server.base)).header("cookie", cookie).send();
    assert_eq!(status(second_id.clone()).await.unwrap().status().as_u16(), 200);
    assert_eq!(status(first_id).await.unwrap().status().as_u16(), 401, "the old id no longer signs anyone in");
    // The database keeps a hash of the id, not the id: a copy of it (a
    // backup) holds no cookie that signs in.
    let table = match backend {
        Backend::Sqlite => "marain_sessions",
        Backend::Postgres => "tower_sessions.marain_sessions",
    };
    let store = marain::engine::Store::open(&server.db).await.unwrap();
    let rows: Vec<(String,)> = store.pool().fetch_all(&format!("SELECT id FROM {table}"), &[]).await.unwrap();
    store.close().await;
    let cookie_id = second_id.split_once('=').unwrap().1.to_string();
    assert!(!rows.is_empty());
    for (kept,) in &rows {
        assert_ne!(kept, &cookie_id, "the session id is kept as it is");
        let stolen = status(format!("marain_session={kept}")).await.unwrap();
        assert_eq!(stolen.status().as_u16(), 401, "a row's id signs nobody in");
    }
    assert_eq!(status(second_id.clone()).await.unwrap().status().as_u16(), 200);
    // Expires 8 h from now (tower-sessions writes Max-Age in seconds, or Expires).
    let max_age = second_cookie
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Max-Age=").map(|v| v.parse::<i64>().unwrap()))
        .expect("the cookie carries Max-Age");
    assert!((8 * 3600 - 60..=8 * 3600).contains(&max_age), "{second_cookie}");
    server.stop().await;
}

/// The rate limit counts per client address: one client over its burst gets 429
/// with a `Retry-After` in whole seconds within the minute; another address is
/// not affected.
async fn the_rate_limit_is_per_client_with_retry_after(backend: Backend) {
    let server = Server::start(backend).await;
    let content = server.base.replace("/hot-reload", "/entity/user");
    server.apply_api_config("  rate_limit:\n    enabled: true\n    requests_per_minute: 6\n    burst_size: 2\n").await;
    let token = token(&server.db, "other", Role::Viewer).await;
    let from = |ip: [u8; 4]| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        let addr = std::net::IpAddr::from(ip);
        reqwest::Client::builder().default_headers(headers).local_address(addr).build().unwrap()
    };
    let (a, b) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let resp = a.get(&content).send().await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status().as_u16() == 429 {
            retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    let wait = retry_after.expect("a 429 carries Retry-After");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Another address has its own bucket.
    assert_eq!(b.get(&content).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(b.get(&content).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(b.get(&content).send().await.unwrap().status().as_u16(), 429);
    server.stop().await;
}

/// The `data:` lines of an SSE response, parsed, as they arrive.
/// A client that falls behind the event buffer is told to refetch (`resync`,
/// with how many it missed) and then keeps receiving; a client that reconnects
/// picks up the events that follow, numbered on from the ones it saw.
async fn a_lagging_event_client_resyncs_and_a_reconnecting_one_continues(backend: Backend) {
    let server = Server::start_with(backend, |args| args.event_buffer = 4).await;
    let mut reader = EventReader::open(&server.client, &server.base).await;
    // One batch of 40 new entities: 80 events in one burst, far over the buffer.
    for i in 0..40 {
        std::fs::write(
            server.site.join(format!("schemas/e{i}.schema.yaml")),
            format!("id: e{i}\nname: E{i}\nfields:\n  - id: title\n    type: text\n"),
        )
        .unwrap();
    }
    let events = reader.until(|e| e["kind"] == "resync").await;
    let resync = events.last().unwrap();
    assert!(resync["message"].as_str().unwrap().contains("events were missed"), "{resync}");
    server.wait_until(|s| s["in_sync"] == json!(true)).await;
    // Still live after the resync.
    std::fs::write(server.site.join("schemas/user.schema.yaml"), format!("{USER}  - id: motto\n    type: text\n"))
        .unwrap();
    let live = reader.until(|e| e["kind"] == "applied" && e["file"] == "schemas/user.schema.yaml").await;
    let last_seen = live.last().unwrap()["seq"].as_u64().unwrap();
    drop(reader);

    // Reconnect: the next change arrives, numbered after what was seen.
    let mut again = EventReader::open(&server.client, &server.base).await;
    std::fs::write(
        server.site.join("schemas/user.schema.yaml"),
        format!("{USER}  - id: motto\n    type: text\n  - id: mood\n    type: text\n"),
    )
    .unwrap();
    let next = again.until(|e| e["kind"] == "applied" && e["file"] == "schemas/user.schema.yaml").await;
    assert!(next.iter().all(|e| e["seq"].as_u64().unwrap() > last_seen), "{next:#?}");
    server.stop().await;
}

/// Sessions and the failed sign-in count live in the database: after a restart a
/// signed-in browser is still signed in, and an address that used up its
/// attempts still waits.
async fn sessions_and_the_sign_in_limit_survive_a_restart(backend: Backend) {
    let server = Server::start(backend).await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sign_in = |root: String, password: &'static str| {
        let form = [("username", "admin"), ("password", password), ("next", "/")];
        no_redirects.post(format!("{root}/login")).header("origin", &root).form(&form).send()
    };
    let resp = sign_in(root.clone(), "correct horse battery staple").await.unwrap();
    let session = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    // The limit: five failures from this address.
    for _ in 0..5 {
        let resp = sign_in(root.clone(), "wrong password!").await.unwrap();
        assert_eq!(resp.headers()["location"], "/login?error=invalid");
    }

    let server = server.restart().await;
    let root = server.base.replace("/api/v1/hot-reload", "");
    let resp = no_redirects.get(format!("{}/status", server.base)).header("cookie", &session).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the session outlived the process");
    let resp = sign_in(root.clone(), "correct horse battery staple").await.unwrap();
    assert_eq!(resp.headers()["location"], "/login?error=rate", "the failures outlived the process");
    // Signing out removes the session from the database.
    let resp = no_redirects
        .post(format!("{root}/logout"))
        .header("origin", &root)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/login");
    let rows = server
        .count(match backend {
            Backend::Sqlite => "SELECT COUNT(*) FROM marain_sessions",
            Backend::Postgres => "SELECT COUNT(*) FROM tower_sessions.marain_sessions",
        })
        .await;
    assert_eq!(rows, 0);
    server.stop().await;
}

backend_tests!(
    pages_carry_a_content_security_policy_and_cannot_be_framed,
    server_functions_answer_with_the_status_of_their_error_kind,
    a_change_running_no_phases_cannot_be_paused_or_aborted,
    status_has_the_spec_shape,
    a_change_is_declined_by_the_new_name_and_the_old,
    breaking_change_needs_confirmation_then_lands_in_history,
    errors_use_the_api_shape,
    events_stream_announces_applied_changes,
    content_is_validated_against_the_live_schema,
    content_can_be_replaced_and_deleted,
    writes_during_table_rebuilds_lose_nothing,
    rate_limit_and_cors_follow_the_api_config,
    recovery_and_backups_endpoints,
    sign_in_sessions_tokens_roles_and_origin,
    a_rejected_change_records_who_and_why,
    webhooks_deliver_signed_events_and_retry,
    more_error_codes,
    the_rollback_command_asks_the_running_server,
    a_rollback_that_no_longer_fits_is_refused,
    database_text_never_reaches_a_client,
    a_viewer_is_refused_every_change_everywhere,
    sign_in_rotates_the_session_id_and_sets_its_expiry,
    the_rate_limit_is_per_client_with_retry_after,
    a_lagging_event_client_resyncs_and_a_reconnecting_one_continues,
    sessions_and_the_sign_in_limit_survive_a_restart,
    sign_in_cannot_be_brute_forced,
    limits_on_everything_a_client_sends,
    options_need_sign_in_and_a_failed_token_lookup_is_503,
    event_streams_are_capped_by_max_event_streams,
    connections_are_capped_by_max_connections,
    approvers_see_who_is_signed_in_end_sessions_and_revoke_tokens,
    sessions_and_tokens_follow_the_account,
);
