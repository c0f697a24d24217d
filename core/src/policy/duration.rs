use std::fmt;

use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How long a failing state may last before it counts as a leak ("72h", "7d", "2 weeks").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace(pub SignedDuration);

impl std::str::FromStr for Grace {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("`{text}` is not a duration: write e.g. \"48h\", \"7d\" or \"2 weeks\"");
        let span: Span = text.trim().parse().map_err(|_| invalid())?;
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| invalid())?;
        if duration.is_negative() {
            return Err(format!(
                "`{text}` is negative: a grace period is at least 0s"
            ));
        }
        Ok(Grace(duration))
    }
}

impl fmt::Display for Grace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl<'de> Deserialize<'de> for Grace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Grace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
