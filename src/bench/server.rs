//! A mailroom under test: the real binary in its own process (so its memory and
//! CPU are its own), on a fresh database, with an admin key the bench knows.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::store::Store;

pub const ADMIN_KEY: &str = "mra_bench_admin_key_0123456789abcdef";

/// A fresh database: a temp SQLite file, or a new database beside `--database-url`.
pub struct BenchDb {
    pub url: String,
    admin_url: Option<String>,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDb {
    pub async fn new(base: Option<&str>) -> anyhow::Result<Self> {
        match base {
            Some(url) if url.starts_with("postgres") => {
                let name = format!("mailroom_bench_{}", uuid::Uuid::new_v4().simple());
                let admin = Store::connect(url, 1).await?;
                admin
                    .execute_raw(&format!("CREATE DATABASE {name}"))
                    .await
                    .context("Failed to create a bench database")?;
                admin.close().await;
                let mut u = url::Url::parse(url)?;
                u.set_path(&format!("/{name}"));
                Ok(Self { url: u.to_string(), admin_url: Some(url.to_owned()), name: Some(name), _dir: None })
            }
            Some(url) => Ok(Self { url: url.to_owned(), admin_url: None, name: None, _dir: None }),
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(Self { url, admin_url: None, name: None, _dir: Some(dir) })
            }
        }
    }

    /// Drops a PostgreSQL bench database (SQLite's goes with its temp dir).
    pub async fn remove(self) {
        if let (Some(admin), Some(name)) = (&self.admin_url, &self.name) {
            if let Ok(store) = Store::connect(admin, 1).await {
                let _ = store.execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                store.close().await;
            }
        }
    }
}

pub struct Server {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(bin: &Path, db: &BenchDb, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(bin);
        cmd.arg("serve").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        for k in ["RESEND_API_KEY", "MAILROOM_PROVIDER", "WEBHOOK_SECRET", "RUST_LOG", "DEBUG"] {
            cmd.env_remove(k);
        }
        cmd.env("DATABASE_URL", &db.url)
            .env("MAILROOM_BIND", format!("127.0.0.1:{port}"))
            .env("MAILROOM_ADMIN_KEY", ADMIN_KEY)
            // Nothing in a bench looks at DNS; make sure nothing leaves the machine.
            .env("MAILROOM_DNS_RESOLVER", "127.0.0.1:9")
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("Failed to start {}", bin.display()))?;
        let server = Self { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
        for _ in 0..200 {
            if server.http.get(format!("{}/healthz", server.base)).send().await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("mailroom did not start within 10 s")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in MB, from /proc.
    pub fn rss_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: {status} {body}");
        }
        Ok(body)
    }

    /// A customer with a verified domain: (customer id, its key).
    pub async fn tenant(&self) -> anyhow::Result<(String, String)> {
        self.tenant_on("Bench", "bench.example.com").await
    }

    /// A customer `name` with the verified domain `domain`: (customer id, its key).
    pub async fn tenant_on(&self, name: &str, domain: &str) -> anyhow::Result<(String, String)> {
        let post = reqwest::Method::POST;
        let c = self.call(post.clone(), "/customers", ADMIN_KEY, Some(json!({ "name": name }))).await?;
        let id = c["id"].as_str().context("customer id")?.to_owned();
        let k = self.call(post.clone(), &format!("/customers/{id}/api-keys"), ADMIN_KEY, Some(json!({}))).await?;
        let key = k["key"].as_str().context("api key")?.to_owned();
        self.call(post.clone(), &format!("/customers/{id}/domains"), &key, Some(json!({ "domain_name": domain })))
            .await?;
        self.call(post, &format!("/customers/{id}/domains/verify"), &key, Some(json!({}))).await?;
        Ok((id, key))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary to benchmark: `--mailroom-bin`, else this executable.
pub fn binary(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().context("Failed to find the mailroom binary"),
    }
}
