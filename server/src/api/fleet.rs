//! The fleet report for the security team, behind an admin token: JSON and
//! CSV under `/v1/`, and the HTML pages (`/`, `/devices/{id}`) with the
//! login form that turns a token into a cookie.

use axum::Json;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use shipshape_core::checks::CheckId;
use shipshape_core::wire::DeviceStatus;

use super::{AppState, Failure};
use crate::auth;
use crate::fleet::{self, DEFAULT_PER_PAGE};
use crate::model::{DeviceDetail, DeviceRow, FleetPage, FleetQuery, Staleness};
use crate::store::StoreError;

/// The most devices one page may show.
pub const MAX_PER_PAGE: u32 = 1000;

/// The fleet filter as the URL carries it; empty values mean "any" (the
/// HTML form sends `status=` for "any").
#[derive(Debug, Default, Deserialize)]
pub(super) struct FleetParams {
    status: Option<String>,
    check: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
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
        let number = |name: &'static str, value: Option<String>, default: u32, max: u32| {
            let Some(value) = given(value) else {
                return Ok(default);
            };
            value
                .parse::<u32>()
                .ok()
                .filter(|number| (1..=max).contains(number))
                .ok_or_else(|| BadParam {
                    name,
                    message: format!("`{value}` is not a number from 1 to {max}"),
                })
        };
        Ok(FleetQuery {
            status,
            check,
            page: number("page", self.page, 1, u32::MAX)?,
            per_page: number("per_page", self.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
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

async fn require_admin(
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
    Ok(Json(state.store().fleet(&query).await?))
}

/// `GET /v1/fleet.csv`: every device matching the filter (no pagination).
pub(super) async fn fleet_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<FleetParams>, QueryRejection>,
) -> Result<Response, Failure> {
    let now = Timestamp::now();
    require_admin(&state, &headers, now).await?;
    let query = query_params(params)?.query(state.staleness(now))?;
    let rows = all_devices(state.store(), query).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"shipshape-fleet.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        fleet::csv::devices(&rows),
    )
        .into_response())
}

/// Every device the query's filter matches, page by page.
pub async fn all_devices(
    store: &dyn crate::store::Store,
    mut query: FleetQuery,
) -> Result<Vec<DeviceRow>, StoreError> {
    query.page = 1;
    query.per_page = MAX_PER_PAGE;
    let mut rows = Vec::new();
    loop {
        let page = store.fleet(&query).await?;
        let last = page.devices.len() < MAX_PER_PAGE as usize;
        rows.extend(page.devices);
        if last || rows.len() as u64 >= page.matching {
            return Ok(rows);
        }
        query.page += 1;
    }
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
    let fleet = match state.store().fleet(&query).await {
        Ok(fleet) => fleet,
        Err(error) => return store_error_page(error),
    };
    let policy_name = state.inner.policy.read().await.policy.name.clone();
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

    fn params(status: &str, check: &str, page: &str, per_page: &str) -> FleetParams {
        let some = |text: &str| Some(text.to_owned());
        FleetParams {
            status: some(status),
            check: some(check),
            page: some(page),
            per_page: some(per_page),
        }
    }

    #[test]
    fn empty_parameters_mean_any() {
        let query = params("", "", "", "").query(staleness()).unwrap();
        assert_eq!(query.status, None);
        assert_eq!(query.check, None);
        assert_eq!((query.page, query.per_page), (1, DEFAULT_PER_PAGE));
        let query = FleetParams::default().query(staleness()).unwrap();
        assert_eq!((query.page, query.per_page), (1, DEFAULT_PER_PAGE));
    }

    #[test]
    fn parameters_are_checked() {
        let query = params("leaky", "firewall", "3", "20")
            .query(staleness())
            .unwrap();
        assert_eq!(query.status, Some(DeviceStatus::Leaky));
        assert_eq!(query.check.as_deref(), Some("firewall"));
        assert_eq!((query.page, query.per_page), (3, 20));

        let bad = |p: FleetParams| p.query(staleness()).unwrap_err().name;
        assert_eq!(bad(params("leaking", "", "", "")), "status");
        assert_eq!(bad(params("", "antivirus", "", "")), "check");
        assert_eq!(bad(params("", "", "0", "")), "page");
        assert_eq!(bad(params("", "", "x", "")), "page");
        assert_eq!(bad(params("", "", "", "1001")), "per_page");
    }
}
