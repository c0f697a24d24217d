//! Dotted version numbers ("22.04", "10.0.19045", "14.6.1") and their order.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A version of dot-separated numeric components; missing components count as 0,
/// so `14` = `14.0` = `14.0.0`.
#[derive(Debug, Clone)]
pub struct Version(Vec<u64>);

/// A version string that is not dot-separated numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a version: expected dot-separated numbers such as 22.04 or 10.0.19045")]
pub struct VersionError(String);

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(VersionError(text.to_owned()));
        }
        text.split('.')
            .map(|part| part.parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map(Version)
            .map_err(|_| VersionError(text.to_owned()))
    }
}

impl Version {
    /// Reads the leading dotted-number part of a free-form version
    /// ("24.04.1 LTS" → 24.04.1, "13.4.1 (22F82)" → 13.4.1).
    pub fn lenient(text: &str) -> Option<Self> {
        let head: String = text
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        head.trim_end_matches('.').parse().ok()
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(v("10.0.19045") > v("10.0.9600"));
        assert!(v("22.04") > v("20.10"));
        assert!(v("14") == v("14.0.0"));
        assert!(v("13.4.1") < v("13.5"));
    }

    #[test]
    fn lenient_reads_the_leading_version() {
        assert_eq!(
            Version::lenient("24.04.1 LTS (Noble Numbat)"),
            Some(v("24.04.1"))
        );
        assert_eq!(Version::lenient("13.4.1"), Some(v("13.4.1")));
        assert_eq!(Version::lenient("rolling"), None);
    }

    #[test]
    fn rejects_words() {
        let error = "twelve".parse::<Version>().unwrap_err();
        assert!(error.to_string().contains("`twelve` is not a version"));
    }
}
