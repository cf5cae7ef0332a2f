//! A headless Chromium for the tests: chromedriver on a free port, a WebDriver
//! session whose proxy is a dead address for every host but mailroom, and the
//! checks every page gets (accessibility, network, screenshots).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const SIZES: [(&str, u32, u32); 2] = [("desktop", 1280, 800), ("phone", 390, 844)];

/// Kills chromedriver when the test ends, however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Browser {
    client: Client,
    base: Mutex<String>,
    shots: PathBuf,
    prefix: String,
    axe: String,
    _driver: Driver,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (with the reason
    /// printed) when they are not installed.
    pub async fn start(prefix: &str) -> Option<Browser> {
        Self::start_with(prefix, false).await
    }

    /// As [`Browser::start`], in the dark colour scheme when `dark`.
    pub async fn start_with(prefix: &str, dark: bool) -> Option<Browser> {
        Self::launch(prefix, dark, false, None).await
    }

    /// As [`Browser::start`], with the browser's clock in time zone `zone`
    /// (an IANA name: Chromium takes `TZ` from its environment).
    pub async fn start_in_zone(prefix: &str, zone: &str) -> Option<Browser> {
        Self::launch(prefix, false, false, Some(zone)).await
    }

    /// As [`Browser::start`], emulating a 390×844 phone (Chromium's mobile
    /// emulation: a desktop window cannot be made that narrow).
    pub async fn start_phone(prefix: &str) -> Option<Browser> {
        Self::launch(prefix, false, true, None).await
    }

    async fn launch(prefix: &str, dark: bool, phone: bool, zone: Option<&str>) -> Option<Browser> {
        let skip = |what: &str| {
            // CI sets this: there, a missing browser is a failure, not a skip.
            if std::env::var_os("MAILROOM_UI_TESTS_REQUIRE_BROWSER").is_some() {
                panic!("{what} is not installed and MAILROOM_UI_TESTS_REQUIRE_BROWSER is set");
            }
            eprintln!("SKIPPED: {what} is not installed (apt-get install chromium chromium-driver)");
        };
        let Some(driver) = find_program(&["chromedriver"]) else {
            skip("chromedriver");
            return None;
        };
        let Some(chromium) = find_program(&["chromium", "chromium-browser", "google-chrome"]) else {
            skip("chromium");
            return None;
        };
        let port = free_port();
        let mut driver = Command::new(driver);
        if let Some(zone) = zone {
            // chromedriver passes its environment on to the browser it starts.
            driver.env("TZ", zone);
        }
        let child = driver
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let guard = Driver(child);
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            // Every host but mailroom goes through a proxy that is not there:
            // a page that needed the internet would visibly break.
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1;localhost",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
        ];
        let mut args: Vec<&str> = args.to_vec();
        if dark {
            // prefers-color-scheme: dark, so axe checks the dark palette's contrast too.
            args.extend(["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]);
        }
        let mut options = json!({ "binary": chromium, "args": args });
        if phone {
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true } });
        }
        let caps = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::native().capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
                // The browser's own pace: chromedriver starts when it starts.
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        let axe = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/vendor/axe.min.js"))
            .expect("vendored axe-core");
        Some(Browser { client, base: Mutex::new(String::new()), shots, prefix: prefix.into(), axe, _driver: guard })
    }

    pub fn set_base(&self, base: &str) {
        *self.base.lock().unwrap() = base.to_owned();
    }

    fn base(&self) -> String {
        self.base.lock().unwrap().clone()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn open(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base())).await.unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// What a script returns, run in the page.
    pub async fn js_value(&self, script: &str) -> Value {
        self.js(script).await
    }

    /// Waits up to 20 s for `check` to hold.
    async fn wait_until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<String>>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = check().await;
            if seen.is_none() {
                return;
            }
            if Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                panic!("timed out waiting for {what} on {url}; saw {seen:?}");
            }
            // The browser's own pace: its page updates as its scripts run.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn wait_title(&self, title: &str) {
        let want = format!("{title} · mailroom");
        self.wait_until(&format!("title {title:?}"), || async {
            let t = self.js("return document.title").await;
            (t.as_str() != Some(want.as_str())).then(|| t.to_string())
        })
        .await;
    }

    /// Waits until the element matching `css` contains `text`.
    pub async fn wait_text(&self, css: &str, text: &str) {
        let script = format!(
            "var e = document.querySelector({}); return e ? e.textContent : null;",
            serde_json::to_string(css).unwrap()
        );
        self.wait_until(&format!("{text:?} in {css}"), || async {
            let t = self.js(&script).await;
            (!t.as_str().is_some_and(|t| t.contains(text))).then(|| t.to_string())
        })
        .await;
    }

    /// The element's text, once the element is on the page (a page may still be loading).
    pub async fn text(&self, css: &str) -> String {
        let e = self
            .client
            .wait()
            .at_most(std::time::Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        e.text().await.unwrap().trim().to_owned()
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    /// The path of the page the browser shows.
    pub async fn current_path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    pub async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
    }

    pub async fn sign_in(&self, key: &str) {
        if !self.client.current_url().await.unwrap().path().ends_with("/ui/login") {
            self.open("/ui/login").await;
        }
        self.fill("#key", key).await;
        self.click("form[action='/ui/login'] button").await;
        self.wait_until("signing in", || async {
            let path = self.client.current_url().await.unwrap().path().to_owned();
            (path == "/ui/login").then_some(path)
        })
        .await;
    }

    pub async fn sign_out(&self) {
        self.click("form.signout button").await;
        self.wait_title("Sign in").await;
    }

    /// Creates a tenant from the tenants page; returns its id.
    pub async fn create_tenant(&self, name: &str) -> String {
        self.open("/ui/tenants").await;
        self.fill("#tenant-name", name).await;
        self.click("form[action='/ui/tenants'] button").await;
        self.wait_text(".notice", "Tenant created").await;
        let url = self.client.current_url().await.unwrap();
        url.path().trim_start_matches("/ui/tenants/").to_owned()
    }

    pub async fn dark_scheme(&self) -> bool {
        self.js("return matchMedia('(prefers-color-scheme: dark)').matches;").await == json!(true)
    }

    /// Marks the current document, to tell later whether it was reloaded.
    pub async fn mark_page(&self) {
        self.js("window.__mailroom_mark = 1; return true;").await;
    }

    pub async fn page_is_marked(&self) -> bool {
        self.js("return window.__mailroom_mark === 1;").await == json!(true)
    }

    /// The HTTP status of a GET from within the page (same session).
    pub async fn status_of(&self, path: &str) -> u64 {
        let script = format!(
            "return fetch({}, {{credentials: 'same-origin', redirect: 'manual'}}).then(r => r.status);",
            serde_json::to_string(path).unwrap()
        );
        self.js(&script).await.as_u64().unwrap()
    }

    /// The checks every page gets: no serious or critical axe-core
    /// violation, nothing loaded from another host, and two screenshots.
    pub async fn check_page(&self, name: &str) {
        // Let scripts settle (live counts, polls) before judging the page.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resources =
            self.js("return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));").await;
        let base = self.base();
        for r in resources.as_array().unwrap() {
            let url = r.as_str().unwrap();
            assert!(url.starts_with(&base), "page {name} loaded {url}, not from mailroom ({base})");
        }
        self.check_accessibility(name).await;
        for (size, w, h) in SIZES {
            self.viewport(w, h).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(self.shots.join(format!("{}-{name}-{size}.png", self.prefix)), png).unwrap();
        }
        self.viewport(1280, 800).await;
    }

    /// No serious or critical axe-core violation on the page as it is now
    /// (at the window's size: a phone's layout is checked on a phone).
    pub async fn check_accessibility(&self, name: &str) {
        if self.js("return typeof axe === 'undefined';").await == json!(true) {
            self.client.execute(&format!("{}\nreturn true;", self.axe), vec![]).await.unwrap();
        }
        let violations = self
            .js(
                "return axe.run(document, {resultTypes: ['violations']}).then(r => r.violations\
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 5).join(', ')));",
            )
            .await;
        assert_eq!(violations, json!([]), "accessibility violations on page {name}");
    }

    /// Sizes the window so that the page itself (the viewport) is `w`×`h`.
    async fn viewport(&self, w: u32, h: u32) {
        self.client.set_window_size(w, h).await.unwrap();
        let inner = self.js("return [window.innerWidth, window.innerHeight];").await;
        let (iw, ih) = (inner[0].as_u64().unwrap() as u32, inner[1].as_u64().unwrap() as u32);
        if (iw, ih) != (w, h) {
            self.client.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih)).await.unwrap();
        }
        // The browser's own pace: the page lays out again after a resize.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    /// How much wider than the viewport the page is (0: nothing scrolls sideways).
    pub async fn overflow_x(&self) -> i64 {
        self.js("return document.documentElement.scrollWidth - window.innerWidth;").await.as_i64().unwrap()
    }

    /// The elements of the page (code blocks and visually hidden table heads
    /// aside) whose right edge is past the viewport: what a phone would have
    /// to scroll sideways to read, even inside a scrolling box.
    pub async fn wider_than_viewport(&self) -> Value {
        self.js("return [...document.querySelectorAll('body *')]\
             .filter(e => !e.closest('pre, table.stackable thead, .sr-only, .skip') && e.getClientRects().length)\
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)\
             .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 40));")
            .await
    }

    /// Saves a screenshot of the page as the browser shows it now.
    pub async fn photograph(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{}-{name}.png", self.prefix)), png).unwrap();
    }

    pub async fn finish(self) {
        let _ = self.client.close().await;
    }
}
