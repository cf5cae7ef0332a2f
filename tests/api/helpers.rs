//! The test harness: a real mailroom on port 0 with its own database, and
//! (optionally) the in-repo Resend mock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mailroom::app::Application;
use mailroom::config::Config;
use mailroom::mock::{MockConfig, MockResend};
use mailroom::outbox::Outbox;
use mailroom::store::Store;
use mailroom::workers::Workers;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const ADMIN_KEY: &str = "mra_test_admin_key_0123456789abcdef";
pub const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A fresh database: a temp SQLite file, or a new PostgreSQL database when
/// `TEST_DATABASE_URL` is set.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A handle on a database another `TestDb` owns (it is removed with that one).
    pub fn shared(url: &str) -> TestDb {
        TestDb { url: url.to_owned(), _dir: None }
    }

    pub async fn new() -> TestDb {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(base) => {
                let name = format!("mailroom_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Store::connect(&base, 1).await.expect("connect to TEST_DATABASE_URL");
                admin.execute_raw(&format!("CREATE DATABASE {name}")).await.expect("create test database");
                admin.close().await;
                let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                TestDb { url: url.to_string(), _dir: None }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("mailroom.db").display());
                TestDb { url, _dir: Some(dir) }
            }
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub outbox: Outbox,
    /// The app's workers, for [`TestApp::settle`] to step.
    pub workers: Workers,
    /// Whether the app runs its workers itself (`Options::run_worker`); when
    /// not, the test steps them by hand and `settle_until` only waits.
    pub runs_workers: bool,
    /// Keeps the database (a temp dir for SQLite) alive as long as the app.
    pub _db: TestDb,
    pub mock: Option<MockResend>,
}

#[derive(Clone)]
pub struct Options {
    pub resend: bool,
    pub run_worker: bool,
    pub webhook_secret: Option<String>,
    pub mock: MockConfig,
    pub env: Vec<(String, String)>,
    /// Records the app's DNS resolver answers: (name, "TXT" | "MX", value).
    pub dns: Vec<(String, &'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resend: false,
            run_worker: true,
            webhook_secret: Some(WEBHOOK_SECRET.into()),
            mock: MockConfig::default(),
            env: Vec::new(),
            dns: Vec::new(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let db = TestDb::new().await;
    spawn_on(db, opts).await
}

pub async fn spawn_on(db: TestDb, opts: Options) -> TestApp {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DATABASE_URL".into(), db.url.clone());
    env.insert("MAILROOM_BIND".into(), "127.0.0.1:0".into());
    env.insert("MAILROOM_ADMIN_KEY".into(), ADMIN_KEY.into());
    env.insert("MAILROOM_SEND_RATE".into(), "1000".into());
    env.insert("MAILROOM_RETRY_BASE_MS".into(), "20".into());
    env.insert("MAILROOM_DB_MAX_CONNECTIONS".into(), "5".into());
    // The server runs inside this test binary: templates render in the real one.
    env.insert("MAILROOM_RENDER_BIN".into(), env!("CARGO_BIN_EXE_mailroom").into());
    // Every app asks a DNS stub of its own, never the network.
    env.insert("MAILROOM_DNS_RESOLVER".into(), dns_stub(opts.dns.clone()).await.to_string());
    if let Some(secret) = &opts.webhook_secret {
        env.insert("WEBHOOK_SECRET".into(), secret.clone());
    }
    let mut mock = None;
    if opts.resend {
        let m = MockResend::start(MockConfig { port: 0, ..opts.mock.clone() }).await.expect("mock starts");
        env.insert("MAILROOM_PROVIDER".into(), "resend".into());
        env.insert("RESEND_API_KEY".into(), "re_test_key".into());
        env.insert("RESEND_BASE_URL".into(), m.url());
        mock = Some(m);
    }
    for (k, v) in &opts.env {
        env.insert(k.clone(), v.clone());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid config");
    let app = Application::build(config, opts.run_worker).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let outbox = app.outbox();
    let workers = app.workers();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp { base, http: reqwest::Client::new(), store, outbox, workers, runs_workers: opts.run_worker, _db: db, mock }
}

pub struct Res {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Res {
    /// The path of the next page, from `Link: <path>; rel="next"`.
    pub fn next_page(&self) -> Option<String> {
        let link = self.headers.get("link")?.to_str().unwrap();
        let (target, rel) = link.split_once(';').unwrap();
        assert_eq!(rel.trim(), "rel=\"next\"", "{link}");
        Some(target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    }
}

impl TestApp {
    /// Every item of a paged list, following its `Link` headers: each page a
    /// JSON array of at most `limit` items (the `limit` in `path`).
    pub async fn get_all(&self, path: &str, key: &str) -> Vec<Value> {
        let limit = url::Url::parse(&format!("http://x{path}"))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "limit")
            .map_or(100, |(_, v)| v.parse::<usize>().unwrap());
        let (mut out, mut next) = (Vec::new(), Some(path.to_owned()));
        while let Some(path) = next {
            let r = self.get(&path, key).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            let page = r.body.as_array().unwrap_or_else(|| panic!("{path} answers an array: {}", r.body));
            assert!(page.len() <= limit, "{path}");
            out.extend(page.iter().cloned());
            next = r.next_page();
        }
        out
    }

    pub async fn request(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Res {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_res(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Res {
        self.request(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Res {
        self.request(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Res {
        self.request(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Res {
        self.request(Method::DELETE, path, Some(key), None).await
    }

    pub async fn post_with_headers(&self, path: &str, key: &str, headers: &[(&str, &str)], body: &Value) -> Res {
        let mut req = self.http.post(format!("{}{path}", self.base)).bearer_auth(key).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_res(req.send().await.expect("request sent")).await
    }

    /// A customer with a verified domain and its own key: (customer id, tenant key).
    pub async fn verified_tenant(&self, name: &str, domain: &str) -> (String, String) {
        let c = self.post("/customers", ADMIN_KEY, json!({ "name": name })).await;
        assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
        let id = c.body["id"].as_str().expect("id").to_owned();
        let key = self.post(&format!("/customers/{id}/api-keys"), ADMIN_KEY, json!({})).await;
        let key = key.body["key"].as_str().expect("key").to_owned();
        let d = self.post(&format!("/customers/{id}/domains"), &key, json!({ "domain_name": domain })).await;
        assert_eq!(d.status, StatusCode::CREATED, "{}", d.body);
        let v = self.post(&format!("/customers/{id}/domains/verify"), &key, json!({})).await;
        assert_eq!(v.body["verified"], true, "{}", v.body);
        (id, key)
    }

    /// A customer whose domain is recorded as verified directly in the store
    /// (for tests whose provider is unreachable on purpose).
    pub async fn verified_tenant_offline(&self, name: &str, domain: &str) -> (String, String) {
        let c = self.post("/customers", ADMIN_KEY, json!({ "name": name })).await;
        let id = c.body["id"].as_str().expect("id").to_owned();
        let key = self.post(&format!("/customers/{id}/api-keys"), ADMIN_KEY, json!({})).await;
        let key = key.body["key"].as_str().expect("key").to_owned();
        self.store
            .set_tenant_domain(
                &mailroom::domain::TenantId::from_stored(id.clone()),
                domain,
                "dom_offline",
                "verified",
                "[]",
            )
            .await
            .expect("domain set");
        (id, key)
    }

    /// Queues one transactional email to `to`; returns its `email_id`.
    pub async fn send_single(&self, tenant: &str, key: &str, to: &str) -> String {
        let r = self
            .post(
                &format!("/customers/{tenant}/send/single"),
                key,
                json!({ "to_email": to, "subject": "s", "html": "h" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        r.body["email_id"].as_str().expect("email_id").to_owned()
    }

    pub async fn add_contact(&self, tenant: &str, key: &str, body: Value) -> String {
        let r = self.post(&format!("/customers/{tenant}/contacts"), key, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    pub async fn import_contacts(&self, tenant: &str, key: &str, n: usize, domain: &str) {
        for start in (0..n).step_by(5_000) {
            let contacts: Vec<Value> = (start..(start + 5_000).min(n))
                .map(|i| json!({ "email": format!("user{i}@{domain}"), "first_name": format!("U{i}") }))
                .collect();
            let r =
                self.post(&format!("/customers/{tenant}/contacts/import"), key, json!({ "contacts": contacts })).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }

    pub fn mock(&self) -> &MockResend {
        self.mock.as_ref().expect("app was spawned with the Resend mock")
    }

    /// Posts a webhook signed like Resend (Svix) does.
    pub async fn webhook(&self, svix_id: &str, body: &Value) -> Res {
        self.webhook_signed(svix_id, body, WEBHOOK_SECRET, now_secs()).await
    }

    pub async fn webhook_signed(&self, svix_id: &str, body: &Value, secret: &str, ts: i64) -> Res {
        let raw = body.to_string();
        let sig =
            standardwebhooks::Webhook::new(secret).expect("secret").sign(svix_id, ts, raw.as_bytes()).expect("sign");
        let req = self
            .http
            .post(format!("{}/webhooks/resend", self.base))
            .header("svix-id", svix_id)
            .header("svix-timestamp", ts.to_string())
            .header("svix-signature", sig)
            .header("content-type", "application/json")
            .body(raw);
        into_res(req.send().await.expect("request sent")).await
    }

    /// Steps every worker of the app until none has work due now (by the
    /// store's clock), whether or not the app runs them in the background too.
    pub async fn settle(&self) {
        self.workers.settle().await;
    }

    /// Moves the store's clock (the one workers read due times from) ahead by
    /// `by`: what falls due in that time is due now, for [`TestApp::settle`].
    pub fn advance(&self, by: Duration) {
        self.store.clock().advance(by);
    }

    /// Settles until `done`, moving the store's clock a second ahead between
    /// rounds (so retries, leases and delays fall due), for at most 2000
    /// rounds (about 20 s of real time, a little over half an hour of the store's).
    /// In an app whose test steps the workers by hand, only waits for `done`.
    pub async fn settle_until<F, Fut>(&self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        if !self.runs_workers {
            return wait_for(what, Duration::from_secs(20), done).await;
        }
        for _ in 0..2000 {
            self.settle().await;
            if done().await {
                return;
            }
            self.advance(Duration::from_secs(1));
            // Room for what runs beside the workers (the HTTP server, a mock).
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} never happened");
    }

    /// Waits (up to 30 s) until the outbox holds nothing queued or in flight.
    pub async fn drain(&self) {
        self.settle().await;
        wait_for("the outbox to drain", Duration::from_secs(60), || async {
            self.store.outbox_depth().await.expect("depth") == 0
        })
        .await;
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

async fn into_res(r: reqwest::Response) -> Res {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Res { status, headers, body }
}

pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An event body in Resend's shape for a provider email id.
pub fn event(kind: &str, email_id: &str, extra: Value) -> Value {
    let mut data = json!({ "email_id": email_id, "created_at": "2026-11-20T10:00:00.000Z", "from": "hello@acme.com", "to": ["x@example.org"], "subject": "Hi" });
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    json!({ "type": kind, "created_at": "2026-11-20T10:00:01.000Z", "data": data })
}

/// A DNS server for one test: answers TXT and MX queries from `records`
/// (anything else: no records), on a local UDP port.
pub async fn dns_stub(records: Vec<(String, &'static str, String)>) -> std::net::SocketAddr {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::{MX, TXT};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("dns stub binds");
    let addr = socket.local_addr().expect("dns stub address");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut answer = Message::new();
            answer
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(query.op_code())
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true)
                .add_queries(query.queries().to_vec());
            for q in query.queries() {
                let name = q.name().to_utf8().trim_end_matches('.').to_owned();
                for (n, kind, value) in &records {
                    if *n != name {
                        continue;
                    }
                    let rdata = match (*kind, q.query_type()) {
                        ("TXT", RecordType::TXT) => RData::TXT(TXT::new(vec![value.clone()])),
                        ("MX", RecordType::MX) => RData::MX(MX::new(10, Name::from_utf8(value).expect("mx name"))),
                        _ => continue,
                    };
                    answer.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                }
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}
