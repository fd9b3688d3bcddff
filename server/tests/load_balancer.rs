//! Two real `marain serve` instances on one throw-away PostgreSQL, behind
//! Debian's nginx with the configuration docs/multi-instance.md gives
//! (round-robin, no stickiness): a person signs in through nginx and every
//! page, approval, content request and the event stream work whichever
//! instance answers; the client's address for the rate limit comes from
//! `X-Forwarded-For` only while nginx is a trusted proxy.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::instance::{approver_client, Instance};
use support::nginx::Nginx;
use support::pg_server::PgServer;
use support::EventReader;

const FILE: &str = "schemas/user.schema.yaml";
const V1: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n  - id: motto\n    type: text\n";
const API: &str = "config/config.api.yaml";
const PASSWORD: &str = "correct horse battery staple";
const PAGES: [&str; 7] = ["/", "/history", "/audit", "/access", "/migration", "/schema", "/timeline"];

/// A client whose requests leave from `ip` (a loopback address of its own),
/// keeping the cookie it is given, following no redirect.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The session cookie from signing in as `admin` through `url`.
async fn sign_in(client: &reqwest::Client, url: &str) -> String {
    let resp = client
        .post(format!("{url}/login"))
        .header("Origin", url)
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "{:?}", resp.headers());
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// Which upstream answered each request of `path`, from nginx's access log.
fn upstreams_of(nginx: &Nginx, request_line: &str) -> std::collections::BTreeSet<String> {
    nginx
        .access_log()
        .lines()
        .filter(|l| l.contains(&format!("\"{request_line} HTTP/1.1\"")))
        .filter_map(|l| l.rsplit(' ').next().map(str::to_string))
        .collect()
}

/// Waits until `instance` has applied `version` of `file`.
async fn applied(client: &reqwest::Client, instance: &Instance, file: &str, version: i64) {
    let url = format!("{}/history?file_path={file}", instance.base);
    let started = Instant::now();
    loop {
        let history: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        let status = instance.status(client).await;
        if history["versions"][0]["version"] == json!(version) && status["in_sync"] == json!(true) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} never applied {file} v{version}: {history}",
            instance.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The statuses of `n` content reads from `client` through nginx.
async fn reads(client: &reqwest::Client, url: &str, token: &str, n: usize, forwarded: Option<&str>) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut request = client.get(format!("{url}/api/v1/entity/user")).bearer_auth(token);
        if let Some(forwarded) = forwarded {
            request = request.header("X-Forwarded-For", forwarded);
        }
        out.push(request.send().await.unwrap().status().as_u16());
    }
    out
}

fn percentiles(mut micros: Vec<u128>) -> (u128, u128) {
    micros.sort();
    (micros[micros.len() / 2], micros[(micros.len() * 99) / 100])
}

/// PostgreSQL only (instances share one database server; a SQLite file serves one instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_nginx_serve_one_site() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("schemas")).unwrap();
    std::fs::create_dir_all(site.join("config")).unwrap();
    std::fs::write(site.join(FILE), V1).unwrap();
    let db = PgServer::shared().fresh_database().await;
    let api = approver_client(&db).await;
    let token = support::in_process::token(&db, "content", marain::engine::accounts::Role::Approver).await;
    let instances = std::thread::scope(|scope| {
        let started = ["a", "b"].map(|name| scope.spawn(|| Instance::start(name, dir.path(), &db)));
        started.map(|s| s.join().expect("an instance failed to start"))
    });
    for instance in &instances {
        instance.wait_status(&api, |s| s["in_sync"] == json!(true)).await;
    }
    let nginx = Nginx::start(&[&instances[0].process.addr, &instances[1].process.addr]);
    let url = nginx.url();

    // Signed in through nginx; the session works on both instances.
    let browser = client_from("127.0.0.5");
    let cookie = sign_in(&browser, &url).await;
    for page in PAGES {
        for _ in 0..2 {
            let resp = browser.get(format!("{url}{page}")).header("Cookie", &cookie).send().await.unwrap();
            // Without the session every page sends the browser to /login.
            assert_eq!(resp.status().as_u16(), 200, "{page}: {:?}", resp.headers());
            let body = resp.text().await.unwrap();
            assert!(body.contains("<nav aria-label=\"Pages\">"), "{page}:\n{body}");
            assert!(!body.contains("name=\"password\""), "{page} asked to sign in again");
        }
    }
    // nginx writes a request's line once the response is finished on its side.
    let started = Instant::now();
    while PAGES.iter().any(|page| upstreams_of(&nginx, &format!("GET {page}")).len() < 2) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "each page should have been answered by both instances:\n{}",
            nginx.access_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The event stream reaches the client through nginx (it buffers nothing
    // for it); a BREAKING change shows on both instances with the same id and
    // is approved through nginx with the session, whichever instance answers.
    let mut stream = EventReader::open(&api, &format!("{url}/api/v1/hot-reload")).await;
    std::fs::write(
        site.join(FILE),
        "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n",
    )
    .unwrap();
    let ids = [instances[0].pending_id(&api).await, instances[1].pending_id(&api).await];
    assert_eq!(ids[0], ids[1], "a change has one id on every instance");
    let pending = stream.until(|e| e["kind"] == "pending" && e["file"] == FILE).await;
    assert!(!pending.is_empty());
    let resp = browser
        .post(format!("{url}/api/v1/hot-reload/changes/{}/approve", ids[0]))
        .header("Cookie", &cookie)
        .header("Origin", &url)
        .json(&json!({"reason": "through nginx", "confirm": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let events = stream.until(|e| e["kind"] == "applied" && e["file"] == FILE).await;
    assert_eq!(events.last().unwrap()["version"], 2);
    for instance in &instances {
        applied(&api, instance, FILE, 2).await;
    }

    // Content through nginx, then the same reads straight to an instance:
    // the figures of the closing note (printed, not asserted).
    for n in 0..20 {
        let resp = browser
            .post(format!("{url}/api/v1/entity/user"))
            .bearer_auth(&token)
            .json(&json!({"id": format!("u{n}"), "username": format!("user {n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().await.unwrap());
    }
    let mut timings = Vec::new();
    for base in [url.clone(), format!("http://{}", instances[0].process.addr)] {
        let mut micros = Vec::new();
        for _ in 0..400 {
            let started = Instant::now();
            let resp = browser.get(format!("{base}/api/v1/entity/user")).bearer_auth(&token).send().await.unwrap();
            let list: Value = resp.json().await.unwrap();
            micros.push(started.elapsed().as_micros());
            assert_eq!(list["items"].as_array().unwrap().len(), 20);
        }
        timings.push(percentiles(micros));
    }
    println!(
        "content API, GET /api/v1/entity/user (20 records), 400 requests each: \
         through nginx p50 {} µs p99 {} µs; direct p50 {} µs p99 {} µs",
        timings[0].0, timings[0].1, timings[1].0, timings[1].1
    );

    // The rate limit through nginx, nginx trusted: each client is counted
    // by its own address, and a forged header does not escape the count.
    let limited = "values:\n  rate_limit:\n    enabled: true\n    requests_per_minute: 1\n    burst_size: 3\n";
    std::fs::write(site.join(API), format!("id: api\nname: API\n{limited}  trusted_proxies: [127.0.0.1]\n")).unwrap();
    for instance in &instances {
        applied(&api, instance, API, 1).await;
    }
    let (one, two) = (client_from("127.0.0.6"), client_from("127.0.0.7"));
    let statuses = reads(&one, &url, &token, 12, None).await;
    assert!(statuses.contains(&429), "one client, 12 reads over two instances with a burst of 3: {statuses:?}");
    let forged = reads(&one, &url, &token, 4, Some("203.0.113.9")).await;
    assert!(forged.iter().all(|s| *s == 429), "a forged X-Forwarded-For escaped the limit: {forged:?}");
    assert_eq!(reads(&two, &url, &token, 2, None).await, [200, 200], "another client is counted apart");

    // nginx no longer trusted: every request through it is nginx's own.
    std::fs::write(site.join(API), format!("id: api\nname: API\n{limited}  trusted_proxies: []\n")).unwrap();
    for instance in &instances {
        applied(&api, instance, API, 2).await;
    }
    let statuses = reads(&two, &url, &token, 12, None).await;
    assert!(statuses.contains(&429), "{statuses:?}");
    let three = client_from("127.0.0.8");
    let after = reads(&three, &url, &token, 4, None).await;
    assert!(after.iter().all(|s| *s == 429), "an untrusted proxy's clients share its address: {after:?}");
    assert!(nginx.error_log().lines().all(|l| !l.contains("[error]")), "{}", nginx.error_log());
}
