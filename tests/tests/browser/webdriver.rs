//! Just enough of the W3C WebDriver protocol to drive Chromium through
//! chromedriver: open a page, find elements by CSS selector, read them,
//! click, type, take a screenshot. Plain JSON over loopback HTTP.

use std::fmt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What went wrong, as a person reads it in a failed test.
pub struct Error(String);

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// One browser session; ended when dropped.
#[derive(Debug)]
pub struct Session {
    http: Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    base: String,
}

/// An element of the current page.
#[derive(Debug)]
pub struct Element<'a> {
    session: &'a Session,
    id: String,
}

impl Session {
    /// Opens a browser through the chromedriver at `driver` with these
    /// `goog:chromeOptions`.
    pub fn start(http: Client, driver: &str, chrome_options: Value) -> Result<Session> {
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": chrome_options,
                }
            }
        });
        let value = call(
            &http,
            Method::POST,
            &format!("{driver}/session"),
            Some(capabilities),
        )?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| Error(format!("new session: no sessionId in {value}")))?;
        Ok(Session {
            base: format!("{driver}/session/{id}"),
            http,
        })
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        call(&self.http, method, &format!("{}{path}", self.base), body)
    }

    /// Opens `url` and waits until it has loaded.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.call(Method::POST, "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// The address of the current page.
    pub fn current_url(&self) -> Result<String> {
        string(self.call(Method::GET, "/url", None)?, "current url")
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        let value = self.call(Method::POST, "/element", Some(by_css(css)))?;
        self.element(value, css)
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>> {
        match self.call(Method::POST, "/elements", Some(by_css(css)))? {
            Value::Array(values) => values
                .into_iter()
                .map(|value| self.element(value, css))
                .collect(),
            other => Err(Error(format!("find all {css}: not a list: {other}"))),
        }
    }

    /// The first element matching a CSS selector, once there is one (after
    /// a click, the next page may still be on its way).
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element<'_>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(css) {
                Ok(element) => return Ok(element),
                Err(error) if Instant::now() >= deadline => {
                    let url = self.current_url().unwrap_or_default();
                    return Err(Error(format!("{error} (waited {timeout:?} on {url})")));
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let encoded = string(self.call(Method::GET, "/screenshot", None)?, "screenshot")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| Error(format!("screenshot: not base64: {error}")))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|error| Error(format!("cannot create {}: {error}", dir.display())))?;
        }
        std::fs::write(path, png)
            .map_err(|error| Error(format!("cannot write {}: {error}", path.display())))
    }

    fn element(&self, value: Value, css: &str) -> Result<Element<'_>> {
        let id = value[ELEMENT]
            .as_str()
            .ok_or_else(|| Error(format!("find {css}: no element in {value}")))?;
        Ok(Element {
            session: self,
            id: id.to_owned(),
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(error) = call(&self.http, Method::DELETE, &self.base, None) {
            eprintln!("cannot end the browser session: {error}");
        }
    }
}

impl Element<'_> {
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        self.session
            .call(method, &format!("/element/{}{path}", self.id), body)
    }

    /// The text as rendered (what a person sees).
    pub fn text(&self) -> Result<String> {
        string(self.call(Method::GET, "/text", None)?, "element text")
    }

    /// An attribute's value; `None` when the element has no such attribute.
    pub fn attribute(&self, name: &str) -> Result<Option<String>> {
        match self.call(Method::GET, &format!("/attribute/{name}"), None)? {
            Value::Null => Ok(None),
            Value::String(value) => Ok(Some(value)),
            other => Err(Error(format!("attribute {name}: not a string: {other}"))),
        }
    }

    /// The first descendant matching a CSS selector.
    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        let value = self.call(Method::POST, "/element", Some(by_css(css)))?;
        self.session.element(value, css)
    }

    pub fn click(&self) -> Result<()> {
        self.call(Method::POST, "/click", Some(json!({}))).map(drop)
    }

    /// Types `text` into the element.
    pub fn send_keys(&self, text: &str) -> Result<()> {
        self.call(Method::POST, "/value", Some(json!({ "text": text })))
            .map(drop)
    }
}

fn by_css(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

fn string(value: Value, what: &str) -> Result<String> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(Error(format!("{what}: not a string: {other}"))),
    }
}

/// One WebDriver command: its `value`, or the driver's error and message.
fn call(http: &Client, method: Method, url: &str, body: Option<Value>) -> Result<Value> {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .map_err(|error| Error(format!("{method} {url}: {error}")))?;
    let status = response.status();
    let mut reply: Value = response
        .json()
        .map_err(|error| Error(format!("{method} {url}: {status}, not JSON: {error}")))?;
    let value = reply["value"].take();
    if status.is_success() {
        Ok(value)
    } else {
        Err(Error(format!(
            "{method} {url}: {status}: {}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or("(no message)")
        )))
    }
}
