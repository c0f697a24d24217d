//! The fleet report for the security team, behind an admin token: JSON and
//! CSV under `/v1/`, and the HTML pages (`/`, `/devices/{id}`) with the
//! login form that turns a token into a cookie.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use jiff::Timestamp;
use serde::Deserialize;
use shipshape_core::checks::CheckId;
use shipshape_core::wire::DeviceStatus;

use super::{AppState, Failure};
use crate::auth;
use crate::fleet::{self, DEFAULT_PER_PAGE};
use crate::model::{DeviceDetail, FleetCursor, FleetPage, FleetQuery, Staleness};
use crate::store::{Store, StoreError};

/// The most devices one page may show.
pub const MAX_PER_PAGE: u32 = 1000;

/// The fleet filter as the URL carries it; empty values mean "any" (the
/// HTML form sends `status=` for "any").
#[derive(Debug, Default, Deserialize)]
pub(super) struct FleetParams {
    status: Option<String>,
    check: Option<String>,
    after: Option<String>,
    per_page: Option<String>,
    /// Page numbers are gone; named only to say so.
    page: Option<String>,
}

/// Why a fleet filter is not valid: the parameter and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BadParam {
    name: &'static str,
    message: String,
}

impl From<BadParam> for Failure {
    fn from(bad: BadParam) -> Failure {
        Failure::field(bad.name, bad.message)
    }
}

impl FleetParams {
    fn query(self, staleness: Staleness) -> Result<FleetQuery, BadParam> {
        let given = |value: Option<String>| value.filter(|value| !value.is_empty());
        let status = given(self.status)
            .map(|status| status.parse::<DeviceStatus>())
            .transpose()
            .map_err(|message| BadParam {
                name: "status",
                message,
            })?;
        let check = given(self.check)
            .map(|check| check.parse::<CheckId>())
            .transpose()
            .map_err(|message| BadParam {
                name: "check",
                message,
            })?
            .map(|check| check.as_str().to_owned());
        if given(self.page).is_some() {
            return Err(BadParam {
                name: "page",
                message: "pages are not numbered: pass the `next` of a page as `after`".to_owned(),
            });
        }
        let after = given(self.after)
            .map(|after| FleetCursor::decode(&after))
            .transpose()
            .map_err(|error| BadParam {
                name: "after",
                message: error.to_string(),
            })?;
        let per_page = match given(self.per_page) {
            None => DEFAULT_PER_PAGE,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|number| (1..=MAX_PER_PAGE).contains(number))
                .ok_or_else(|| BadParam {
                    name: "per_page",
                    message: format!("`{value}` is not a number from 1 to {MAX_PER_PAGE}"),
                })?,
        };
        Ok(FleetQuery {
            status,
            check,
            after,
            per_page,
            staleness,
        })
    }
}

fn query_params(
    params: Result<Query<FleetParams>, QueryRejection>,
) -> Result<FleetParams, BadParam> {
    params
        .map(|Query(params)| params)
        .map_err(|rejection| BadParam {
            name: "query",
            message: rejection.body_text(),
        })
}

/// Whether the request carries a live admin token, as a bearer token or the
/// login cookie; `None` when it carries none at all.
async fn admin(
    state: &AppState,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Option<bool>, StoreError> {
    let Some(token) = auth::bearer_token(headers).or_else(|| auth::cookie_token(headers)) else {
        return Ok(None);
    };
    auth::is_admin(state.store(), token, now).await.map(Some)
}

pub(super) async fn require_admin(
    state: &AppState,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<(), Failure> {
    match admin(state, headers, now).await? {
        Some(true) => Ok(()),
        _ => Err(Failure::admin_required()),
    }
}

/// `GET /v1/fleet`: one page of the fleet report.
pub(super) async fn fleet_json(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<FleetParams>, QueryRejection>,
) -> Result<Json<FleetPage>, Failure> {
    let now = Timestamp::now();
    require_admin(&state, &headers, now).await?;
    let query = query_params(params)?.query(state.staleness(now))?;
    Ok(Json(fleet_page(state.store(), &query).await?))
}

/// The counts and a page of the device table: the fleet report.
pub async fn fleet_page(store: &dyn Store, query: &FleetQuery) -> Result<FleetPage, StoreError> {
    let (counts, page) = tokio::try_join!(store.fleet_summary(query), store.fleet_devices(query))?;
    Ok(FleetPage::new(counts, page, query.per_page))
}

/// `GET /v1/fleet.csv`: every device matching the filter, streamed page by
/// page (the rows of one page in memory at a time, however large the fleet).
pub(super) async fn fleet_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<FleetParams>, QueryRejection>,
) -> Result<Response, Failure> {
    let now = Timestamp::now();
    require_admin(&state, &headers, now).await?;
    let mut query = query_params(params)?.query(state.staleness(now))?;
    query.after = None;
    query.per_page = MAX_PER_PAGE;
    let body = csv_chunks(std::sync::Arc::clone(&state.inner.store), query);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"shipshape-fleet.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Every device the query's filter matches (from its `after` on) as CSV:
/// the header line, then the devices one page of `query.per_page` at a
/// time, each read by keyset as the stream is consumed — the memory of two
/// pages, however large the fleet: the next page is read while this one is
/// written out. A store failure midway ends the stream with the error (the
/// response is cut short).
pub fn csv_chunks(
    store: std::sync::Arc<dyn Store>,
    query: FleetQuery,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
    let first = read_page(&store, query.clone());
    futures_util::stream::try_unfold(Some((first, query, true)), move |state| {
        let store = std::sync::Arc::clone(&store);
        async move {
            let Some((reading, mut query, first)) = state else {
                return Ok(None);
            };
            let page = reading
                .await
                .map_err(|error| StoreError(format!("reading the fleet failed: {error}")))??;
            let next = page.next.map(|next| {
                query.after = Some(next);
                (read_page(&store, query.clone()), query, false)
            });
            let mut chunk = if first {
                fleet::csv::header()
            } else {
                String::new()
            };
            chunk.push_str(&fleet::csv::rows(&page.devices));
            Ok(Some((Bytes::from(chunk), next)))
        }
    })
}

/// Starts reading one page of the device table.
fn read_page(
    store: &std::sync::Arc<dyn Store>,
    query: FleetQuery,
) -> tokio::task::JoinHandle<Result<crate::model::DevicePage, StoreError>> {
    let store = std::sync::Arc::clone(store);
    tokio::spawn(async move { store.fleet_devices(&query).await })
}

/// `GET /v1/devices/{id}`: a device with its findings and history.
pub(super) async fn device_json(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DeviceDetail>, Failure> {
    let now = Timestamp::now();
    require_admin(&state, &headers, now).await?;
    match state.store().device(&id, state.staleness(now)).await? {
        Some(detail) => Ok(Json(detail)),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no device `{id}`"),
        )),
    }
}

/// An HTML page: never cached, since it shows what only an admin may see.
fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn error_page(status: StatusCode, message: &str) -> Response {
    page(status, fleet::html::error_page(status.as_u16(), message))
}

fn store_error_page(error: StoreError) -> Response {
    tracing::error!(%error, "store failed a page");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server's storage is unavailable. Try again in a moment.",
    )
}

/// The sign-in page, and a cookie that forgets a token that stopped working.
fn login_page(state: &AppState, error: Option<&str>, status: StatusCode) -> Response {
    let mut response = page(status, fleet::html::login_page(error));
    if error.is_some() {
        set_cookie(&mut response, &auth::logout_cookie(state.settings().tls));
    }
    response
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

fn see_other(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

const SESSION_ENDED: &str =
    "That admin token is no longer valid (revoked or expired). Sign in with a current one.";

/// `GET /`: the fleet page, or the sign-in form.
pub(super) async fn fleet_html(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<FleetParams>, QueryRejection>,
) -> Response {
    let now = Timestamp::now();
    match admin(&state, &headers, now).await {
        Err(error) => return store_error_page(error),
        Ok(None) => return login_page(&state, None, StatusCode::OK),
        Ok(Some(false)) => return login_page(&state, Some(SESSION_ENDED), StatusCode::OK),
        Ok(Some(true)) => {}
    }
    let query = match query_params(params).and_then(|params| params.query(state.staleness(now))) {
        Ok(query) => query,
        Err(bad) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("The filter's {} is not valid: {}", bad.name, bad.message),
            );
        }
    };
    let fleet = match fleet_page(state.store(), &query).await {
        Ok(fleet) => fleet,
        Err(error) => return store_error_page(error),
    };
    let policy_name = match state.active_policy().await {
        Ok(active) => active.policy.name.clone(),
        Err(error) => return store_error_page(error),
    };
    page(
        StatusCode::OK,
        fleet::html::fleet_page(&fleet, &query, &policy_name, now),
    )
}

/// `GET /devices/{id}`: one device's findings and history.
pub(super) async fn device_html(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = Timestamp::now();
    match admin(&state, &headers, now).await {
        Err(error) => return store_error_page(error),
        Ok(Some(true)) => {}
        Ok(_) => return see_other("/"),
    }
    match state.store().device(&id, state.staleness(now)).await {
        Ok(Some(detail)) => page(StatusCode::OK, fleet::html::device_page(&detail, now)),
        Ok(None) => error_page(
            StatusCode::NOT_FOUND,
            "No device has this id. It may have been enrolled under another one.",
        ),
        Err(error) => store_error_page(error),
    }
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// `POST /login`: a valid admin token becomes the login cookie.
pub(super) async fn login(
    State(state): State<AppState>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(LoginForm { token })) = form else {
        return login_page(
            &state,
            Some("Paste an admin token into the form."),
            StatusCode::BAD_REQUEST,
        );
    };
    let token = token.trim();
    match auth::is_admin(state.store(), token, Timestamp::now()).await {
        Err(error) => store_error_page(error),
        Ok(false) => login_page(
            &state,
            Some(
                "That is not a valid admin token. Create one with `shipshape-server token create --admin`.",
            ),
            StatusCode::UNAUTHORIZED,
        ),
        Ok(true) => {
            tracing::info!("admin signed in");
            let mut response = see_other("/");
            set_cookie(
                &mut response,
                &auth::login_cookie(token, state.settings().tls),
            );
            response
        }
    }
}

/// `POST /logout`: forgets the login cookie.
pub(super) async fn logout(State(state): State<AppState>) -> Response {
    let mut response = see_other("/");
    set_cookie(&mut response, &auth::logout_cookie(state.settings().tls));
    response
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;

    fn staleness() -> Staleness {
        Staleness {
            now: Timestamp::UNIX_EPOCH,
            stale_after: SignedDuration::from_hours(48),
        }
    }

    fn params(status: &str, check: &str, after: &str, per_page: &str) -> FleetParams {
        let some = |text: &str| Some(text.to_owned());
        FleetParams {
            status: some(status),
            check: some(check),
            after: some(after),
            per_page: some(per_page),
            page: None,
        }
    }

    #[test]
    fn empty_parameters_mean_any() {
        let query = params("", "", "", "").query(staleness()).unwrap();
        assert_eq!(query.status, None);
        assert_eq!(query.check, None);
        assert_eq!((query.after, query.per_page), (None, DEFAULT_PER_PAGE));
        let query = FleetParams::default().query(staleness()).unwrap();
        assert_eq!((query.after, query.per_page), (None, DEFAULT_PER_PAGE));
    }

    #[test]
    fn parameters_are_checked() {
        let cursor = FleetCursor {
            group: DeviceStatus::Silent,
            hostname: "ada".to_owned(),
            id: "1".to_owned(),
        };
        let query = params("leaky", "firewall", &cursor.encode(), "20")
            .query(staleness())
            .unwrap();
        assert_eq!(query.status, Some(DeviceStatus::Leaky));
        assert_eq!(query.check.as_deref(), Some("firewall"));
        assert_eq!((query.after, query.per_page), (Some(cursor), 20));

        let bad = |p: FleetParams| p.query(staleness()).unwrap_err();
        assert_eq!(bad(params("leaking", "", "", "")).name, "status");
        assert_eq!(bad(params("", "antivirus", "", "")).name, "check");
        let cursor = bad(params("", "", "page-2", ""));
        assert_eq!(cursor.name, "after");
        assert!(
            cursor.message.contains("`page-2` is not a cursor"),
            "{}",
            cursor.message
        );
        assert_eq!(bad(params("", "", "", "0")).name, "per_page");
        assert_eq!(bad(params("", "", "", "1001")).name, "per_page");
        let numbered = bad(FleetParams {
            page: Some("2".to_owned()),
            ..FleetParams::default()
        });
        assert_eq!(numbered.name, "page");
        assert!(numbered.message.contains("`after`"), "{}", numbered.message);
    }
}
