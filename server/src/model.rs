//! What the server keeps and shows: devices, tokens, grades, transitions and
//! the fleet views built from them. Storage backends fill these; the API and
//! the fleet report render them.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use shipshape_core::facts::Host;
use shipshape_core::wire::{DeviceStatus, ReportSubmission};
use shipshape_core::{Facts, Finding};

use crate::grade::{CheckState, Grade};
pub use crate::keyset::FleetCursor;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Enrolls devices (`POST /v1/enroll`).
    Enroll,
    /// Reads the fleet report and changes the policy.
    Admin,
}

/// A token about to be stored. The secret itself is shown once and never
/// stored: only its SHA-256.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub kind: TokenKind,
    pub hash: [u8; 32],
    /// How many enrollments it allows; `None` is unlimited.
    pub uses: Option<u32>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A stored token as `token list` shows it (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub kind: TokenKind,
    /// Enrollments left; `None` is unlimited.
    pub uses_left: Option<u32>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A device about to be enrolled.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub public_key: [u8; 32],
    pub host: Host,
    pub enrolled_at: Timestamp,
}

/// Why an enrollment was refused (the token is never consumed then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollRefusal {
    UnknownToken,
    Expired,
    UsedUp,
    Revoked,
}

/// The key a device signs with, as signature verification needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceKey {
    pub public_key: [u8; 32],
    pub revoked: bool,
}

/// A verified report on its way into the store.
#[derive(Debug, Clone)]
pub struct IncomingReport {
    pub device_id: String,
    pub received_at: Timestamp,
    /// The signature's nonce: recorded in the same transaction, so a replay
    /// is refused and a refused request stores nothing.
    pub nonce: String,
    pub submission: ReportSubmission,
    /// For a heartbeat, the stored facts it repeats: the report keeps no
    /// copy of them. `None` for a full report.
    pub repeats: Option<FactsOrigin>,
}

/// Where a device's current facts are stored: the full report that brought
/// them, and their [`shipshape_core::wire::facts_hash`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsOrigin {
    pub report_id: String,
    pub hash: String,
}

/// A device's current facts, as a heartbeat that names them finds them.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentFacts {
    pub origin: FactsOrigin,
    pub facts: Facts,
}

/// How long a device may stay quiet before it counts as silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staleness {
    pub now: Timestamp,
    pub stale_after: SignedDuration,
}

impl Staleness {
    /// The last-seen time before which a device is silent.
    pub fn cutoff(&self) -> Timestamp {
        self.now
            .checked_sub(self.stale_after)
            .unwrap_or(Timestamp::MIN)
    }
}

/// Which devices the fleet table shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetQuery {
    pub status: Option<DeviceStatus>,
    /// Only devices failing this check.
    pub check: Option<String>,
    /// Start after this device (a page's [`FleetPage::next`]); `None` from the first.
    pub after: Option<FleetCursor>,
    pub per_page: u32,
    pub staleness: Staleness,
}

/// Devices per status, over the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: u64,
    pub leaky: u64,
    pub silent: u64,
    pub unknown: u64,
    pub compliant: u64,
}

/// How many devices leak on one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckFailures {
    pub check: String,
    pub devices: u64,
}

/// One line of the device table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRow {
    pub id: String,
    pub hostname: String,
    /// `Debian GNU/Linux 12 (bookworm)`, `macOS 14.4`, …
    pub os: String,
    /// Silent when stale, else the grade of the last report.
    pub status: DeviceStatus,
    /// The checks that leak (fail at or above leak severity, after grace).
    pub failing_checks: Vec<String>,
    pub last_seen: Option<Timestamp>,
    pub enrolled_at: Timestamp,
    pub revoked: bool,
}

/// The counts of the fleet report, for a filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    pub summary: Summary,
    /// Most-failed check first.
    pub failures_by_check: Vec<CheckFailures>,
    /// How many devices match the filter, over all pages.
    pub matching: u64,
}

/// One page of the device table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DevicePage {
    /// Leaky first, then silent, unknown, compliant; by hostname within each.
    pub devices: Vec<DeviceRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<FleetCursor>,
}

/// One page of the fleet report: the counts and a page of the device table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetPage {
    pub summary: Summary,
    /// Most-failed check first.
    pub failures_by_check: Vec<CheckFailures>,
    /// Leaky first, then silent, unknown, compliant; by hostname within each.
    pub devices: Vec<DeviceRow>,
    pub per_page: u32,
    /// How many devices match the filter, over all pages.
    pub matching: u64,
    /// The `after` of the next page; `None` on the last page.
    pub next: Option<FleetCursor>,
}

impl FleetPage {
    /// The counts and the page, as one report.
    pub fn new(counts: FleetSummary, page: DevicePage, per_page: u32) -> Self {
        FleetPage {
            summary: counts.summary,
            failures_by_check: counts.failures_by_check,
            devices: page.devices,
            per_page,
            matching: counts.matching,
            next: page.next,
        }
    }
}

/// A check starting or stopping to leak on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransitionKind {
    SprangLeak,
    BailedOut,
}

/// One entry of a device's transitions log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub check: String,
    pub kind: TransitionKind,
    pub at: Timestamp,
    /// The report that showed it, or `None` when a policy change caused it.
    pub report_id: Option<String>,
}

/// A stored report, as the device page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSummary {
    pub id: String,
    pub received_at: Timestamp,
    pub status: DeviceStatus,
    pub failing_checks: Vec<String>,
}

/// Everything the device page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceDetail {
    pub device: DeviceRow,
    /// The server's findings from the last report (empty before the first).
    pub findings: Vec<Finding>,
    /// Newest first.
    pub transitions: Vec<Transition>,
    /// Newest first, at most 50.
    pub reports: Vec<ReportSummary>,
}

/// The policy the server grades with, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPolicy {
    pub id: i64,
    pub text: String,
    /// Quoted, as the `ETag` header carries it.
    pub etag: String,
    pub activated_at: Timestamp,
}

/// How far the re-grade of the fleet under a policy has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegradeProgress {
    /// The policy whose re-grade this is.
    pub policy_id: i64,
    pub state: RegradeState,
    /// Devices to look at: those enrolled when the re-grade began (and any
    /// enrolled since that it reached).
    pub devices: u64,
    /// Devices looked at so far, changed or not.
    pub done: u64,
    /// Devices whose status changed.
    pub changed_status: u64,
    pub started_at: Timestamp,
    /// When it finished, or was superseded by a newer policy.
    pub finished_at: Option<Timestamp>,
    /// The last device id done: the re-grade goes on after it.
    #[serde(skip)]
    pub after: String,
}

/// Whether a re-grade still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegradeState {
    /// Devices are being re-graded, in batches.
    Running,
    /// Every device was re-graded.
    Done,
    /// A newer policy was activated before it finished: that one's re-grade took over.
    Superseded,
}

/// A device as a re-grade or a simulation sees it: its current grade and
/// what grading it again needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    pub id: String,
    pub hostname: String,
    /// The last grade (leaky, unknown or compliant: silent is not a grade).
    pub status: DeviceStatus,
    /// Its grace clocks and leaking checks.
    pub checks: CheckState,
    /// Its current findings, as stored (JSON): a grade that serializes the
    /// same changes nothing.
    pub findings_json: String,
    /// The last report; `None` before the first.
    pub last_report: Option<LastReport>,
}

/// A device's last report, as grading it again needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReport {
    pub id: String,
    /// The facts, as stored (JSON); the caller parses them, so that parsing
    /// is spread over cores.
    pub facts_json: String,
}

/// One batch of a re-grade, to be stored in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RegradeBatch {
    /// The policy being re-graded with: nothing is stored when it is no
    /// longer the newest.
    pub policy_id: i64,
    /// The re-grade's [`RegradeProgress::after`] the batch was read from:
    /// nothing is stored when the re-grade has moved on (another runner did it).
    pub from: String,
    /// The last device id of the batch; `None` when nothing follows `from`:
    /// the re-grade is done.
    pub through: Option<String>,
    /// Devices looked at, changed or not.
    pub visited: u64,
    /// The devices whose grade changed.
    pub changes: Vec<DeviceRegrade>,
    /// When the batch was graded: the time of its transitions.
    pub at: Timestamp,
}

/// A device's new grade from its last facts under a new policy.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRegrade {
    pub device_id: String,
    /// The report whose facts were graded. Once another report arrived (and
    /// was graded by the new policy), the change is not stored.
    pub report_id: String,
    /// The status and checks before.
    pub before: DeviceStatus,
    pub previous: CheckState,
    pub grade: Grade,
    /// `grade.findings` as JSON.
    pub findings_json: String,
}
