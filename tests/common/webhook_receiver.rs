//! A webhook receiver on 127.0.0.1:0, standing in for a tenant's endpoint or
//! the operator's alert URL: records every request it gets, answers the
//! scripted statuses in turn, then `fallback` (200 unless told otherwise),
//! after `delay` (none unless told: a slow endpoint).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    fallback: Arc<Mutex<u16>>,
    delay: Arc<Mutex<Duration>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        let r = Receiver {
            url,
            got: Arc::default(),
            script: Arc::default(),
            fallback: Arc::new(Mutex::new(200)),
            delay: Arc::default(),
            arrivals: Arc::default(),
        };
        let me = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    me.arrivals.lock().unwrap().push(Instant::now());
                    me.got.lock().unwrap().push((headers, body));
                    let status = me.script.lock().unwrap().pop_front().unwrap_or(*me.fallback.lock().unwrap());
                    let delay = *me.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    /// Answers these statuses to the next requests, in turn.
    pub fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// Answers `status` once the script is spent.
    pub fn always(&self, status: u16) {
        *self.fallback.lock().unwrap() = status;
    }

    /// Answers each request only after `delay` (a slow endpoint).
    pub fn delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// When each request so far arrived (before any delay).
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Every request so far: headers and body.
    pub fn received(&self) -> Vec<(HeaderMap, String)> {
        self.got.lock().unwrap().clone()
    }

    /// The `type` of every JSON body so far.
    pub fn types(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .filter_map(|v| v["type"].as_str().map(str::to_owned))
            .collect()
    }
}
