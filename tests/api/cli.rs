//! The binary as an operator runs it: `serve --help`, `--bind`, a port in
//! use, and `mailroom import` against a running server.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{spawn_app, ADMIN_KEY};

/// The binary with none of the developer's own settings.
fn mailroom(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("MAILROOM_")
            || ["DATABASE_URL", "PUBLIC_URL", "RESEND_API_KEY", "WEBHOOK_SECRET"].contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs to its end (at most 60 s): exit status, stdout, stderr.
async fn run(mut cmd: Command) -> (std::process::ExitStatus, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("ends within 60 s").unwrap();
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The names of the environment variables `src/config.rs` reads.
fn variables_the_config_reads() -> Vec<String> {
    let source = include_str!("../../src/config.rs");
    let mut names: Vec<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|p| p.len() > 3 && p.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .filter(|p| {
            p.starts_with("MAILROOM_")
                || p.starts_with("RESEND_")
                || ["DATABASE_URL", "PUBLIC_URL", "WEBHOOK_SECRET", "DEBUG"].contains(p)
        })
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn serve_help_lists_every_setting_the_config_reads_with_its_default_and_the_bind_flag() {
    let (status, help, _) = run(mailroom(&["serve", "--help"])).await;
    assert!(status.success());
    let names = variables_the_config_reads();
    assert!(names.len() > 40, "found the variables: {names:?}");
    for name in &names {
        let line = help.lines().find(|l| l.split_whitespace().next() == Some(name.as_str()));
        let line = line.unwrap_or_else(|| panic!("`serve --help` does not list {name}:\n{help}"));
        assert!(line.contains("[default: "), "{name} without its default: {line}");
    }
    assert!(help.contains("--bind <ADDRESS>"), "{help}");
    assert!(help.contains("http:// + MAILROOM_BIND"), "PUBLIC_URL's default follows the bind:\n{help}");
}

#[tokio::test]
async fn a_port_in_use_is_refused_before_a_database_or_an_admin_key_is_made() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mailroom.db");
    for how in ["flag", "env"] {
        let mut cmd = match how {
            "flag" => mailroom(&["serve", "--bind", &format!("127.0.0.1:{port}")]),
            _ => mailroom(&["serve"]),
        };
        if how == "env" {
            cmd.env("MAILROOM_BIND", format!("127.0.0.1:{port}"));
        }
        cmd.env("DATABASE_URL", format!("sqlite://{}", db.display()));
        let (status, stdout, stderr) = run(cmd).await;
        assert!(!status.success(), "{how}: refused");
        assert!(stderr.contains(&format!("127.0.0.1:{port} is already in use")), "{how}: {stderr}");
        assert!(!stdout.contains("admin key"), "{how}: no admin key printed: {stdout}");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "{how}: no database file created");
    }
    drop(taken);
}

#[tokio::test]
async fn the_bind_flag_beats_the_environment_and_the_public_url_follows_it() {
    let (port, other) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mailroom(&["serve", "--bind", &format!("127.0.0.1:{port}")]);
    cmd.env("MAILROOM_BIND", format!("127.0.0.1:{other}"))
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("m.db").display()))
        .env("MAILROOM_ADMIN_KEY", ADMIN_KEY);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let said = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("public URL") {
                return line;
            }
        }
        panic!("the server ended without saying its public URL");
    })
    .await
    .expect("the server starts within 60 s");
    assert!(said.contains(&format!("public URL http://127.0.0.1:{port}")), "{said}");
    let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(reqwest::get(format!("http://127.0.0.1:{other}/healthz")).await.is_err(), "not on MAILROOM_BIND");
    child.kill().await.unwrap();
}

/// `mailroom import FILE` against `app`, with stdout and stderr not a terminal.
fn import(base: &str, tenant: &str, key: &str, file: &std::path::Path) -> Command {
    let mut cmd = mailroom(&["import", file.to_str().unwrap(), "--customer", tenant, "--url", base]);
    cmd.env("MAILROOM_API_KEY", key);
    cmd
}

#[tokio::test]
async fn import_counts_the_rows_the_server_wrote_and_fails_when_rows_were_rejected() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    let mut csv = String::from("email,first_name\n");
    for i in 0..4_500 {
        csv.push_str(&format!("c{i}@example.org,C{i}\n"));
    }
    std::fs::write(&good, &csv).unwrap();
    let (status, stdout, stderr) = run(import(&app.base, &t, &key, &good)).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("created 4500, updated 0, skipped 0, rejected 0"), "{stdout}");
    // Not a terminal: progress comes as lines, counting rows the server wrote
    // (a chunk of 2,000 or more), not bytes uploaded.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.contains("rows done")).collect();
    assert!(!progress.is_empty(), "progress lines on stderr: {stderr}");
    let done: u64 = progress[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!((2_000..=4_500).contains(&done), "{}", progress[0]);
    assert!(progress[0].contains(&format!("of about 4500 rows done (created {done},")), "{}", progress[0]);
    assert!(progress[0].contains("rows/s"), "{}", progress[0]);

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "email\nnew@example.org\nnot-an-address\n").unwrap();
    let (status, stdout, stderr) = run(import(&app.base, &t, &key, &bad)).await;
    assert!(!status.success(), "a rejected row fails the command: {stdout}");
    assert!(stdout.contains("created 1, updated 0, skipped 0, rejected 1"), "{stdout}");
    assert!(stdout.contains("line 3"), "{stdout}");
    assert!(stderr.contains("1 rows were rejected"), "{stderr}");
    let found = app.get(&format!("/customers/{t}/contacts?email=new@example.org"), &key).await;
    assert_eq!(found.body.as_array().unwrap().len(), 1, "the good row was imported");
}

#[tokio::test]
async fn import_says_a_refused_key_is_refused_and_an_unknown_customer_unknown() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.csv");
    // Large enough that a server refusing it unread would break the upload's pipe.
    let mut csv = String::from("email\n");
    for i in 0..200_000 {
        csv.push_str(&format!("someone{i}@example.org\n"));
    }
    std::fs::write(&file, &csv).unwrap();
    let (status, _, stderr) = run(import(&app.base, &t, "mrk_not_a_real_key_0123456789abcdef", &file)).await;
    assert!(!status.success());
    assert!(stderr.contains("the server refused the API key (401)"), "{stderr}");
    let other = "0192f0c4-0000-7000-8000-000000000001";
    let (status, _, stderr) = run(import(&app.base, other, &key, &file)).await;
    assert!(!status.success());
    assert!(stderr.contains(&format!("customer {other} not found")), "{stderr}");
    let r = app.get(&format!("/customers/{t}/contacts?limit=1"), &key).await;
    assert_eq!(r.body, json!([]), "nothing was imported");
}
