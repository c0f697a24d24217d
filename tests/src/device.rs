//! A device the test drives by hand: its own Ed25519 key, enrolled with
//! `POST /v1/enroll`, and requests signed with core's `sign_request` exactly
//! as the agent signs them — or, for the tests of what the server refuses,
//! signed wrongly on purpose (another body, another key, an old `created`,
//! a nonce used before).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use shipshape_core::signing::{SignedHeaders, sign_request};

use crate::{Server, http_client};

/// A new Ed25519 device key from the OS's random source.
pub fn new_key() -> SigningKey {
    SigningKey::from_bytes(&random_bytes())
}

/// A fresh signature nonce: 16 random bytes, base64url, as the agent makes them.
pub fn new_nonce() -> String {
    URL_SAFE_NO_PAD.encode(&random_bytes()[..16])
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    bytes
}

/// Now, in Unix seconds: a signature's `created`.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// An enrolled device whose requests the test signs itself.
#[derive(Debug)]
pub struct Device {
    /// The device id the server gave; the `keyid` of its signatures.
    pub id: String,
    /// The key the server knows for it.
    pub key: SigningKey,
    /// `http://127.0.0.1:PORT`.
    url: String,
}

impl Device {
    /// Enrolls a new key with `token`, describing the machine as `host`
    /// (a `Host` as `shipshape facts` prints it).
    pub fn enroll(server: &Server, token: &str, host: &Value) -> Device {
        let key = new_key();
        let body = json!({
            "token": token,
            "public_key": STANDARD.encode(key.verifying_key().as_bytes()),
            "host": host,
        });
        let answer = post_json(&format!("{}/v1/enroll", server.url()), &body);
        assert_eq!(
            answer.status,
            201,
            "POST /v1/enroll: {}\n{}",
            answer.text,
            server.stderr()
        );
        let id = answer.json()["device_id"]
            .as_str()
            .expect("the enrollment answer names the device id")
            .to_owned();
        Device {
            id,
            key,
            url: server.url().to_owned(),
        }
    }

    /// The same device, talking to the server through `url` (a proxy):
    /// its requests are signed for that URL.
    pub fn via(&self, url: &str) -> Device {
        Device {
            id: self.id.clone(),
            key: self.key.clone(),
            url: url.to_owned(),
        }
    }

    /// `method path` with `body`, signed now with a fresh nonce, as the agent does.
    pub fn sign(&self, method: Method, path: &str, body: Vec<u8>) -> Signed {
        self.sign_as(&self.key, &self.id, unix_now(), method, path, body)
    }

    /// A request signed with any key under any keyid, created at any time.
    pub fn sign_as(
        &self,
        key: &SigningKey,
        keyid: &str,
        created: i64,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Signed {
        let url = format!("{}{path}", self.url);
        let headers = sign_request(
            method.as_str(),
            &url,
            &body,
            key,
            keyid,
            created,
            &new_nonce(),
        )
        .expect("a loopback URL and a UUID keyid can be signed");
        Signed {
            method,
            url,
            body,
            headers,
        }
    }

    /// `POST /v1/reports` with this JSON, signed now.
    pub fn report(&self, submission: &Value) -> Answer {
        self.sign(Method::POST, "/v1/reports", json_bytes(submission))
            .send()
    }

    /// Like [`Device::report`], but `Err` when no answer came.
    pub fn try_report(&self, submission: &Value) -> reqwest::Result<Answer> {
        self.sign(Method::POST, "/v1/reports", json_bytes(submission))
            .try_send()
    }

    /// The ids of the device's reports the server lists (its latest 50),
    /// newest first.
    pub fn stored_report_ids(&self, server: &Server, admin_token: &str) -> Vec<String> {
        server.device(admin_token, &self.id)["reports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|report| {
                report["id"]
                    .as_str()
                    .expect("a listed report has an id")
                    .to_owned()
            })
            .collect()
    }
}

/// A signed request, ready to send (again and again: a replay).
#[derive(Debug, Clone)]
pub struct Signed {
    pub method: Method,
    pub url: String,
    /// What is sent; the signature may have been made over other bytes.
    pub body: Vec<u8>,
    pub headers: SignedHeaders,
}

impl Signed {
    /// Sends it as it is.
    pub fn send(&self) -> Answer {
        self.send_with(&[])
    }

    /// Sends it with extra (unsigned) headers, such as `If-None-Match`.
    pub fn send_with(&self, extra: &[(&str, &str)]) -> Answer {
        Answer::from(self.request(extra).send())
    }

    /// Sends it as it is; `Err` when no answer came (the server died, the
    /// connection was cut), where [`Signed::send`] panics.
    pub fn try_send(&self) -> reqwest::Result<Answer> {
        let response = self.request(&[]).send()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text()?;
        Ok(Answer {
            status,
            headers,
            text,
        })
    }

    fn request(&self, extra: &[(&str, &str)]) -> reqwest::blocking::RequestBuilder {
        let mut request = http_client()
            .request(self.method.clone(), &self.url)
            .header("content-type", "application/json")
            .header("content-digest", &self.headers.content_digest)
            .header("signature-input", &self.headers.signature_input)
            .header("signature", &self.headers.signature)
            .body(self.body.clone());
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| {
            panic!("{} answered no JSON ({error}): {}", self.status, self.text)
        })
    }

    /// The `error` of an `ApiError` body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("not an API error: {}", self.text))
            .to_owned()
    }

    /// A header's value, when it is there and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts a 200 whose `Content-Type` starts with `media_type` (its
    /// parameters, such as `charset`, aside); `what` names the answer when
    /// it is not.
    #[track_caller]
    pub fn assert_ok_as(&self, media_type: &str, what: &str) {
        assert_eq!(self.status, 200, "{what}: {}", self.text);
        assert!(
            self.header("content-type")
                .is_some_and(|value| value.starts_with(media_type)),
            "{what}: {:?}",
            self.headers
        );
    }
}

impl From<reqwest::Result<reqwest::blocking::Response>> for Answer {
    fn from(response: reqwest::Result<reqwest::blocking::Response>) -> Answer {
        let response = response.unwrap_or_else(|error| panic!("no answer: {error}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response
            .text()
            .unwrap_or_else(|error| panic!("cannot read the {status} answer: {error}"));
        Answer {
            status,
            headers,
            text,
        }
    }
}

/// `POST url` with a JSON body, unsigned (enrollment).
pub fn post_json(url: &str, body: &Value) -> Answer {
    Answer::from(
        http_client()
            .post(url)
            .header("content-type", "application/json")
            .body(json_bytes(body))
            .send(),
    )
}

/// The JSON text of `value`, as the agent sends it.
pub fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}
